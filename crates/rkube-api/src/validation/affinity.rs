//! Scheduling constraints in a pod spec: node and pod (anti-)affinity, and topology spread
//! constraints.

use serde_json::Value;

use super::field::{self, Path, get, int_at, list_at, str_at};
use super::names::{is_dns1123_label, is_qualified_name};
use crate::error::FieldError;

/// `validateAffinity`.
pub(super) fn affinity(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let Some(affinity) = get(spec, "affinity") else {
        return;
    };
    let path = path.child("affinity");
    if let Some(node) = get(affinity, "nodeAffinity") {
        node_affinity(node, &path.child("nodeAffinity"), errs);
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        if let Some(pod) = get(affinity, kind) {
            pod_affinity(pod, &path.child(kind), errs);
        }
    }
}

fn node_affinity(node: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(required) = get(node, "requiredDuringSchedulingIgnoredDuringExecution") {
        let required_path = path.child("requiredDuringSchedulingIgnoredDuringExecution");
        let rp = required_path.child("nodeSelectorTerms");
        let terms = list_at(required, "nodeSelectorTerms");
        if terms.is_empty() {
            errs.push(FieldError::required(
                &rp,
                "must have at least one node selector term",
            ));
        }
        for (i, term) in terms.iter().enumerate() {
            node_selector_term(term, &rp.index(i), errs);
        }
    }
    let pp = path.child("preferredDuringSchedulingIgnoredDuringExecution");
    for (i, preferred) in list_at(node, "preferredDuringSchedulingIgnoredDuringExecution")
        .iter()
        .enumerate()
    {
        let p = pp.index(i);
        weight(preferred, &p, errs);
        let term = get(preferred, "preference").unwrap_or(&Value::Null);
        node_selector_term(term, &p.child("preference"), errs);
    }
}

/// `ValidateNodeSelectorTerm`: its label and field requirements.
fn node_selector_term(term: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for (list, label_keys) in [("matchExpressions", true), ("matchFields", false)] {
        for (j, req) in list_at(term, list).iter().enumerate() {
            let list_path = path.child(list);
            let p = list_path.index(j);
            let values = list_at(req, "values");
            match str_at(req, "operator") {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        errs.push(FieldError::required(
                            p.child("values"),
                            "must be specified when `operator` is 'In' or 'NotIn'",
                        ));
                    }
                }
                "Exists" | "DoesNotExist" if label_keys => {
                    if !values.is_empty() {
                        errs.push(FieldError::forbidden(
                            p.child("values"),
                            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                        ));
                    }
                }
                "Gt" | "Lt" if label_keys => {
                    let single_int = values.len() == 1
                        && values[0].as_str().is_some_and(|v| v.parse::<i64>().is_ok());
                    if !single_int {
                        errs.push(FieldError::required(
                            p.child("values"),
                            "must be specified single value when `operator` is 'Lt' or 'Gt'",
                        ));
                    }
                }
                other => errs.push(FieldError::invalid(
                    p.child("operator"),
                    other,
                    "not a valid selector operator",
                )),
            }
            let key = str_at(req, "key");
            if label_keys {
                for msg in is_qualified_name(key) {
                    errs.push(FieldError::invalid(p.child("key"), key, &msg));
                }
            } else if key != "metadata.name" {
                errs.push(FieldError::not_supported(
                    p.child("key"),
                    key,
                    &["metadata.name"],
                ));
            }
        }
    }
}

fn pod_affinity(pod: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let rp = path.child("requiredDuringSchedulingIgnoredDuringExecution");
    for (i, term) in list_at(pod, "requiredDuringSchedulingIgnoredDuringExecution")
        .iter()
        .enumerate()
    {
        pod_affinity_term(term, &rp.index(i), errs);
    }
    let pp = path.child("preferredDuringSchedulingIgnoredDuringExecution");
    for (i, preferred) in list_at(pod, "preferredDuringSchedulingIgnoredDuringExecution")
        .iter()
        .enumerate()
    {
        let p = pp.index(i);
        weight(preferred, &p, errs);
        let term = get(preferred, "podAffinityTerm").unwrap_or(&Value::Null);
        pod_affinity_term(term, &p.child("podAffinityTerm"), errs);
    }
}

