//! Subresources that act rather than store: `pods/binding` (the scheduler's assignment),
//! `pods/eviction` (a delete that honours PodDisruptionBudgets) and `namespaces/finalize`
//! (the namespace controller's last step).

use rkube_api::registry::ResourceType;
use rkube_api::selector::LabelSelector;
use rkube_api::{ApiError, FieldError};
use serde_json::{Value, json};

use crate::app::App;
use crate::cache::{BindEdit, bind_stored};
use crate::decode::FieldValidation;
use crate::objects::{
    ListParams, MODIFIED, array_member, conflict, object_member, resource_version,
};
use crate::request::{Query, RequestInfo};
use crate::rest::now_rfc3339;

/// What a `pods/binding` request says: the Binding's name and annotations and its target.
#[derive(Debug, Default)]
pub(crate) struct Binding {
    name: Option<String>,
    annotations: Option<serde_json::Map<String, Value>>,
    target_kind: Option<String>,
    target_name: Option<String>,
}

impl Binding {
    /// The Binding's name: the pod it binds.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Reads a request body. A JSON Binding of the usual shape is read without building the
    /// object; anything else (another format, a field of an unexpected type) is decoded
    /// whole first, and a field of the wrong type counts as absent.
    pub(crate) fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        if crate::decode::is_json(content_type)
            && let Ok(wire) = serde_json::from_slice::<wire::Binding<'_>>(body)
        {
            let (meta, target) = (wire.metadata.unwrap_or_default(), wire.target);
            return Ok(Self {
                name: meta.name.map(Into::into),
                annotations: meta.annotations,
                target_kind: target.as_ref().and_then(|t| t.kind.clone()).map(Into::into),
                target_name: target.and_then(|t| t.name).map(Into::into),
            });
        }
        let value = crate::decode::decode_body(content_type, body)?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Ok(Self {
            name: text(&value["metadata"]["name"]),
            annotations: value["metadata"]["annotations"].as_object().cloned(),
            target_kind: text(&value["target"]["kind"]),
            target_name: text(&value["target"]["name"]),
        })
    }
}

/// A Binding as JSON carries it, borrowing its strings where it can.
mod wire {
    use std::borrow::Cow;

    #[derive(serde::Deserialize)]
    pub(super) struct Binding<'a> {
        #[serde(borrow)]
        pub metadata: Option<Meta<'a>>,
        #[serde(borrow)]
        pub target: Option<Target<'a>>,
    }

    #[derive(Default, serde::Deserialize)]
    pub(super) struct Meta<'a> {
        #[serde(borrow)]
        pub name: Option<Cow<'a, str>>,
        pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    }

    #[derive(serde::Deserialize)]
    pub(super) struct Target<'a> {
        #[serde(borrow)]
        pub kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub name: Option<Cow<'a, str>>,
    }
}

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

fn being_deleted(rt: &ResourceType, name: &str) -> ApiError {
    conflict(
        rt,
        name,
        format!("pod {name} is being deleted, cannot be assigned to a host"),
    )
}

fn already_assigned(rt: &ResourceType, name: &str, current: &str) -> ApiError {
    conflict(
        rt,
        name,
        format!("pod {name} is already assigned to node {current:?}"),
    )
}

/// Binding's edit of a parsed pod, as upstream's: the node, the binding's annotations, and
/// PodScheduled=True in place of any earlier PodScheduled condition.
pub(crate) fn bind_value(
    pod: &mut Value,
    node: &str,
    annotations: Option<&serde_json::Map<String, Value>>,
    now: &str,
) {
    pod["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = annotations {
        for (k, v) in annotations {
            pod["metadata"]["annotations"][k] = v.clone();
        }
    }
    if let Some(pod) = pod.as_object_mut() {
        mark_scheduled(
            array_member(object_member(pod, "status"), "conditions"),
            now,
        );
    }
}

/// PodScheduled=True in place of any earlier PodScheduled condition.
pub(crate) fn mark_scheduled(conditions: &mut Vec<Value>, now: &str) {
    conditions.retain(|c| c["type"] != "PodScheduled");
    conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
}

