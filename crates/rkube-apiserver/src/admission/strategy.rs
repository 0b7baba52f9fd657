//! The resource's own defaulting and validation (upstream's REST strategy), run inside the
//! admission chain after the mutating plugins and before the validating ones.

use rkube_api::error::FieldErrorKind;
use rkube_api::registry::ResourceType;
use rkube_api::{ApiError, FieldError, defaults, validation};
use serde_json::Value;

/// Defaults `object`, then validates it (against `old` on update); 422 with field causes if
/// it is invalid. `scheme_defaulted`: the scheme's defaults were applied already.
pub fn admit(
    rt: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
    scheme_defaulted: bool,
) -> Result<(), ApiError> {
    if let Some(custom) = &rt.custom {
        return admit_custom(rt, custom, object, old);
    }
    let is_crd = rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition";
    if scheme_defaulted {
        defaults::admission_defaults(rt.group, rt.kind, object);
    } else {
        defaults::apply_defaults(rt.group, rt.kind, object);
    }
    if is_crd {
        rkube_api::crd::definition::apply_defaults(object);
    }
    if old.is_none() && rt.group.is_empty() && rt.kind == "Pod" {
        default_toleration_seconds(object);
    }
    let mut causes = validation::validate(rt.group, rt.kind, object, old);
    if is_crd {
        causes.extend(rkube_api::crd::definition::validate(object, old));
        causes.extend(crate::crd_rules::validate_definition(object, old));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            kind: rt.qualified_kind(),
            name: object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            causes,
        })
    }
}

/// A custom resource: the schema's defaults (also on objects read back, so applied again
/// here), metadata checks, then the schema's validation.
fn admit_custom(
    rt: &ResourceType,
    custom: &rkube_api::crd::Version,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    custom.prune_and_default(object);
    let mut causes = validation::validate(rt.group, rt.kind, object, old);
    causes.extend(custom.validate(object));
    if custom.has_rules {
        // Upstream's customResourceStrategy: the rules assume the schema's shape, so a
        // wrong type, a missing required field, an unsupported enum value or a size limit
        // passed keeps them from running, and says so; other schema errors do not.
        let blocked = causes.iter().any(|c| {
            matches!(
                c.kind,
                FieldErrorKind::NotSupported
                    | FieldErrorKind::Required
                    | FieldErrorKind::TooLong
                    | FieldErrorKind::TooMany
                    | FieldErrorKind::TypeInvalid
            )
        });
        if blocked {
            causes.push(FieldError::invalid(
                "<nil>",
                Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            causes.extend(crate::crd_rules::validate(&custom.schema, object, old));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            kind: rt.qualified_kind(),
            name: object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            causes,
        })
    }
}

/// How long pods tolerate a not-ready or unreachable node by default (upstream's
/// `--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds`).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The DefaultTolerationSeconds admission plugin: a new pod that does not already tolerate
/// the `node.kubernetes.io/not-ready` or `node.kubernetes.io/unreachable` NoExecute taint
/// gets a toleration of it for [`DEFAULT_TOLERATION_SECONDS`], so that the pods of a lost
/// node are evicted after five minutes rather than at once.
pub fn default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // As upstream: a toleration with this key (or no key) and the NoExecute effect (or no
    // effect) counts, whatever its operator.
    let tolerates = |key: &str| {
        existing.iter().any(|t| {
            let k = t["key"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let missing: Vec<&str> = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .filter(|key| !tolerates(key))
    .collect();
    if missing.is_empty() {
        return;
    }
    let list = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Value::Array(list) = list {
        for key in missing {
            list.push(serde_json::json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_get_not_ready_and_unreachable_tolerations_unless_they_have_them() {
        let mut pod = json!({"spec": {"containers": []}});
        default_toleration_seconds(&mut pod);
        let keys: Vec<&str> = pod["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable"
            ]
        );
        assert_eq!(pod["spec"]["tolerations"][0]["tolerationSeconds"], 300);

        let mut own = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]}});
        default_toleration_seconds(&mut own);
        let tolerations = own["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 5);

        let mut null = json!({"spec": {"tolerations": null}});
        default_toleration_seconds(&mut null);
        assert_eq!(null["spec"]["tolerations"].as_array().unwrap().len(), 2);

        let mut everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&mut everything);
        assert_eq!(
            everything["spec"]["tolerations"].as_array().unwrap().len(),
            1
        );
    }
}
