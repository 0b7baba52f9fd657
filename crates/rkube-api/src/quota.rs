//! Resource quota arithmetic, shared by quota admission (which charges each new object) and
//! the quota controller (which recomputes what a namespace uses): quantities in exact
//! thousandths, and what one object adds to each quota resource name.

use serde_json::Value;

/// A quantity in thousandths of its unit, exactly (the precision quota arithmetic keeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Milli(pub i128);

/// How a quantity was written, which decides how sums of it are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Powers of 1024: Ki, Mi, Gi …
    Binary,
    /// Powers of 1000: k, M, G … (and plain numbers).
    Decimal,
}

/// Parses a Kubernetes quantity (`500m`, `1.5`, `2Gi`, `1e3`) into thousandths, rounding up
/// below a thousandth; `None` if it is not one.
pub fn parse_quantity(text: &str) -> Option<(Milli, Format)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let (format, multiplier, exp10): (Format, i128, i32) = match suffix {
        "" => (Format::Decimal, 1, 0),
        "n" => (Format::Decimal, 1, -9),
        "u" => (Format::Decimal, 1, -6),
        "m" => (Format::Decimal, 1, -3),
        "k" => (Format::Decimal, 1, 3),
        "M" => (Format::Decimal, 1, 6),
        "G" => (Format::Decimal, 1, 9),
        "T" => (Format::Decimal, 1, 12),
        "P" => (Format::Decimal, 1, 15),
        "E" => (Format::Decimal, 1, 18),
        "Ki" => (Format::Binary, 1 << 10, 0),
        "Mi" => (Format::Binary, 1 << 20, 0),
        "Gi" => (Format::Binary, 1 << 30, 0),
        "Ti" => (Format::Binary, 1 << 40, 0),
        "Pi" => (Format::Binary, 1 << 50, 0),
        "Ei" => (Format::Binary, 1 << 60, 0),
        s if s.starts_with(['e', 'E']) => (Format::Decimal, 1, s[1..].parse().ok()?),
        _ => return None,
    };
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // mantissa × 10^(exp10 − fraction digits) × multiplier, in thousandths.
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = exp10 - i32::try_from(fraction.len()).ok()? + 3;
    let scaled = mantissa.checked_mul(multiplier)?;
    let value = if scale >= 0 {
        scaled.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?
    } else {
        let divisor = 10i128.checked_pow(scale.unsigned_abs())?;
        (scaled + divisor - 1) / divisor
    };
    Some((Milli(if negative { -value } else { value }), format))
}

/// Writes thousandths back as a quantity in `format`: the largest suffix that keeps it exact.
pub fn format_quantity(value: Milli, format: Format) -> String {
    let Milli(m) = value;
    if m == 0 {
        return "0".into();
    }
    if m % 1000 != 0 {
        return format!("{m}m");
    }
    let whole = m / 1000;
    let suffixes: [(&str, i128); 6] = match format {
        Format::Binary => [
            ("Ei", 1 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ],
        Format::Decimal => [
            ("E", 10i128.pow(18)),
            ("P", 10i128.pow(15)),
            ("T", 10i128.pow(12)),
            ("G", 10i128.pow(9)),
            ("M", 10i128.pow(6)),
            ("k", 1000),
        ],
    };
    for (suffix, size) in suffixes {
        if whole % size == 0 {
            return format!("{}{suffix}", whole / size);
        }
    }
    whole.to_string()
}

fn quantity_at(list: &Value, name: &str) -> Milli {
    list[name]
        .as_str()
        .and_then(parse_quantity)
        .map(|(m, _)| m)
        .or_else(|| list[name].as_i64().map(|n| Milli(i128::from(n) * 1000)))
        .unwrap_or_default()
}

fn containers<'a>(pod: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"][key].as_array().into_iter().flatten()
}