impl App {
    /// POST pods/{name}/binding: sets `spec.nodeName` once and marks the pod scheduled. Like
    /// upstream, this bypasses pod update validation (which forbids changing the node).
    pub(crate) async fn bind(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        name: &str,
        binding: Binding,
    ) -> Result<(u16, Value), ApiError> {
        let ns = info.namespace.as_deref();
        if binding.name.as_deref().is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(format!(
                "the name of the binding does not match the pod ({name})"
            )));
        }
        let node = binding
            .target_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::Invalid {
                kind: "Binding".into(),
                name: name.into(),
                causes: vec![FieldError::required("target.name", "")],
            })?;
        if let Some(kind) = binding
            .target_kind
            .as_deref()
            .filter(|k| !k.is_empty() && *k != "Node")
        {
            return Err(ApiError::Invalid {
                kind: "Binding".into(),
                name: name.into(),
                causes: vec![FieldError::not_supported("target.kind", kind, &["Node"])],
            });
        }
        let mut first = true;
        let annotated = binding.annotations.as_ref().is_some_and(|a| !a.is_empty());
        if !annotated && let Some(cached) = self.cached_entry(rt, ns, name).await {
            // The usual binding edits the cached bytes; anything unusual takes the parsed path.
            match bind_stored(&cached.value, node, &now_rfc3339()) {
                Some(BindEdit::Bytes(bytes)) => {
                    match self
                        .objects
                        .update_encoded(rt, ns, name, bytes, cached.revision)
                        .await
                    {
                        Ok(_) => return Ok((201, success(201))),
                        Err(ApiError::Conflict { .. }) => first = false,
                        Err(err) => return Err(err),
                    }
                }
                Some(BindEdit::Deleting) => return Err(being_deleted(rt, name)),
                Some(BindEdit::Assigned(current)) => {
                    return Err(already_assigned(rt, name, &current));
                }
                None => {}
            }
        }
        for _ in 0..16 {
            // A cached copy is safe to refuse on: deletionTimestamp and nodeName, once set,
            // stay set; a stale copy otherwise fails the write's precondition.
            let (mut pod, _) = self.current_for_update(rt, ns, name, first).await?;
            first = false;
            let rv = resource_version(&pod).unwrap_or(0);
            if pod["metadata"]
                .get("deletionTimestamp")
                .is_some_and(|t| !t.is_null())
            {
                return Err(being_deleted(rt, name));
            }
            if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(already_assigned(rt, name, current));
            }
            bind_value(&mut pod, node, binding.annotations.as_ref(), &now_rfc3339());
            match self.objects.update(rt, ns, name, pod, rv).await {
                Ok(_) => return Ok((201, success(201))),
                Err(ApiError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(conflict(rt, name, MODIFIED))
    }

    /// POST pods/{name}/eviction: deletes the pod unless its PodDisruptionBudget allows no
    /// more disruptions (429), recording the disruption in the budget's status.
    pub(crate) async fn evict(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
        eviction: Value,
    ) -> Result<(u16, Value), ApiError> {
        let ns = info.namespace.as_deref();
        let pod = self.objects.get(rt, ns, name).await?;
        let options = eviction
            .get("deleteOptions")
            .cloned()
            .unwrap_or_else(|| json!({}));
        // Pods that are not running, or already going, cost the budget nothing.
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        let marked = pod["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        if !matches!(phase, "Succeeded" | "Failed" | "Pending") && !marked {
            self.charge_disruption_budget(ns, name, &pod).await?;
        }
        self.delete(rt, info, query, name, options).await?;
        Ok((201, success(201)))
    }

    async fn charge_disruption_budget(
        &self,
        ns: Option<&str>,
        pod_name: &str,
        pod: &Value,
    ) -> Result<(), ApiError> {
        let pdbs = self.resource("policy", "PodDisruptionBudget")?;
        let labels = pod["metadata"]["labels"].clone();
        let page = self
            .objects
            .list(pdbs, ns, &ListParams::default(), &|_| true)
            .await?;
        let matching: Vec<&Value> = page
            .items
            .iter()
            .filter(|pdb| {
                serde_json::from_value(pdb["spec"]["selector"].clone())
                    .ok()
                    .and_then(|s| LabelSelector::from_api(&s).ok())
                    .is_some_and(|s| s.matches_object(&json!({"metadata": {"labels": labels}})))
            })
            .collect();
        let pdb = match matching.as_slice() {
            [] => return Ok(()),
            [one] => (*one).clone(),
            _ => {
                return Err(ApiError::Internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
                        .into(),
                ));
            }
        };
        let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let refuse = |message: String| ApiError::TooManyRequests {
            message: format!(
                "Cannot evict pod as it would violate the pod's disruption budget. {message}"
            )
            .trim_end()
            .to_owned(),
            retry_after_seconds: Some(10),
        };
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
        if pdb["status"]["observedGeneration"].as_i64().unwrap_or(-1) < generation {
            return Err(refuse(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed <= 0 {
            let healthy = pdb["status"]["currentHealthy"].as_i64().unwrap_or(0);
            let desired = pdb["status"]["desiredHealthy"].as_i64().unwrap_or(0);
            return Err(refuse(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"
            )));
        }
        let pod_name = pod_name.to_owned();
        self.guaranteed_update(
            pdbs,
            ns,
            &pdb_name,
            Some("status"),
            false,
            resource_version(&pdb),
            FieldValidation::Ignore,
            Some("kube-apiserver"),
            |current| {
                let mut next = current.clone();
                next["status"]["disruptionsAllowed"] = json!(allowed - 1);
                next["status"]["disruptedPods"][&pod_name] = json!(now_rfc3339());
                Ok(next)
            },
        )
        .await
        .map_err(|err| match err {
            ApiError::Conflict { .. } => refuse("The disruption budget changed; try again.".into()),
            other => other,
        })?;
        Ok(())
    }

    /// PUT namespaces/{name}/finalize: replaces `spec.finalizers`; a terminating namespace
    /// whose last finalizer goes is deleted.
    pub(crate) async fn finalize_namespace(
        &self,
        rt: &ResourceType,
        name: &str,
        body: Value,
    ) -> Result<(u16, Value), ApiError> {
        let finalizers = body["spec"]["finalizers"].clone();
        let wanted_rv = resource_version(&body);
        self.guaranteed_update(
            rt,
            None,
            name,
            Some("finalize"),
            false,
            wanted_rv,
            FieldValidation::Ignore,
            Some("kube-apiserver"),
            |current| {
                let mut next = current.clone();
                next["spec"]["finalizers"] = if finalizers.is_null() {
                    json!([])
                } else {
                    finalizers.clone()
                };
                Ok(next)
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_reads_the_same_in_every_format() {
        let json = br#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web","namespace":"default","annotations":{"a":"b"}},"target":{"apiVersion":"v1","kind":"Node","name":"n\u0031"}}"#;
        let yaml = b"apiVersion: v1\nkind: Binding\nmetadata:\n  name: web\n  annotations:\n    a: b\ntarget:\n  kind: Node\n  name: n1\n";
        for (content_type, body) in [
            (Some("application/json"), &json[..]),
            (None, &json[..]),
            (Some("application/yaml"), &yaml[..]),
        ] {
            let b = Binding::decode(content_type, body).unwrap();
            assert_eq!(b.name.as_deref(), Some("web"));
            assert_eq!(b.annotations, json!({"a": "b"}).as_object().cloned());
            assert_eq!(b.target_kind.as_deref(), Some("Node"));
            assert_eq!(b.target_name.as_deref(), Some("n1"));
        }
    }

    #[test]
    fn a_binding_field_of_the_wrong_type_counts_as_absent() {
        let body = br#"{"metadata":{"name":["x"]},"target":{"kind":"Node","name":5}}"#;
        let b = Binding::decode(Some("application/json"), body).unwrap();
        assert_eq!(b.name, None);
        assert_eq!(b.target_kind.as_deref(), Some("Node"));
        assert_eq!(b.target_name, None);
        for bad in [&b""[..], b"{", b"[1]"] {
            let err = Binding::decode(Some("application/json"), bad);
            if bad == b"[1]" {
                // Valid JSON that is not an object: every field is absent.
                assert_eq!(err.unwrap().target_name, None);
            } else {
                assert!(matches!(err, Err(ApiError::BadRequest(_))), "{err:?}");
            }
        }
    }
}
