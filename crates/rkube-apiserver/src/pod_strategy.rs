//! What upstream's pod create strategy adds to a new pod after its writer's fields are
//! recorded: the PodScheduled condition of a gated pod, and the selectors of its pod
//! (anti-)affinity terms widened by their `matchLabelKeys` / `mismatchLabelKeys`; and what
//! a resize (`pods/resize`) may change.

use serde_json::{Map, Value, json};

use crate::objects::{array_member, object_member};

/// Both of the strategy's additions; `now` gives the condition's transition time.
pub(crate) fn finish_create(pod: &mut Value, now: impl FnOnce() -> String) {
    gated_condition(pod, now);
    merge_label_keys(pod);
}

/// A pod created with scheduling gates starts with PodScheduled=False, reason
/// SchedulingGated (unless the writer gave a PodScheduled condition itself).
fn gated_condition(pod: &mut Value, now: impl FnOnce() -> String) {
    let gated = pod["spec"]["schedulingGates"]
        .as_array()
        .is_some_and(|g| !g.is_empty());
    if !gated {
        return;
    }
    let Some(pod) = pod.as_object_mut() else {
        return;
    };
    let list = array_member(object_member(pod, "status"), "conditions");
    if list.iter().any(|c| c["type"] == "PodScheduled") {
        return;
    }
    list.push(json!({
        "type": "PodScheduled",
        "status": "False",
        "lastProbeTime": null,
        "lastTransitionTime": now(),
        "reason": "SchedulingGated",
        "message": "Scheduling is blocked due to non-empty scheduling gates",
    }));
}

/// Each pod affinity and anti-affinity term (required and preferred) with a label
/// selector gains `key In (value)` for every `matchLabelKeys` key, and `key NotIn (value)`
/// for every `mismatchLabelKeys` key, that the pod's own labels carry.
fn merge_label_keys(pod: &mut Value) {
    let affinity = &pod["spec"]["affinity"];
    if affinity.get("podAffinity").is_none() && affinity.get("podAntiAffinity").is_none() {
        return;
    }
    let Some(labels) = pod["metadata"]["labels"].as_object().cloned() else {
        return;
    };
    let Some(affinity) = pod
        .get_mut("spec")
        .and_then(|s| s.get_mut("affinity"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(kind) = affinity.get_mut(kind).and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(terms) = kind
            .get_mut("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array_mut)
        {
            for term in terms {
                merge_term(term, &labels);
            }
        }
        if let Some(terms) = kind
            .get_mut("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array_mut)
        {
            for weighted in terms {
                if let Some(term) = weighted.get_mut("podAffinityTerm") {
                    merge_term(term, &labels);
                }
            }
        }
    }
}

fn merge_term(term: &mut Value, labels: &Map<String, Value>) {
    let keys = |field: &str| -> Vec<String> {
        term[field]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (matching, mismatching) = (keys("matchLabelKeys"), keys("mismatchLabelKeys"));
    if matching.is_empty() && mismatching.is_empty() {
        return;
    }
    let Some(selector) = term.get_mut("labelSelector").and_then(Value::as_object_mut) else {
        // A nil selector matches nothing; there is nothing to widen.
        return;
    };
    let list = array_member(selector, "matchExpressions");
    for (keys, operator) in [(matching, "In"), (mismatching, "NotIn")] {
        for key in keys {
            if let Some(value) = labels.get(&key) {
                list.push(json!({"key": key, "operator": operator, "values": [value]}));
            }
        }
    }
}

/// A resize keeps the stored pod and takes from the request only its containers' (and init
/// containers') resources and resize policies, matched by position and name (upstream's
/// `dropNonResizeUpdates`), and its resource version.
pub(crate) fn resize_update(new: Value, old: &Value) -> Value {
    let mut merged = old.clone();
    for list in ["containers", "initContainers"] {
        let Some(requested) = new["spec"][list].as_array() else {
            continue;
        };
        let Some(kept) = merged["spec"][list].as_array_mut() else {
            continue;
        };
        for (container, asked) in kept.iter_mut().zip(requested) {
            if container["name"] != asked["name"] {
                continue;
            }
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            for field in ["resources", "resizePolicy"] {
                match asked.get(field) {
                    Some(value) => container.insert(field.to_owned(), value.clone()),
                    None => container.remove(field),
                };
            }
        }
    }
    if let Some(rv) = new["metadata"].get("resourceVersion") {
        merged["metadata"]["resourceVersion"] = rv.clone();
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gated_pod_starts_with_a_scheduling_gated_condition() {
        let mut pod = json!({"spec": {"schedulingGates": [{"name": "example.com/a"}]},
            "status": {"phase": "Pending"}});
        finish_create(&mut pod, || "2026-01-01T00:00:00Z".into());
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates"}])
        );
        assert_eq!(pod["status"]["phase"], "Pending");

        // No gates, or an empty list: nothing is added.
        for spec in [json!({}), json!({"schedulingGates": []})] {
            let mut pod = json!({"spec": spec, "status": {}});
            finish_create(&mut pod, || "now".into());
            assert_eq!(pod["status"], json!({}));
        }
        // The writer's own PodScheduled condition stays.
        let mine = json!([{"type": "PodScheduled", "status": "True"}]);
        let mut pod = json!({"spec": {"schedulingGates": [{"name": "g"}]},
            "status": {"conditions": mine.clone()}});
        finish_create(&mut pod, || "now".into());
        assert_eq!(pod["status"]["conditions"], mine);
    }

    #[test]
    fn label_keys_widen_affinity_selectors_with_the_pods_own_values() {
        let mut pod = json!({
            "metadata": {"labels": {"app": "web", "tier": "front", "rev": "7"}},
            "spec": {"affinity": {
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "topologyKey": "zone",
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "matchLabelKeys": ["rev", "absent"],
                }]},
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1,
                        "podAffinityTerm": {
                            "topologyKey": "host",
                            "labelSelector": {"matchExpressions": [
                                {"key": "app", "operator": "Exists"}]},
                            "matchLabelKeys": ["tier"],
                            "mismatchLabelKeys": ["rev"],
                        }}],
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "topologyKey": "host", "matchLabelKeys": ["app"]}],
                },
            }},
        });
        finish_create(&mut pod, || "now".into());
        let affinity = &pod["spec"]["affinity"];
        assert_eq!(
            affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"],
            json!({"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "rev", "operator": "In", "values": ["7"]}]})
        );
        let anti = &affinity["podAntiAffinity"];
        assert_eq!(
            anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["labelSelector"]
                ["matchExpressions"],
            json!([{"key": "app", "operator": "Exists"},
                {"key": "tier", "operator": "In", "values": ["front"]},
                {"key": "rev", "operator": "NotIn", "values": ["7"]}])
        );
        // A term without a selector selects nothing and stays so.
        assert_eq!(
            anti["requiredDuringSchedulingIgnoredDuringExecution"][0].get("labelSelector"),
            None
        );
    }
}