/// A pod's effective `requests` or `limits` (`which`) of `resource`: the larger of its
/// containers' sum and its largest init container, plus overhead, as upstream's
/// `PodRequests` / `PodLimits` compute them (overhead adds to a limit only where one is set).
pub fn pod_resource(pod: &Value, which: &str, resource: &str) -> Milli {
    let sum: i128 = containers(pod, "containers")
        .map(|c| quantity_at(&c["resources"][which], resource).0)
        .sum();
    let init = containers(pod, "initContainers")
        .map(|c| quantity_at(&c["resources"][which], resource).0)
        .max()
        .unwrap_or(0);
    let base = sum.max(init);
    let overhead = if which == "requests" || base > 0 {
        quantity_at(&pod["spec"]["overhead"], resource).0
    } else {
        0
    };
    Milli(base + overhead)
}

/// Whether a pod has no requests or limits at all (the BestEffort QoS class).
pub fn is_best_effort(pod: &Value) -> bool {
    containers(pod, "containers")
        .chain(containers(pod, "initContainers"))
        .all(|c| {
            let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
            empty(&c["resources"]["requests"]) && empty(&c["resources"]["limits"])
        })
}

/// Whether a pod has finished (Succeeded or Failed) and so uses nothing.
pub fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// Whether `pod` falls under every scope of a quota.
pub fn pod_matches_scopes(pod: &Value, scopes: &[String]) -> bool {
    let terminating = pod["spec"]["activeDeadlineSeconds"].is_i64();
    scopes.iter().all(|scope| match scope.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        _ => true,
    })
}

/// The compute resource names a pod's usage is summed for, with where they come from.
const POD_COMPUTE: &[(&str, &str, &str)] = &[
    ("requests.cpu", "requests", "cpu"),
    ("cpu", "requests", "cpu"),
    ("requests.memory", "requests", "memory"),
    ("memory", "requests", "memory"),
    ("limits.cpu", "limits", "cpu"),
    ("limits.memory", "limits", "memory"),
    (
        "requests.ephemeral-storage",
        "requests",
        "ephemeral-storage",
    ),
    ("ephemeral-storage", "requests", "ephemeral-storage"),
    ("limits.ephemeral-storage", "limits", "ephemeral-storage"),
];

/// The quota names counting objects of core kinds the old way (`pods`, `services`, …).
const LEGACY_COUNTS: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// What one object (of `plural` in `group`) adds to a quota's `resource`, under the quota's
/// `scopes`; `None` when that resource does not concern objects of this kind. Finished pods
/// add nothing; scoped quotas concern pods only.
pub fn object_usage(
    group: &str,
    plural: &str,
    object: &Value,
    resource: &str,
    scopes: &[String],
) -> Option<Milli> {
    let is_pod = group.is_empty() && plural == "pods";
    if !scopes.is_empty() && !is_pod {
        return None;
    }
    let one = Milli(1000);
    let counts_as = |name: &str| {
        let counted = name.strip_prefix("count/").unwrap_or(name);
        let (p, g) = counted.split_once('.').unwrap_or((counted, ""));
        p == plural
            && g == group
            && (name.starts_with("count/") || (group.is_empty() && LEGACY_COUNTS.contains(&name)))
    };
    if is_pod {
        let live = !is_terminal(object) && pod_matches_scopes(object, scopes);
        if counts_as(resource) {
            return Some(if live { one } else { Milli(0) });
        }
        let (which, name) = match POD_COMPUTE.iter().find(|(r, _, _)| *r == resource) {
            Some(&(_, which, name)) => (which, name),
            None => ("requests", pod_requested_resource(resource)?),
        };
        return Some(if live {
            pod_resource(object, which, name)
        } else {
            Milli(0)
        });
    }
    if counts_as(resource) {
        return Some(one);
    }
    if group.is_empty() && plural == "services" {
        let type_ = object["spec"]["type"].as_str().unwrap_or("ClusterIP");
        return match resource {
            "services.loadbalancers" => Some(if type_ == "LoadBalancer" {
                one
            } else {
                Milli(0)
            }),
            "services.nodeports" => {
                let ports = if matches!(type_, "NodePort" | "LoadBalancer") {
                    object["spec"]["ports"].as_array().map_or(0, Vec::len)
                } else {
                    0
                };
                Some(Milli(ports as i128 * 1000))
            }
            _ => None,
        };
    }
    if group.is_empty() && plural == "persistentvolumeclaims" {
        let (class, what) = match resource.split_once(STORAGE_CLASS_QUOTA) {
            Some((class, what)) => (Some(class), what),
            None => (None, resource),
        };
        let in_class = class.is_none_or(|c| claim_class(object) == c);
        return match what {
            "requests.storage" => Some(if in_class {
                quantity_at(&object["spec"]["resources"]["requests"], "storage")
            } else {
                Milli(0)
            }),
            "persistentvolumeclaims" if class.is_some() => {
                Some(if in_class { one } else { Milli(0) })
            }
            _ => None,
        };
    }
    None
}

