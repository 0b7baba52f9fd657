//! The RuntimeClass admission plugin: a new pod naming a RuntimeClass gets the class's pod
//! overhead (which the scheduler adds to its requests) and its scheduling constraints (node
//! selector and tolerations); a pod naming a class that does not exist is refused.

use rkube_api::ApiError;
use rkube_api::quota::parse_quantity;
use rkube_api::registry::ResourceType;
use serde_json::{Map, Value};

use crate::admission::Informers;

/// Whether two resource lists hold the same quantities (`100m` equals `0.1`).
fn same_resources(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let amount = |v: &Value| v.as_str().and_then(parse_quantity).map(|(m, _)| m);
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| amount(v) == amount(w)))
}

/// Applies `class` (a stored RuntimeClass, or `None` when the pod names none) to `pod`;
/// `Err` carries the reason upstream forbids it.
pub(crate) fn apply_class(pod: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let given = spec
        .get("overhead")
        .and_then(Value::as_object)
        .filter(|o| !o.is_empty());
    let defined = class
        .and_then(|c| c["overhead"]["podFixed"].as_object())
        .filter(|o| !o.is_empty());
    match (given, defined) {
        (Some(given), Some(defined)) if !same_resources(given, defined) => {
            return Err(
                "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
            );
        }
        (Some(_), None) => {
            return Err(
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
                    .into(),
            );
        }
        (_, Some(defined)) => {
            let defined = Value::Object(defined.clone());
            spec.insert("overhead".into(), defined);
        }
        (None, None) => {}
    }
    let Some(scheduling) = class.map(|c| &c["scheduling"]) else {
        return Ok(());
    };
    if let Some(selector) = scheduling["nodeSelector"].as_object() {
        let mut merged = spec
            .get("nodeSelector")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, value) in selector {
            if let Some(own) = merged.get(key)
                && own != value
            {
                return Err(format!(
                    "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {}; \
                     pod.spec.nodeSelector[{key}] = {}",
                    value.as_str().unwrap_or(""),
                    own.as_str().unwrap_or("")
                ));
            }
            merged.insert(key.clone(), value.clone());
        }
        if !merged.is_empty() {
            spec.insert("nodeSelector".into(), Value::Object(merged));
        }
    }
    if let Some(extra) = scheduling["tolerations"].as_array() {
        let own = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let merged = merge_tolerations(own, extra);
        spec.insert("tolerations".into(), Value::Array(merged));
    }
    Ok(())
}

/// The pod's tolerations followed by the class's, keeping only one of equal tolerations and
/// leaving out any that another one tolerates a superset of (upstream's MergeTolerations).
fn merge_tolerations(first: &[Value], second: &[Value]) -> Vec<Value> {
    let all: Vec<&Value> = first.iter().chain(second).collect();
    let mut merged: Vec<Value> = Vec::new();
    for (i, t) in all.iter().enumerate() {
        let covered_by_kept = merged.iter().any(|kept| covers(kept, t));
        let covered_by_later = all[i + 1..]
            .iter()
            .any(|later| later != t && covers(later, t));
        if !covered_by_kept && !covered_by_later {
            merged.push((*t).clone());
        }
    }
    merged
}

/// Whether toleration `wide` tolerates everything `t` does.
fn covers(wide: &Value, t: &Value) -> bool {
    if wide == t {
        return true;
    }
    let field = |v: &Value, name: &str| v[name].as_str().unwrap_or("").to_owned();
    let (wide_key, wide_op) = (field(wide, "key"), field(wide, "operator"));
    // An empty key with Exists tolerates every key.
    if field(t, "key") != wide_key && !(wide_key.is_empty() && wide_op == "Exists") {
        return false;
    }
    // An empty effect tolerates every effect.
    let wide_effect = field(wide, "effect");
    if field(t, "effect") != wide_effect && !wide_effect.is_empty() {
        return false;
    }
    if wide_effect == "NoExecute"
        && let Some(limit) = wide["tolerationSeconds"].as_i64()
        && t["tolerationSeconds"].as_i64().is_none_or(|s| s > limit)
    {
        return false;
    }
    match wide_op.as_str() {
        "Equal" | "" => {
            field(t, "operator") == "Equal" && field(t, "value") == field(wide, "value")
        }
        "Exists" => true,
        _ => false,
    }
}

