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
        binding: Value,
    ) -> Result<(u16, Value), ApiError> {
        let ns = info.namespace.as_deref();
        if binding["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return Err(ApiError::BadRequest(format!(
                "the name of the binding does not match the pod ({name})"
            )));
        }
        let node = binding["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::Invalid {
                kind: "Binding".into(),
                name: name.into(),
                causes: vec![FieldError::required("target.name", "")],
            })?;
        if binding["target"]["kind"]
            .as_str()
            .is_some_and(|k| !k.is_empty() && k != "Node")
        {
            return Err(ApiError::Invalid {
                kind: "Binding".into(),
                name: name.into(),
                causes: vec![FieldError::not_supported(
                    "target.kind",
                    binding["target"]["kind"].clone(),
                    &["Node"],
                )],
            });
        }
        let mut first = true;
        let annotated = binding["metadata"]["annotations"]
            .as_object()
            .is_some_and(|a| !a.is_empty());
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
            bind_value(
                &mut pod,
                node,
                binding["metadata"]["annotations"].as_object(),
                &now_rfc3339(),
            );
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
