//! A webhook's `matchConditions`: CEL expressions over `object`, `oldObject` and `request`,
//! all of which must hold for the webhook to be called. An expression that fails to compile
//! or evaluate is an error, which upstream treats as a failed call (refused under
//! failurePolicy Fail, the webhook skipped under Ignore). `authorizer` is not offered: an
//! expression naming it does not compile.

use rkube_cel::{Environment, Value as Cel, from_json};
use serde_json::{Value, json};

use super::Attributes;

/// The variables of a match condition (upstream's `cel.MatchConditions` environment).
pub(crate) const VARIABLES: &[&str] = &["object", "oldObject", "request"];

/// The `request` variable: the AdmissionRequest's fields a condition may read.
pub(crate) fn request(attrs: &Attributes<'_>) -> Value {
    let user = super::current_user();
    json!({
        "operation": attrs.operation.as_str(),
        "name": attrs.name,
        "namespace": attrs.namespace.unwrap_or(""),
        "subResource": attrs.subresource.unwrap_or(""),
        "dryRun": attrs.dry_run,
        "kind": {"group": attrs.rt.group, "version": attrs.rt.version, "kind": attrs.rt.kind},
        "resource": {"group": attrs.rt.group, "version": attrs.rt.version, "resource": attrs.rt.plural},
        "requestKind": {"group": attrs.rt.group, "version": attrs.rt.version, "kind": attrs.rt.kind},
        "requestResource": {"group": attrs.rt.group, "version": attrs.rt.version, "resource": attrs.rt.plural},
        "userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups},
    })
}

/// Whether every condition holds; an error names the condition that could not be evaluated.
pub(super) fn all_hold(
    conditions: &[(String, String)],
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    if conditions.is_empty() {
        return Ok(true);
    }
    let variables = [
        ("object", object.map_or(Cel::Null, from_json)),
        ("oldObject", old.map_or(Cel::Null, from_json)),
        ("request", from_json(&request(attrs))),
    ];
    evaluate_all(conditions, &variables)
}

fn evaluate_all(
    conditions: &[(String, String)],
    variables: &[(&str, Cel)],
) -> Result<bool, String> {
    let env = Environment::new(VARIABLES);
    // Upstream evaluates every condition: any false skips the webhook even when another
    // condition fails to evaluate.
    let mut failure = None;
    for (name, expression) in conditions {
        let result = env
            .compile(expression)
            .map_err(|e| e.to_string())
            .and_then(|p| p.evaluate(variables).map_err(|e| e.to_string()));
        match result {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => return Ok(false),
            Ok(other) => {
                failure.get_or_insert(format!(
                    "failed to evaluate match condition {name:?}: expected a bool, got {}",
                    rkube_cel::type_name(&other)
                ));
            }
            Err(e) => {
                failure.get_or_insert(format!("failed to evaluate match condition {name:?}: {e}"));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables() -> Vec<(&'static str, Cel)> {
        vec![
            (
                "object",
                from_json(
                    &json!({"metadata": {"name": "skip-me", "labels": {"app.kubernetes.io/name": "web"}}}),
                ),
            ),
            ("oldObject", Cel::Null),
            ("request", from_json(&json!({"operation": "CREATE"}))),
        ]
    }

    fn holds(expression: &str) -> Result<bool, String> {
        evaluate_all(&[("c".into(), expression.into())], &variables())
    }

    #[test]
    fn conditions_select_on_names_labels_and_operations() {
        assert_eq!(holds("object.metadata.name != 'skip-me'"), Ok(false));
        assert_eq!(holds("object.metadata.name == \"skip-me\""), Ok(true));
        assert_eq!(
            holds("object.metadata.labels['app.kubernetes.io/name'] == 'web'"),
            Ok(true)
        );
        assert_eq!(
            holds("request.operation == 'CREATE' && !has(object.metadata.annotations)"),
            Ok(true)
        );
        assert_eq!(holds("object.metadata.name.startsWith('s')"), Ok(true));
        assert_eq!(holds("size(object.metadata.name) > 1"), Ok(true));
    }

    #[test]
    fn a_condition_that_cannot_be_evaluated_is_an_error() {
        assert!(holds("object.metadata.missing == 'x'").is_err());
        assert!(holds("authorizer.requestResource.check('x').allowed()").is_err());
        assert!(holds("object.metadata.name").is_err());
    }

    #[test]
    fn a_false_condition_wins_over_an_error() {
        let conditions = [
            ("broken".to_owned(), "object.nope == 1".to_owned()),
            ("no".to_owned(), "false".to_owned()),
        ];
        assert_eq!(evaluate_all(&conditions, &variables()), Ok(false));
    }
}
