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
        if rt.custom.is_some() && media == "application/strategic-merge-patch+json" {
            return Err(ApiError::UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    .into(),
            ));
        }
        let apply: fn(&ResourceType, &Value, &Value) -> Result<Value, ApiError> = match media
            .as_str()
        {
            "application/json-patch+json" => |_, doc, p| patch::json_patch(doc, p),
            "application/merge-patch+json" => |_, doc, p| patch::merge_patch(doc, p),
            "application/strategic-merge-patch+json" => {
                |rt, doc, p| patch::strategic_merge_patch(rt.group, rt.kind, doc, p)
            }
            "application/apply-patch+yaml" => {
                return self.server_side_apply(rt, info, query, name, body).await;
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
        let validation = crate::decode::FieldValidation::from_query(query)?;
        let served = Served::of(rt, validation);
        self.guaranteed_update(
            served.storage,
            ns,
            name,
            info.subresource.as_deref(),
            dry,
            None,
            validation,
            Some(&info.field_manager),
            |stored| {
                let converted = served.served_form(stored)?;
                let current = converted.as_ref().unwrap_or(stored);
                let patched = apply(rt, current, &body)?;
                // A resource version written by the patch is a precondition, as upstream treats it.
                if resource_version(&patched) != resource_version(current) {
                    return Err(crate::objects::conflict(rt, name, MODIFIED));
                }
                served.stored_form(patched)
            },
        )
        .await
    }

    /// Server-side apply (`application/apply-patch+yaml`): merges the configuration as its
    /// field manager, creating the object if it does not exist; 409 with one cause per field
    /// another manager owns, unless `force=true`.
    async fn server_side_apply(
        &self,
        rt: &'static ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
        mut config: Value,
    ) -> Result<(u16, Value), ApiError> {
        let manager = query.get("fieldManager").ok_or_else(|| {
            ApiError::BadRequest("PATCH /apply requires fieldManager to be set".into())
        })?;
        let force = query.flag("force");
        if !config.is_object() {
            return Err(ApiError::BadRequest(
                "the apply configuration must be an object".into(),
            ));
        }
        match config["metadata"]["name"].as_str() {
            Some(n) if n != name => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
            None => config["metadata"]["name"] = serde_json::json!(name),
        }
        let now = crate::rest::now_rfc3339();
        let subresource = info.subresource.as_deref().unwrap_or("");
        let write = rkube_api::apply::Write::new(rt.group, rt.version, rt.kind, manager, &now)
            .to_subresource(subresource);
        let ns = info.namespace.as_deref().filter(|_| rt.namespaced);
        let dry = matches!(query.get("dryRun"), Some("All"));
        let validation = crate::decode::FieldValidation::from_query(query)?;
        let config_name = config["metadata"]["name"].as_str().unwrap_or("");
        let served = Served::of(rt, validation);
        match self.objects.get(served.storage, ns, name).await {
            Err(ApiError::NotFound { .. }) if info.subresource.is_none() => {
                let applied = rkube_api::apply::apply(&write, None, &config, force)
                    .map_err(|e| crate::rest::apply_error(rt, config_name, e))?;
                let applied = served.stored_form(applied)?;
                self.create_object(served.storage, info, query, applied, false)
                    .await
            }
            Err(err) => Err(err),
            Ok(_) => {
                self.guaranteed_update(
                    served.storage,
                    ns,
                    name,
                    info.subresource.as_deref(),
                    dry,
                    None,
                    validation,
                    None,
                    |stored| {
                        let converted = served.served_form(stored)?;
                        let current = converted.as_ref().unwrap_or(stored);
                        let applied =
                            rkube_api::apply::apply(&write, Some(current), &config, force)
                                .map_err(|e| crate::rest::apply_error(rt, config_name, e))?;
                        served.stored_form(applied)
                    },
                )
                .await
            }
        }
    }
}

/// The version a patch is written against and the one its object is stored in: a patch to a
/// version served from another's storage applies to the served form of the stored object,
/// and the result, checked against the served type, is stored converted back.
struct Served {
    served: &'static ResourceType,
    storage: &'static ResourceType,
    validation: crate::decode::FieldValidation,
}

impl Served {
    fn of(rt: &'static ResourceType, validation: crate::decode::FieldValidation) -> Self {
        Self {
            served: rt,
            storage: rkube_api::registry::all().storage_of(rt),
            validation,
        }
    }

    /// The stored object in the served form, if that differs.
    fn served_form(&self, stored: &Value) -> Result<Option<Value>, ApiError> {
        self.served
            .conversion
            .map(|conversion| (conversion.from_storage)(stored.clone()))
            .transpose()
    }

    fn stored_form(&self, mut object: Value) -> Result<Value, ApiError> {
        match self.served.conversion {
            Some(conversion) => {
                crate::rest::check_type(&mut object, self.served)?;
                let object = crate::decode::normalize(self.served, object, self.validation)?;
                (conversion.to_storage)(object)
            }
            None => Ok(object),
        }
    }
}
