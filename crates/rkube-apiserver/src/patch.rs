//! PATCH: JSON patch, merge patch and strategic merge patch applied to the stored object and
//! written back with the update rules.

use rkube_api::registry::ResourceType;
use rkube_api::{ApiError, patch};
use serde_json::Value;

use crate::app::App;
use crate::auth::UserInfo;
use crate::objects::{MODIFIED, resource_version};
use crate::request::{Query, RequestInfo};

impl App {
    /// Applies a patch of the request's content type.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn patch(
        &self,
        rt: &'static ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
        content_type: Option<&str>,
        body: Value,
        _user: &UserInfo,
    ) -> Result<(u16, Value), ApiError> {
        let media = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let apply: fn(&ResourceType, &Value, &Value) -> Result<Value, ApiError> = match media
            .as_str()
        {
            "application/json-patch+json" => |_, doc, p| patch::json_patch(doc, p),
            "application/merge-patch+json" => |_, doc, p| patch::merge_patch(doc, p),
            "application/strategic-merge-patch+json" => {
                |rt, doc, p| patch::strategic_merge_patch(rt.group, rt.kind, doc, p)
            }
            "application/apply-patch+yaml" => {
                return Err(ApiError::UnsupportedMediaType(
                    "server-side apply is not supported by this server yet".into(),
                ));
            }
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, \
                     application/strategic-merge-patch+json (got {other:?})"
                )));
            }
        };
        let ns = info.namespace.as_deref().filter(|_| rt.namespaced);
        let dry = matches!(query.get("dryRun"), Some("All"));
        self.guaranteed_update(
            rt,
            ns,
            name,
            info.subresource.as_deref(),
            dry,
            None,
            crate::rest::FieldValidation::from_query(query)?,
            |current| {
                let patched = apply(rt, current, &body)?;
                // A resource version written by the patch is a precondition, as upstream treats it.
                if resource_version(&patched) != resource_version(current) {
                    return Err(ApiError::Conflict {
                        group: rt.group.into(),
                        resource: rt.qualified_plural(),
                        name: name.into(),
                        message: MODIFIED.into(),
                    });
                }
                Ok(patched)
            },
        )
        .await
    }
}
