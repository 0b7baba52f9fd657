//! What upstream's status strategies keep of a write to a `/status` (or a CSR's
//! `/approval`) subresource: the client's status and metadata, the stored spec.

use rkube_api::registry::ResourceType;
use serde_json::Value;

/// `new` with the stored object's spec: what every status strategy upstream starts from.
pub(crate) fn keep_spec(mut new: Value, old: &Value) -> Value {
    match (old.get("spec"), new.as_object_mut()) {
        (Some(spec), _) => new["spec"] = spec.clone(),
        (None, Some(o)) => {
            o.remove("spec");
        }
        (None, None) => {}
    }
    new
}

/// What a write to `/status` keeps of the client's object, per upstream's status strategies:
/// the status and the metadata, never the spec. A few strategies also hold some metadata:
/// a Deployment's labels, a Pod's owner references (old kubelets corrupted them), and
/// everything the status writer should not touch on the kinds that reset the object meta
/// for status (`metav1.ResetObjectMetaForStatus`).
pub(crate) fn status_update(rt: &ResourceType, new: Value, old: &Value) -> Value {
    if rt.custom.is_some() {
        // A custom resource's status write changes the status only (and records its
        // writer in managedFields), as upstream's custom resource status strategy.
        let mut merged = old.clone();
        match new.get("status") {
            Some(status) => merged["status"] = status.clone(),
            None => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        if let Some(fields) = new["metadata"].get("managedFields") {
            merged["metadata"]["managedFields"] = fields.clone();
        }
        return merged;
    }
    let mut merged = keep_spec(new, old);
    let held: &[&str] = match (rt.group, rt.kind) {
        ("apps", "Deployment") => &["labels"],
        ("", "Pod") => &["ownerReferences"],
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
        | ("storage.k8s.io", "VolumeAttachment") => &[
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "selfLink",
        ],
        _ => &[],
    };
    if !held.is_empty()
        && let Ok(meta) = crate::rest::metadata_mut(&mut merged)
    {
        for field in held {
            match old["metadata"].get(*field) {
                Some(v) => meta.insert((*field).into(), v.clone()),
                None => meta.remove(*field),
            };
        }
    }
    // The QoS class is set at creation and immutable; old kubelets dropped it from status.
    if rt.group.is_empty()
        && rt.kind == "Pod"
        && merged["status"]["qosClass"]
            .as_str()
            .is_none_or(str::is_empty)
        && let Some(qos) = old["status"].get("qosClass")
        && merged["status"].is_object()
    {
        merged["status"]["qosClass"] = qos.clone();
    }
    merged
}
