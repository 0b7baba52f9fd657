//! Which field labels each kind accepts, and where each one's value lives in an object.
//!
//! Upstream keeps these in two places that do not agree, and both are mirrored here:
//!
//! - the field label conversion functions registered per kind (`pkg/apis/<group>/<version>/
//!   conversion.go`) decide which labels a request may use, may rename one, and word the
//!   rejection. A kind without one falls back to `runtime.DefaultMetaV1FieldSelectorConversion`,
//!   which takes `metadata.name` and `metadata.namespace` only — for every kind in the `apps`
//!   group too, and for cluster-scoped kinds as well (where `metadata.namespace=x` then simply
//!   matches nothing).
//! - the field set each registry strategy builds (`GetAttrs` / `ToSelectableFields` in
//!   `pkg/registry/...`) decides what a label reads. A label accepted but missing from the set
//!   reads as the empty string: a pod's `status.podIPs` is accepted and never matches a value.

use serde_json::Value;

use super::go_quote;

/// How a kind's conversion function words a label it does not accept.
#[derive(Clone, Copy)]
enum Rejection {
    /// `runtime.DefaultMetaV1FieldSelectorConversion`.
    Default,
    /// Most registered functions: `field label not supported: <label>`.
    NotSupported,
    /// batch/v1 Job's: `field label "<label>" not supported for Job`.
    Job,
}

/// The field labels of one kind.
struct KindFields {
    group: &'static str,
    kind: &'static str,
    /// Each accepted label with the label of the field set it stands for.
    labels: &'static [(&'static str, &'static str)],
    rejection: Rejection,
    /// The value of a field-set label in an object; `None` when the set has no such label.
    read: fn(&str, &Value) -> Option<String>,
}

const METADATA: &[(&str, &str)] = &[
    ("metadata.name", "metadata.name"),
    ("metadata.namespace", "metadata.namespace"),
];

const EVENT_SET_LABELS: &[(&str, &str)] = &[
    ("involvedObject.kind", "involvedObject.kind"),
    ("involvedObject.namespace", "involvedObject.namespace"),
    ("involvedObject.name", "involvedObject.name"),
    ("involvedObject.uid", "involvedObject.uid"),
    ("involvedObject.apiVersion", "involvedObject.apiVersion"),
    (
        "involvedObject.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("involvedObject.fieldPath", "involvedObject.fieldPath"),
    ("reason", "reason"),
    ("reportingComponent", "reportingComponent"),
    ("source", "source"),
    ("type", "type"),
    ("metadata.namespace", "metadata.namespace"),
    ("metadata.name", "metadata.name"),
];

/// The kinds with a conversion function of their own; every other kind takes the default.
const KINDS: &[KindFields] = &[
    KindFields {
        group: "",
        kind: "Pod",
        labels: &[
            ("metadata.name", "metadata.name"),
            ("metadata.namespace", "metadata.namespace"),
            ("spec.nodeName", "spec.nodeName"),
            ("spec.restartPolicy", "spec.restartPolicy"),
            ("spec.schedulerName", "spec.schedulerName"),
            ("spec.serviceAccountName", "spec.serviceAccountName"),
            ("spec.hostNetwork", "spec.hostNetwork"),
            ("status.phase", "status.phase"),
            ("status.podIP", "status.podIP"),
            ("status.podIPs", "status.podIPs"),
            ("status.nominatedNodeName", "status.nominatedNodeName"),
            // What v1 clients before spec.nodeName sent.
            ("spec.host", "spec.nodeName"),
        ],
        rejection: Rejection::NotSupported,
        read: read_pod,
    },
    KindFields {
        group: "",
        kind: "Node",
        labels: &[
            ("metadata.name", "metadata.name"),
            ("spec.unschedulable", "spec.unschedulable"),
        ],
        rejection: Rejection::NotSupported,
        read: read_node,
    },
    KindFields {
        group: "",
        kind: "ReplicationController",
        labels: &[
            ("metadata.name", "metadata.name"),
            ("metadata.namespace", "metadata.namespace"),
            ("status.replicas", "status.replicas"),
        ],
        rejection: Rejection::NotSupported,
        read: read_replication_controller,
    },
    KindFields {
        group: "",
        kind: "Event",
        labels: EVENT_SET_LABELS,
        rejection: Rejection::NotSupported,
        read: read_event,
    },
    KindFields {
        group: "",
        kind: "Namespace",
        labels: &[
            ("status.phase", "status.phase"),
            ("metadata.name", "metadata.name"),
        ],
        rejection: Rejection::NotSupported,
        read: read_namespace,
    },
    KindFields {
        group: "",
        kind: "Secret",
        labels: &[
            ("type", "type"),
            ("metadata.namespace", "metadata.namespace"),
            ("metadata.name", "metadata.name"),
        ],
        rejection: Rejection::NotSupported,
        read: read_secret,
    },
    KindFields {
        group: "",
        kind: "Service",
        labels: &[
            ("metadata.namespace", "metadata.namespace"),
            ("metadata.name", "metadata.name"),
            ("spec.clusterIP", "spec.clusterIP"),
            ("spec.type", "spec.type"),
        ],
        rejection: Rejection::NotSupported,
        read: read_service,
    },
    KindFields {
        group: "batch",
        kind: "Job",
        labels: &[
            ("metadata.name", "metadata.name"),
            ("metadata.namespace", "metadata.namespace"),
            ("status.successful", "status.successful"),
        ],
        rejection: Rejection::Job,
        read: read_job,
    },
    KindFields {
        group: "certificates.k8s.io",
        kind: "CertificateSigningRequest",
        labels: &[
            ("metadata.name", "metadata.name"),
            ("spec.signerName", "spec.signerName"),
        ],
        rejection: Rejection::NotSupported,
        read: read_certificate_signing_request,
    },
    // events.k8s.io/v1 shares the core Event's storage and field set, so its own spellings
    // are renamed to the core ones; the core spellings themselves are not accepted here.
    KindFields {
        group: "events.k8s.io",
        kind: "Event",
        labels: &[
            ("reason", "reason"),
            ("regarding.kind", "involvedObject.kind"),
            ("regarding.namespace", "involvedObject.namespace"),
            ("regarding.name", "involvedObject.name"),
            ("regarding.uid", "involvedObject.uid"),
            ("regarding.apiVersion", "involvedObject.apiVersion"),
            (
                "regarding.resourceVersion",
                "involvedObject.resourceVersion",
            ),
            ("regarding.fieldPath", "involvedObject.fieldPath"),
            ("reportingController", "reportingComponent"),
            ("source", "source"),
            ("type", "type"),
            ("metadata.namespace", "metadata.namespace"),
            ("metadata.name", "metadata.name"),
        ],
        rejection: Rejection::NotSupported,
        read: read_event,
    },
];

const DEFAULT: KindFields = KindFields {
    group: "",
    kind: "",
    labels: METADATA,
    rejection: Rejection::Default,
    read: read_metadata,
};

fn fields_of(group: &str, kind: &str) -> &'static KindFields {
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
        .unwrap_or(&DEFAULT)
}

