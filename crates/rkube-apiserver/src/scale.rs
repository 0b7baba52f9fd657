//! The `scale` subresource: an `autoscaling/v1` Scale view of a workload's replicas, as
//! `kubectl scale` and autoscalers use it.

use rkube_api::registry::ResourceType;
use rkube_api::selector::LabelSelector;
use rkube_api::{ApiError, FieldError, patch};
use serde_json::{Value, json};

use crate::app::App;
use crate::decode::FieldValidation;
use crate::objects::resource_version;
use crate::request::{Query, RequestInfo};

/// A simple `.a.b` JSON path as a JSON pointer (`/a/b`).
fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

/// Where a kind keeps its desired and observed replicas: a custom resource's scale
/// subresource names the paths, workloads use `spec.replicas` / `status.replicas`.
fn replica_paths(rt: &ResourceType) -> (String, String) {
    match rt.custom.as_ref().and_then(|c| c.scale.as_ref()) {
        Some(paths) => (
            pointer(&paths.spec_replicas),
            pointer(&paths.status_replicas),
        ),
        None => ("/spec/replicas".into(), "/status/replicas".into()),
    }
}

/// The Scale of a custom resource, as its scale subresource's paths say.
fn custom_scale_of(rt: &ResourceType, parent: &Value) -> Value {
    let meta = &parent["metadata"];
    let (spec, status) = replica_paths(rt);
    let selector = rt
        .custom
        .as_ref()
        .and_then(|c| c.scale.as_ref())
        .and_then(|p| p.label_selector.as_deref())
        .and_then(|p| parent.pointer(&pointer(p)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {},
        "status": {"replicas": parent.pointer(&status).and_then(Value::as_i64).unwrap_or(0)},
    });
    if let Some(r) = parent.pointer(&spec).and_then(Value::as_i64) {
        scale["spec"]["replicas"] = json!(r);
    }
    if !selector.is_empty() {
        scale["status"]["selector"] = json!(selector);
    }
    scale
}

/// Sets the value at a JSON pointer, creating objects on the way.
fn set_at(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        if i + 1 == parts.len() {
            at[*part] = value;
            return;
        }
        at = &mut at[*part];
    }
}

/// The Scale of a workload object.
fn scale_of(rt: &ResourceType, parent: &Value) -> Value {
    if rt.custom.is_some() {
        return custom_scale_of(rt, parent);
    }
    let meta = &parent["metadata"];
    let selector = match rt.kind {
        // A ReplicationController's selector is a plain map.
        "ReplicationController" => parent["spec"]["selector"]
            .as_object()
            .map(|m| {
                let mut pairs: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                pairs.sort();
                pairs.join(",")
            })
            .unwrap_or_default(),
        _ => serde_json::from_value(parent["spec"]["selector"].clone())
            .ok()
            .and_then(|s| LabelSelector::from_api(&s).ok())
            .map(|s| s.to_string())
            .unwrap_or_default(),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": parent["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": parent["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// How the new Scale arrives.
pub enum ScaleChange<'a> {
    /// A whole Scale (PUT).
    Replace(Value),
    /// A patch of the given content type (PATCH).
    Patch(&'a str, Value),
}

impl App {
    /// GET …/scale.
    pub(crate) async fn get_scale(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        name: &str,
    ) -> Result<Value, ApiError> {
        let object = self.get(rt, info, name).await?;
        Ok(scale_of(
            rt,
            &self.stored_in_request_version(rt, object).await?,
        ))
    }

    /// PUT or PATCH …/scale: changes the workload's `spec.replicas`.
    pub(crate) async fn change_scale(
        &self,
        rt: &'static ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
        change: ScaleChange<'_>,
    ) -> Result<Value, ApiError> {
        let ns = info.namespace.as_deref().filter(|_| rt.namespaced);
        let dry = matches!(query.get("dryRun"), Some("All"));
        let wanted_rv = match &change {
            ScaleChange::Replace(scale) => resource_version(scale),
            ScaleChange::Patch(..) => None,
        };
        let (_, updated) = self
            .guaranteed_update(
                rt,
                ns,
                name,
                None,
                dry,
                wanted_rv,
                FieldValidation::Ignore,
                Some(&info.field_manager),
                |current| {
                    let scale = scale_of(rt, current);
                    let wanted = match &change {
                        ScaleChange::Replace(body) => body.clone(),
                        ScaleChange::Patch(media, body) => match *media {
                            "application/json-patch+json" => patch::json_patch(&scale, body)?,
                            "application/merge-patch+json" => patch::merge_patch(&scale, body)?,
                            _ => {
                                patch::strategic_merge_patch("autoscaling", "Scale", &scale, body)?
                            }
                        },
                    };
                    let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
                    if replicas < 0 {
                        return Err(ApiError::Invalid {
                            kind: "Scale.autoscaling".into(),
                            name: name.into(),
                            causes: vec![FieldError::invalid(
                                "spec.replicas",
                                replicas,
                                "must be greater than or equal to 0",
                            )],
                        });
                    }
                    let mut next = current.clone();
                    set_at(&mut next, &replica_paths(rt).0, json!(replicas));
                    Ok(next)
                },
            )
            .await?;
        let updated = self.stored_in_request_version(rt, updated).await?;
        Ok(scale_of(rt, &updated))
    }
}
