//! PATCH: JSON patch, merge patch and strategic merge patch applied to the stored object and
//! written back with the update rules.

use rkube_api::registry::ResourceType;
use rkube_api::{ApiError, patch};
use serde_json::Value;

use crate::app::App;
use crate::decode::FieldValidation;
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
        text: &[u8],
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
                return self
                    .server_side_apply(rt, info, query, name, body, text)
                    .await;
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
        let repeated = repeated_fields(&media, text, validation);
        if validation == FieldValidation::Warn {
            for finding in &repeated {
                crate::warnings::warn(finding.clone());
            }
        }
        let refuse_repeats = validation == FieldValidation::Strict && !repeated.is_empty();
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
                if refuse_repeats {
                    return Err(repeats_refused(rt, &media, &body, &patched, &repeated));
                }
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
        text: &[u8],
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
        // As upstream, the configuration's repeated keys are looked at once it has applied:
        // a refusal of the apply itself comes first.
        let repeats = match validation {
            FieldValidation::Ignore => None,
            _ => yaml_repeats(text),
        };
        if validation == FieldValidation::Warn
            && let Some(repeats) = &repeats
        {
            crate::warnings::warn(repeats.clone());
        }
        let refuse = |repeats: &Option<String>| match repeats {
            Some(repeats) if validation == FieldValidation::Strict => Err(ApiError::BadRequest(
                format!("error strict decoding patch: {repeats}"),
            )),
            _ => Ok(()),
        };
        match self.objects.get(served.storage, ns, name).await {
            Err(ApiError::NotFound { .. }) if info.subresource.is_none() => {
                let applied = rkube_api::apply::apply(&write, None, &config, force)
                    .map_err(|e| crate::rest::apply_error(rt, config_name, e))?;
                refuse(&repeats)?;
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
                        refuse(&repeats)?;
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

/// What strict decoding of a patch body reports before the patch applies, as upstream's
/// patcher does: a JSON patch's repeated operation members (`json patch duplicate field
/// "[0].op"`), a merge or strategic merge patch's repeated members.
fn repeated_fields(media: &str, text: &[u8], validation: FieldValidation) -> Vec<String> {
    if validation == FieldValidation::Ignore {
        return Vec::new();
    }
    let repeated = crate::decode::duplicate_fields(text);
    if media == "application/json-patch+json" {
        return repeated
            .into_iter()
            .map(|finding| format!("json patch {finding}"))
            .collect();
    }
    repeated
}

/// The 422 upstream answers under Strict for a patch that repeats fields: one cause on
/// `patch`, the unknown fields of the patched object listed after the repeats. Its value is
/// the patched object, or for a strategic merge patch the patch itself, as Go prints a map.
fn repeats_refused(
    rt: &ResourceType,
    media: &str,
    patch: &Value,
    patched: &Value,
    repeated: &[String],
) -> ApiError {
    let mut findings = repeated.to_vec();
    if let Ok((_, unknown)) = crate::decode::known_fields(rt, patched.clone()) {
        findings.extend(unknown);
    }
    let shown = if media == "application/strategic-merge-patch+json" {
        go_map(patch)
    } else {
        patched.to_string()
    };
    ApiError::Invalid {
        kind: String::new(),
        name: String::new(),
        causes: vec![rkube_api::FieldError::invalid(
            "patch",
            shown,
            &format!("strict decoding error: {}", findings.join(", ")),
        )],
    }
}

/// A value as Go's `%+v` prints a decoded JSON map: `map[a:1 b:[x y]]`, keys sorted.
fn go_map(value: &Value) -> String {
    match value {
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_map(&members[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_map).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_owned(),
        other => other.to_string(),
    }
}

/// The repeated keys of an apply configuration, as sigs.k8s.io/yaml's strict decoding
/// words them.
fn yaml_repeats(text: &[u8]) -> Option<String> {
    let repeats = crate::yaml_keys::duplicate_keys(text);
    (!repeats.is_empty()).then(|| {
        format!(
            "error converting YAML to JSON: yaml: unmarshal errors:\n  {}",
            repeats.join("\n  ")
        )
    })
}