/// The field-set label a requested label stands for, or the kind's rejection message.
pub(super) fn convert(group: &str, kind: &str, label: &str) -> Result<&'static str, String> {
    let fields = fields_of(group, kind);
    if let Some((_, canonical)) = fields.labels.iter().find(|(l, _)| *l == label) {
        return Ok(canonical);
    }
    if let Some(field) = selectable(group, kind, label) {
        return Ok(field);
    }
    Err(match fields.rejection {
        Rejection::Default => format!(
            "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            go_quote(label)
        ),
        Rejection::NotSupported => format!("field label not supported: {label}"),
        Rejection::Job => format!("field label {} not supported for Job", go_quote(label)),
    })
}

/// The field-set label for `label`: its conversion when the kind accepts it, else itself.
pub(super) fn canonical<'a>(group: &str, kind: &str, label: &'a str) -> &'a str {
    convert(group, kind, label).unwrap_or(label)
}

/// A custom resource's selectable field (`selectableFields[].jsonPath` without its dot).
fn selectable(group: &str, kind: &str, label: &str) -> Option<&'static str> {
    let rt: &'static crate::registry::ResourceType = crate::registry::all().by_kind(group, kind)?;
    rt.custom
        .as_deref()?
        .selectable_fields
        .iter()
        .map(|f| f.trim_start_matches('.'))
        .find(|f| *f == label)
}

/// The value of a field-set label in an object, empty when the set lacks it.
pub(super) fn value(group: &str, kind: &str, label: &str, object: &Value) -> String {
    if let Some(field) = selectable(group, kind, label) {
        return match at(object, field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
    }
    (fields_of(group, kind).read)(label, object).unwrap_or_default()
}

/// The JSON value at a dotted path.
fn at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(object, |v, key| v.get(key))
}

