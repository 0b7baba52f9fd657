//! The Priority admission plugin: a new pod's `priority` and `preemptionPolicy` come from
//! its PriorityClass (or the cluster's global default class), and at most one PriorityClass
//! may be the global default. The two system classes exist from the first start.

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Map, Value, json};

use crate::admission::Informers;

/// The built-in classes upstream creates at start: name, value, description.
pub(crate) const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// A system class as stored.
pub(crate) fn system_class(name: &str, value: i64, description: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "value": value,
        "description": description,
        "preemptionPolicy": "PreemptLowerPriority",
    })
}

/// The global default class: the one with the lowest value when a race left several.
fn global_default(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c["globalDefault"].as_bool() == Some(true))
        .min_by_key(|c| c["value"].as_i64().unwrap_or(0))
}

/// What a new pod gets from the classes: `Err` carries the reason upstream forbids it.
pub(crate) fn resolve_pod(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let (priority, policy) = match named {
        Some(name) => {
            let stored = classes
                .iter()
                .find(|c| c["metadata"]["name"].as_str() == Some(name.as_str()));
            // The system classes are known even before the server has written them.
            let system = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name);
            match (stored, system) {
                (Some(class), _) => (
                    class["value"].as_i64().unwrap_or(0),
                    class["preemptionPolicy"].as_str().map(str::to_owned),
                ),
                (None, Some((_, value, _))) => (*value, None),
                (None, None) => return Err(format!("no PriorityClass with name {name} was found")),
            }
        }
        None => match global_default(classes) {
            Some(class) => {
                if let Some(name) = class["metadata"]["name"].as_str() {
                    spec.insert("priorityClassName".into(), json!(name));
                }
                (
                    class["value"].as_i64().unwrap_or(0),
                    class["preemptionPolicy"].as_str().map(str::to_owned),
                )
            }
            None => (0, Some("PreemptLowerPriority".to_owned())),
        },
    };
    set_computed(
        spec,
        "priority",
        "the integer value of priority",
        json!(priority),
    )?;
    // Stored classes always carry a policy (their defaulting sets it).
    let policy = policy.unwrap_or_else(|| "PreemptLowerPriority".to_owned());
    set_computed(
        spec,
        "preemptionPolicy",
        "the string value of PreemptionPolicy",
        json!(policy),
    )
}

/// Sets `field` to what the plugin computed, refusing a pod that gave another value (`what`
/// names the field in upstream's message).
fn set_computed(
    spec: &mut Map<String, Value>,
    field: &str,
    what: &str,
    computed: Value,
) -> Result<(), String> {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if let Some(given) = spec.get(field).filter(|g| !g.is_null())
        && *given != computed
    {
        return Err(format!(
            "{what} ({}) must not be provided in pod spec; priority admission controller \
             computed {} from the given PriorityClass name",
            text(given),
            text(&computed)
        ));
    }
    spec.insert(field.into(), computed);
    Ok(())
}

/// Whether `class` may be the global default: no other class already is.
pub(crate) fn check_default(class: &Value, classes: &[Value]) -> Result<(), String> {
    if class["globalDefault"].as_bool() != Some(true) {
        return Ok(());
    }
    let name = class["metadata"]["name"].as_str().unwrap_or("");
    match global_default(classes) {
        Some(other) if other["metadata"]["name"].as_str() != Some(name) => Err(format!(
            "PriorityClass {} is already marked as default. Only one default can exist",
            other["metadata"]["name"].as_str().unwrap_or("")
        )),
        _ => Ok(()),
    }
}

fn is_pod(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Pod"
}

fn is_priority_class(rt: &ResourceType) -> bool {
    rt.group == "scheduling.k8s.io" && rt.kind == "PriorityClass"
}

/// Upstream's Priority plugin on a create (`old` None) or update of the main resource.
pub(crate) async fn admit(
    cluster: &impl Informers,
    rt: &ResourceType,
    name: &str,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let applies = (is_pod(rt) && old.is_none()) || is_priority_class(rt);
    if !applies {
        return Ok(());
    }
    if is_priority_class(rt) && object["globalDefault"].as_bool() != Some(true) {
        return Ok(());
    }
    let classes_rt = crate::admission::kind("scheduling.k8s.io", "PriorityClass")?;
    let classes = cluster.list(classes_rt, None).await?;
    let result = if is_pod(rt) {
        resolve_pod(object, &classes)
    } else {
        check_default(object, &classes)
    };
    result.map_err(|message| {
        ApiError::Forbidden(format!(
            "{} {name:?} is forbidden: {message}",
            rt.qualified_plural()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64, default: bool, policy: &str) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": default, "preemptionPolicy": policy})
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn a_named_class_gives_its_value_and_policy() {
        let classes = [class("high", 1000, false, "Never")];
        let mut p = pod(json!({"priorityClassName": "high"}));
        resolve_pod(&mut p, &classes).unwrap();
        assert_eq!(p["spec"]["priority"], 1000);
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");
    }

    #[test]
    fn without_a_class_the_global_default_or_zero_applies() {
        let mut p = pod(json!({}));
        resolve_pod(&mut p, &[]).unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        assert!(p["spec"].get("priorityClassName").is_none());

        // Two defaults after a race: the lower value wins, as upstream.
        let classes = [
            class("a", 50, true, "PreemptLowerPriority"),
            class("b", 10, true, "Never"),
            class("c", 5, false, "PreemptLowerPriority"),
        ];
        let mut p = pod(json!({}));
        resolve_pod(&mut p, &classes).unwrap();
        assert_eq!(p["spec"]["priorityClassName"], "b");
        assert_eq!(p["spec"]["priority"], 10);
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");
    }

    #[test]
    fn unknown_classes_and_contradicting_values_are_refused_with_upstream_text() {
        let classes = [class("high", 1000, false, "PreemptLowerPriority")];
        let mut p = pod(json!({"priorityClassName": "missing"}));
        assert_eq!(
            resolve_pod(&mut p, &classes).unwrap_err(),
            "no PriorityClass with name missing was found"
        );
        let mut p = pod(json!({"priorityClassName": "high", "priority": 7}));
        assert_eq!(
            resolve_pod(&mut p, &classes).unwrap_err(),
            "the integer value of priority (7) must not be provided in pod spec; priority \
             admission controller computed 1000 from the given PriorityClass name"
        );
        // The same value as computed is accepted (a pod copied from another).
        let mut p = pod(json!({"priorityClassName": "high", "priority": 1000}));
        resolve_pod(&mut p, &classes).unwrap();
        let mut p = pod(json!({"priorityClassName": "high", "preemptionPolicy": "Never"}));
        assert!(
            resolve_pod(&mut p, &classes)
                .unwrap_err()
                .starts_with("the string value of PreemptionPolicy (Never) must not be provided")
        );
    }

    #[test]
    fn only_one_class_may_be_the_global_default() {
        let existing = [class("a", 1, true, "PreemptLowerPriority")];
        assert_eq!(
            check_default(&class("b", 2, true, "Never"), &existing).unwrap_err(),
            "PriorityClass a is already marked as default. Only one default can exist"
        );
        // Updating the default itself, or a class that is not a default, is fine.
        check_default(&class("a", 1, true, "Never"), &existing).unwrap();
        check_default(&class("b", 2, false, "Never"), &existing).unwrap();
        check_default(&class("b", 2, true, "Never"), &[]).unwrap();
    }
}