/// Upstream's RuntimeClass plugin on a pod create.
pub(crate) async fn admit(
    cluster: &impl Informers,
    rt: &ResourceType,
    name: &str,
    object: &mut Value,
) -> Result<(), ApiError> {
    if !(rt.group.is_empty() && rt.kind == "Pod") {
        return Ok(());
    }
    let forbidden = |message: String| {
        ApiError::Forbidden(format!(
            "{} {name:?} is forbidden: {message}",
            rt.qualified_plural()
        ))
    };
    let class_name = object["spec"]["runtimeClassName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let class = match class_name {
        None => None,
        Some(class_name) => {
            let classes_rt = crate::admission::kind("node.k8s.io", "RuntimeClass")?;
            match cluster.get(classes_rt, None, &class_name).await {
                Ok(class) => Some(class),
                Err(ApiError::NotFound { .. }) => {
                    return Err(forbidden(format!(
                        "pod rejected: RuntimeClass {class_name:?} not found"
                    )));
                }
                Err(err) => return Err(err),
            }
        }
    };
    apply_class(object, class.as_ref()).map_err(forbidden)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_class_overhead_and_scheduling_are_copied_into_the_pod() {
        let class = json!({
            "handler": "kata",
            "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
            "scheduling": {
                "nodeSelector": {"sandbox": "kata"},
                "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
            },
        });
        let mut pod = json!({"spec": {
            "nodeSelector": {"zone": "a"},
            "tolerations": [{"key": "other", "operator": "Exists"}],
        }});
        apply_class(&mut pod, Some(&class)).unwrap();
        assert_eq!(
            pod["spec"]["overhead"],
            json!({"cpu": "250m", "memory": "120Mi"})
        );
        assert_eq!(
            pod["spec"]["nodeSelector"],
            json!({"zone": "a", "sandbox": "kata"})
        );
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        // Applying again changes nothing (the pod already carries what the class adds).
        let before = pod.clone();
        apply_class(&mut pod, Some(&class)).unwrap();
        assert_eq!(pod, before);
    }

    #[test]
    fn tolerations_another_one_covers_are_left_out() {
        let t = |v: serde_json::Value| v;
        let pod = [
            t(json!({"key": "a", "operator": "Equal", "value": "x", "effect": "NoSchedule"})),
            t(json!({"key": "gpu", "operator": "Exists"})),
        ];
        let class = [
            // Covers the pod's first toleration (any value of `a`, every effect).
            t(json!({"key": "a", "operator": "Exists"})),
            // Covered by the pod's `gpu` toleration.
            t(json!({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})),
            // An equal copy of one already there.
            t(json!({"key": "gpu", "operator": "Exists"})),
            // Not covered: a shorter NoExecute allowance is not covered by a longer one.
            t(
                json!({"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}),
            ),
            t(
                json!({"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}),
            ),
        ];
        assert_eq!(
            merge_tolerations(&pod, &class),
            vec![
                json!({"key": "gpu", "operator": "Exists"}),
                json!({"key": "a", "operator": "Exists"}),
                json!({"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}),
            ]
        );
        // Everything tolerated by an empty-key Exists toleration.
        let all = [json!({"operator": "Exists"})];
        assert_eq!(merge_tolerations(&pod, &all), all.to_vec());
    }

    #[test]
    fn overheads_and_selectors_that_disagree_are_refused_with_upstream_text() {
        let class = json!({"overhead": {"podFixed": {"cpu": "250m"}}, "scheduling": {"nodeSelector": {"sandbox": "kata"}}});
        let mut same = json!({"spec": {"overhead": {"cpu": "0.25"}}});
        apply_class(&mut same, Some(&class)).unwrap();
        let mut differs = json!({"spec": {"overhead": {"cpu": "1"}}});
        assert_eq!(
            apply_class(&mut differs, Some(&class)).unwrap_err(),
            "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
        );
        let mut without_class = json!({"spec": {"overhead": {"cpu": "1"}}});
        assert_eq!(
            apply_class(&mut without_class, None).unwrap_err(),
            "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
        );
        let mut conflict = json!({"spec": {"nodeSelector": {"sandbox": "gvisor"}}});
        assert_eq!(
            apply_class(&mut conflict, Some(&class)).unwrap_err(),
            "conflict: runtimeClass.scheduling.nodeSelector[sandbox] = kata; \
             pod.spec.nodeSelector[sandbox] = gvisor"
        );
    }
}