/// A string field; absent or not a string reads as empty, as an unset Go string does.
fn string(object: &Value, path: &str) -> String {
    at(object, path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A boolean field as Go's `strconv.FormatBool` prints it; absent is `false`.
fn boolean(object: &Value, path: &str) -> String {
    let b = at(object, path).and_then(Value::as_bool).unwrap_or(false);
    b.to_string()
}

/// A count as Go's `strconv.Itoa` prints it; absent is `0`.
fn count(object: &Value, path: &str) -> String {
    let n = at(object, path).and_then(Value::as_i64).unwrap_or(0);
    n.to_string()
}

/// `generic.ObjectMetaFieldsSet` for namespaced kinds. For cluster-scoped kinds upstream leaves
/// `metadata.namespace` out of the set, which reads the same: their objects have none.
fn read_metadata(label: &str, object: &Value) -> Option<String> {
    match label {
        "metadata.name" | "metadata.namespace" => Some(string(object, label)),
        _ => None,
    }
}

fn read_pod(label: &str, object: &Value) -> Option<String> {
    Some(match label {
        "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.schedulerName"
        | "spec.serviceAccountName"
        | "status.phase"
        | "status.nominatedNodeName" => string(object, label),
        "spec.hostNetwork" => boolean(object, label),
        // Upstream reads the first of the internal podIPs, which v1's podIP overrides when set.
        "status.podIP" => {
            let ip = string(object, "status.podIP");
            if ip.is_empty() {
                at(object, "status.podIPs")
                    .and_then(|ips| ips.get(0))
                    .map(|first| string(first, "ip"))
                    .unwrap_or_default()
            } else {
                ip
            }
        }
        _ => return read_metadata(label, object),
    })
}

fn read_node(label: &str, object: &Value) -> Option<String> {
    match label {
        "spec.unschedulable" => Some(boolean(object, label)),
        "metadata.name" => Some(string(object, label)),
        _ => None,
    }
}

fn read_replication_controller(label: &str, object: &Value) -> Option<String> {
    match label {
        "status.replicas" => Some(count(object, label)),
        _ => read_metadata(label, object),
    }
}

fn read_namespace(label: &str, object: &Value) -> Option<String> {
    match label {
        "status.phase" | "metadata.name" => Some(string(object, label)),
        // Kept in upstream's set for old clients; no request can reach it, as the conversion
        // function does not accept it.
        "name" => Some(string(object, "metadata.name")),
        _ => None,
    }
}

fn read_secret(label: &str, object: &Value) -> Option<String> {
    match label {
        "type" => Some(string(object, label)),
        _ => read_metadata(label, object),
    }
}

fn read_service(label: &str, object: &Value) -> Option<String> {
    match label {
        "spec.clusterIP" | "spec.type" => Some(string(object, label)),
        _ => read_metadata(label, object),
    }
}

fn read_job(label: &str, object: &Value) -> Option<String> {
    match label {
        // The label says "successful"; the field is status.succeeded.
        "status.successful" => Some(count(object, "status.succeeded")),
        _ => read_metadata(label, object),
    }
}

fn read_certificate_signing_request(label: &str, object: &Value) -> Option<String> {
    match label {
        "spec.signerName" | "metadata.name" => Some(string(object, label)),
        _ => None,
    }
}

/// The first non-empty string among several spellings of one field.
fn first_of(object: &Value, paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| string(object, p))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

/// The core Event field set, read from either wire form: core/v1 (`involvedObject`,
/// `reportingComponent`, `source.component`) or events.k8s.io/v1 (`regarding`,
/// `reportingController`, `deprecatedSource.component`), whichever the object is.
fn read_event(label: &str, object: &Value) -> Option<String> {
    let reporting = || first_of(object, &["reportingComponent", "reportingController"]);
    Some(match label {
        "reason" | "type" => string(object, label),
        "reportingComponent" => reporting(),
        // Upstream falls back to the reporting controller when the source is unset.
        "source" => {
            let source = first_of(object, &["source.component", "deprecatedSource.component"]);
            if source.is_empty() {
                reporting()
            } else {
                source
            }
        }
        _ => match label.strip_prefix("involvedObject.") {
            Some(field) => first_of(
                object,
                &[
                    &format!("involvedObject.{field}"),
                    &format!("regarding.{field}"),
                ],
            ),
            None => return read_metadata(label, object),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn every_kind_with_its_own_field_labels_is_a_served_kind() {
        for k in KINDS {
            assert!(
                registry::all().by_kind(k.group, k.kind).is_some(),
                "{}/{}",
                k.group,
                k.kind
            );
        }
    }

    #[test]
    fn every_accepted_label_reads_from_the_field_set() {
        let empty = Value::Object(Default::default());
        for k in KINDS {
            for (label, canonical) in k.labels {
                // status.podIPs is accepted upstream but missing from the pod field set.
                if *label == "status.podIPs" {
                    assert_eq!((k.read)(canonical, &empty), None);
                    continue;
                }
                assert!(
                    (k.read)(canonical, &empty).is_some(),
                    "{}/{} {label}",
                    k.group,
                    k.kind
                );
            }
        }
    }
}