/// `validatePodAffinityTerm`.
fn pod_affinity_term(term: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    for key in ["labelSelector", "namespaceSelector"] {
        if let Some(selector) = get(term, key) {
            field::label_selector(selector, &path.child(key), errs);
        }
    }
    for name in list_at(term, "namespaces").iter().filter_map(Value::as_str) {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(path.child("namespace"), name, &msg));
        }
    }
    let key = str_at(term, "topologyKey");
    if key.is_empty() {
        errs.push(FieldError::required(
            path.child("topologyKey"),
            "can not be empty",
        ));
    } else {
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(path.child("topologyKey"), key, &msg));
        }
    }
    label_keys(term, path, errs);
}

/// `validateMatchLabelKeysAndMismatchLabelKeys`, on the term as created (its selector already
/// widened by the keys): valid label names, only with a selector, no `matchLabelKeys` key
/// also in the writer's selector, none in both lists. The selector clash is reported at
/// the term's index path, as upstream does.
fn label_keys(term: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let keys = |field: &str| -> Vec<&str> {
        list_at(term, field)
            .iter()
            .filter_map(Value::as_str)
            .collect()
    };
    let (matching, mismatching) = (keys("matchLabelKeys"), keys("mismatchLabelKeys"));
    let selector = get(term, "labelSelector");
    for (field, list) in [
        ("matchLabelKeys", &matching),
        ("mismatchLabelKeys", &mismatching),
    ] {
        if list.is_empty() {
            continue;
        }
        let p = path.child(field);
        if selector.is_none() {
            errs.push(FieldError::forbidden(
                p,
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for (i, key) in list.iter().enumerate() {
            for msg in is_qualified_name(key) {
                errs.push(FieldError::invalid(p.index(i), *key, &msg));
            }
        }
    }
    if let Some(selector) = selector {
        let mut seen: Vec<&str> = get(selector, "matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for expression in list_at(selector, "matchExpressions") {
            let key = str_at(expression, "key");
            if let Some(i) = matching.iter().rposition(|k| *k == key)
                && seen.contains(&key)
            {
                errs.push(FieldError::invalid(
                    path.index(i),
                    key,
                    "exists in both matchLabelKeys and labelSelector",
                ));
            }
            seen.push(key);
        }
    }
    for (i, key) in matching.iter().enumerate() {
        if mismatching.contains(key) {
            errs.push(FieldError::invalid(
                path.child("matchLabelKeys").index(i),
                *key,
                "exists in both matchLabelKeys and mismatchLabelKeys",
            ));
        }
    }
}

fn weight(preferred: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let weight = int_at(preferred, "weight").unwrap_or(0);
    if !(1..=100).contains(&weight) {
        errs.push(FieldError::invalid(
            path.child("weight"),
            weight,
            "must be in the range 1-100",
        ));
    }
}

/// `validateTopologySpreadConstraints`, in part.
pub(super) fn topology_spread(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let path = path.child("topologySpreadConstraints");
    let mut seen = Vec::new();
    for (i, constraint) in list_at(spec, "topologySpreadConstraints")
        .iter()
        .enumerate()
    {
        let p = path.index(i);
        let skew = int_at(constraint, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(FieldError::invalid(
                p.child("maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        let key = str_at(constraint, "topologyKey");
        if key.is_empty() {
            errs.push(FieldError::required(
                p.child("topologyKey"),
                "can not be empty",
            ));
        } else {
            for msg in is_qualified_name(key) {
                errs.push(FieldError::invalid(p.child("topologyKey"), key, &msg));
            }
        }
        let action = str_at(constraint, "whenUnsatisfiable");
        let actions = ["DoNotSchedule", "ScheduleAnyway"];
        if !actions.contains(&action) {
            errs.push(FieldError::not_supported(
                p.child("whenUnsatisfiable"),
                action,
                &actions,
            ));
        }
        if let Some(min) = int_at(constraint, "minDomains") {
            if min <= 0 {
                errs.push(FieldError::invalid(
                    p.child("minDomains"),
                    min,
                    "must be greater than 0",
                ));
            } else if action != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    p.child("minDomains"),
                    min,
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway",
                ));
            }
        }
        let pair = (key, action);
        if seen.contains(&pair) {
            errs.push(FieldError::duplicate(
                p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{key}, {action}}}"),
            ));
        } else {
            seen.push(pair);
        }
        if let Some(selector) = get(constraint, "labelSelector") {
            field::label_selector(selector, &p.child("labelSelector"), errs);
        }
    }
}