/// What separates a storage class from the claim resource in a per-class quota name
/// (`gold.storageclass.storage.k8s.io/requests.storage`).
const STORAGE_CLASS_QUOTA: &str = ".storageclass.storage.k8s.io/";

/// A claim's storage class: the beta annotation first, then `spec.storageClassName`, as
/// upstream's `GetPersistentVolumeClaimClass`.
fn claim_class(claim: &Value) -> &str {
    claim["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
        .as_str()
        .or_else(|| claim["spec"]["storageClassName"].as_str())
        .unwrap_or("")
}

/// The container resource a pod quota name beyond cpu, memory and ephemeral storage sums
/// from requests: huge pages (`hugepages-2Mi`, `requests.hugepages-2Mi`) and extended
/// resources, which upstream quotas only as `requests.<domain>/<name>`.
fn pod_requested_resource(resource: &str) -> Option<&str> {
    let requested = resource.strip_prefix("requests.");
    let name = requested.unwrap_or(resource);
    if name.starts_with("hugepages-") {
        return Some(name);
    }
    let extended =
        name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.");
    (requested.is_some() && extended).then_some(name)
}

/// The compute resources a quota limits that a pod does not set on every container
/// (upstream refuses such pods: usage could not be charged).
pub fn missing_pod_resources(pod: &Value, hard: &[&str]) -> Vec<String> {
    let mut missing = Vec::new();
    for name in hard {
        let Some(&(_, which, resource)) = POD_COMPUTE.iter().find(|(r, _, _)| r == name) else {
            continue;
        };
        let every =
            containers(pod, "containers").all(|c| !c["resources"][which][resource].is_null());
        if !every {
            missing.push((*name).to_owned());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Milli {
        parse_quantity(s).unwrap().0
    }

    #[test]
    fn quantities_parse_to_thousandths_and_print_in_their_format() {
        assert_eq!(q("500m"), Milli(500));
        assert_eq!(q("1.5"), Milli(1500));
        assert_eq!(q("2"), Milli(2000));
        assert_eq!(q("1Ki"), Milli(1024 * 1000));
        assert_eq!(q("1e3"), Milli(1_000_000));
        assert_eq!(q("1k"), Milli(1_000_000));
        assert_eq!(q("1n"), Milli(1), "rounded up to a thousandth");
        assert!(parse_quantity("lots").is_none());
        assert_eq!(format_quantity(q("1536Mi"), Format::Binary), "1536Mi");
        assert_eq!(format_quantity(q("2Gi"), Format::Binary), "2Gi");
        assert_eq!(format_quantity(q("1500m"), Format::Decimal), "1500m");
        assert_eq!(format_quantity(q("3"), Format::Decimal), "3");
        assert_eq!(format_quantity(q("3000"), Format::Decimal), "3k");
        assert_eq!(format_quantity(Milli(0), Format::Binary), "0");
    }

    #[test]
    fn extended_resources_huge_pages_and_storage_classes_are_counted() {
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"example.com/gpu": "2", "hugepages-2Mi": "4Mi"},
                           "limits": {"example.com/gpu": "2", "hugepages-2Mi": "4Mi"}}},
            {"resources": {"requests": {"example.com/gpu": "1"}}},
        ]}});
        let usage = |r| object_usage("", "pods", &pod, r, &[]);
        assert_eq!(usage("requests.example.com/gpu"), Some(q("3")));
        assert_eq!(
            usage("example.com/gpu"),
            None,
            "only the requests. form quotas them"
        );
        assert_eq!(usage("limits.example.com/gpu"), None);
        assert_eq!(usage("requests.hugepages-2Mi"), Some(q("4Mi")));
        assert_eq!(usage("hugepages-2Mi"), Some(q("4Mi")));
        assert_eq!(usage("requests.kubernetes.io/x"), None);

        let claim = json!({"spec": {"storageClassName": "gold",
            "resources": {"requests": {"storage": "5Gi"}}}});
        let usage = |r| object_usage("", "persistentvolumeclaims", &claim, r, &[]);
        assert_eq!(usage("requests.storage"), Some(q("5Gi")));
        assert_eq!(usage("persistentvolumeclaims"), Some(q("1")));
        assert_eq!(
            usage("gold.storageclass.storage.k8s.io/requests.storage"),
            Some(q("5Gi"))
        );
        assert_eq!(
            usage("gold.storageclass.storage.k8s.io/persistentvolumeclaims"),
            Some(q("1"))
        );
        assert_eq!(
            usage("silver.storageclass.storage.k8s.io/requests.storage"),
            Some(Milli(0))
        );
        let annotated = json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "silver"}},
            "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            object_usage(
                "",
                "persistentvolumeclaims",
                &annotated,
                "silver.storageclass.storage.k8s.io/persistentvolumeclaims",
                &[]
            ),
            Some(q("1"))
        );
    }

    #[test]
    fn a_pod_adds_its_count_and_effective_requests() {
        let pod = json!({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "100m"}}},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "1"}}}],
            "overhead": {"cpu": "10m"},
        }});
        let usage = |r| object_usage("", "pods", &pod, r, &[]);
        assert_eq!(usage("pods"), Some(q("1")));
        assert_eq!(usage("count/pods"), Some(q("1")));
        assert_eq!(usage("requests.cpu"), Some(q("1010m")));
        assert_eq!(usage("limits.cpu"), Some(Milli(0)));
        assert_eq!(usage("limits.memory"), Some(q("1Gi")));
        assert_eq!(usage("configmaps"), None);
        assert_eq!(
            missing_pod_resources(&pod, &["requests.cpu", "limits.memory", "pods"]),
            ["limits.memory"]
        );
        let finished = json!({"spec": pod["spec"], "status": {"phase": "Failed"}});
        assert_eq!(
            object_usage("", "pods", &finished, "requests.cpu", &[]),
            Some(Milli(0))
        );
    }

    #[test]
    fn other_kinds_add_counts_and_service_ports() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]}});
        assert_eq!(
            object_usage("", "services", &svc, "services", &[]),
            Some(q("1"))
        );
        assert_eq!(
            object_usage("", "services", &svc, "services.nodeports", &[]),
            Some(q("2"))
        );
        assert_eq!(
            object_usage("", "services", &svc, "services.loadbalancers", &[]),
            Some(Milli(0))
        );
        let deployment = json!({});
        assert_eq!(
            object_usage(
                "apps",
                "deployments",
                &deployment,
                "count/deployments.apps",
                &[]
            ),
            Some(q("1"))
        );
        assert_eq!(
            object_usage("apps", "deployments", &deployment, "count/deployments", &[]),
            None
        );
        assert_eq!(
            object_usage("", "configmaps", &deployment, "configmaps", &[]),
            Some(q("1"))
        );
        assert_eq!(
            object_usage(
                "",
                "configmaps",
                &deployment,
                "configmaps",
                &["BestEffort".to_owned()]
            ),
            None
        );
        let claim = json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(
            object_usage(
                "",
                "persistentvolumeclaims",
                &claim,
                "requests.storage",
                &[]
            ),
            Some(q("5Gi"))
        );
    }

    #[test]
    fn scopes_select_pods_by_deadline_and_qos() {
        let best_effort = json!({"spec": {"containers": [{}]}});
        let bounded = json!({"spec": {"activeDeadlineSeconds": 5, "containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        let scope = |s: &str| vec![s.to_owned()];
        assert!(pod_matches_scopes(&best_effort, &scope("BestEffort")));
        assert!(!pod_matches_scopes(&bounded, &scope("BestEffort")));
        assert!(pod_matches_scopes(&bounded, &scope("Terminating")));
        assert!(pod_matches_scopes(&best_effort, &scope("NotTerminating")));
    }
}
