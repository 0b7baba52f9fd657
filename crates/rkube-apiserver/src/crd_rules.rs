//! CRD validation rules (`x-kubernetes-validations`): compiled when a definition is written,
//! evaluated on every write of a custom resource, with `self` bound to the node the rule sits
//! on and `oldSelf` to the same node of the stored object on update.
//!
//! Upstream: staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go
//! (evaluation and messages) and pkg/apis/apiextensions/validation (compilation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rkube_api::FieldError;
use rkube_api::error::FieldErrorKind;
use rkube_cel::{Environment, EvalError, Program, Value as Cel, from_json_typed, optional};
use serde_json::Value;

/// The variables every CRD rule may name.
fn environment() -> Environment {
    Environment::new(&["self", "oldSelf"])
}

/// Compiles every rule of every version's schema of a definition and checks their estimated
/// cost; the failures as upstream reports them (`spec.validation.openAPIV3Schema
/// .properties[spec].x-kubernetes-validations[0].rule: Invalid value: …: compilation failed:
/// …`, under `spec.versions[i].schema` when the versions' schemas differ). On update, `old`
/// is the stored definition: a version whose schema it already had is not refused for the
/// cost of one of its rules.
pub fn validate_definition(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) else {
        return errs;
    };
    let old_versions = old
        .and_then(|o| o.pointer("/spec/versions"))
        .and_then(Value::as_array);
    let hoisted = rkube_api::crd::definition::identical_in_versions(versions, "schema");
    for (i, version) in versions.iter().enumerate() {
        // A schema every version has alike is checked once, at spec.validation.
        if hoisted && i > 0 {
            break;
        }
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let path =
                rkube_api::crd::definition::version_field_path(versions, i, "schema", "validation");
            check_schema(schema, &path, &mut errs);
            // Upstream's versionsWithUnchangedSchemas: the same version name with a
            // semantically equal schema.
            let unchanged = old_versions.is_some_and(|olds| {
                olds.iter().any(|o| {
                    o.get("name") == version.get("name") && o.get("schema") == version.get("schema")
                })
            });
            crate::crd_rule_cost::check_version(schema, &path, unchanged, &mut errs);
        }
    }
    errs
}

fn check_schema(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        let env = environment();
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            let source = rule.get("rule").and_then(Value::as_str).unwrap_or("");
            if source.trim().is_empty() {
                errs.push(FieldError::required(format!("{at}.rule"), ""));
            } else if let Err(e) = env.compile(source) {
                errs.push(FieldError::invalid(
                    format!("{at}.rule"),
                    rule.clone(),
                    &format!("compilation failed: {e}"),
                ));
            }
            let message = rule.get("messageExpression").and_then(Value::as_str);
            if let Some(message) = message.filter(|m| !m.trim().is_empty())
                && let Err(e) = env.compile(message)
            {
                errs.push(FieldError::invalid(
                    format!("{at}.messageExpression"),
                    rule.clone(),
                    &format!("messageExpression compilation failed: {e}"),
                ));
            }
            if let Some(reason) = rule.get("reason").and_then(Value::as_str)
                && !matches!(
                    reason,
                    "FieldValueRequired"
                        | "FieldValueForbidden"
                        | "FieldValueInvalid"
                        | "FieldValueDuplicate"
                )
            {
                errs.push(FieldError::not_supported(
                    format!("{at}.reason"),
                    reason,
                    &[
                        "FieldValueDuplicate",
                        "FieldValueForbidden",
                        "FieldValueInvalid",
                        "FieldValueRequired",
                    ],
                ));
            }
        }
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, child) in props {
            check_schema(child, &format!("{path}.properties[{name}]"), errs);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        check_schema(items, &format!("{path}.items"), errs);
    }
    if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        check_schema(a, &format!("{path}.additionalProperties"), errs);
    }
}

/// Evaluates the rules of `schema` on a custom resource (and, on update, the stored `old`).
pub fn validate(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut run = Run {
        errs: Vec::new(),
        stopped: false,
    };
    run.node(schema, object, old, None);
    run.errs
}

/// How many compiled expressions [`compiled`] keeps before it starts over.
const COMPILED_LIMIT: usize = 20_000;

/// The compiled program of a rule or message expression; `None` for one that does not
/// compile. Upstream compiles a definition's rules once, when the definition is loaded, not
/// on every write of a custom resource; here the programs are kept by their source (every
/// rule has the same variables), so each is compiled once however many definitions and
/// writes use it.
pub(crate) fn compiled(source: &str) -> Option<Arc<Program>> {
    type Cache = Mutex<HashMap<String, Option<Arc<Program>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(known) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(source)
    {
        return known.clone();
    }
    let program = environment().compile(source).ok().map(Arc::new);
    let mut programs = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if programs.len() >= COMPILED_LIMIT {
        programs.clear();
    }
    programs.insert(source.to_owned(), program.clone());
    program
}

/// One evaluation over an object: the errors so far, and whether the cost limit stopped it.
struct Run {
    errs: Vec<FieldError>,
    stopped: bool,
}

/// A child path: upstream's `fldPath.Child(name)` (`spec.replicas`).
fn child(path: &Option<String>, name: &str) -> String {
    match path {
        Some(p) => format!("{p}.{name}"),
        None => name.to_owned(),
    }
}

/// An indexed or keyed path (`spec.items[0]`, `spec.labels[app]`).
fn index(path: &Option<String>, key: &str) -> String {
    format!("{}[{key}]", path.as_deref().unwrap_or(""))
}

impl Run {
    fn node(&mut self, schema: &Value, value: &Value, old: Option<&Value>, path: Option<String>) {
        if self.stopped {
            return;
        }
        self.rules(schema, value, old, &path);
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (name, child_value) in map {
                    let old_child = old.and_then(|o| o.get(name));
                    if let Some(s) = props.and_then(|p| p.get(name)) {
                        self.node(s, child_value, old_child, Some(child(&path, name)));
                    } else if let Some(s) = additional {
                        self.node(s, child_value, old_child, Some(index(&path, name)));
                    }
                }
            }
            Value::Array(items) => {
                let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) else {
                    return;
                };
                for (i, item) in items.iter().enumerate() {
                    let old_item = correlated_item(schema, item, old);
                    self.node(
                        item_schema,
                        item,
                        old_item,
                        Some(index(&path, &i.to_string())),
                    );
                }
            }
            _ => {}
        }
    }

    fn rules(&mut self, schema: &Value, value: &Value, old: Option<&Value>, path: &Option<String>) {
        let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            return;
        };
        let type_ = schema.get("type").and_then(Value::as_str).unwrap_or("");
        let here = path.clone().unwrap_or_else(|| "<nil>".to_owned());
        // The node and its old value as CEL values, converted once for all its rules.
        let this = from_json_typed(value, schema);
        let mut previous: Option<Cel> = None;
        for rule in rules {
            let source = rule.get("rule").and_then(Value::as_str).unwrap_or("");
            let Some(program) = compiled(source) else {
                // Definitions with rules that do not compile are refused when written.
                continue;
            };
            let optional_old = rule.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);
            let transition = program.references("oldSelf");
            let mut variables = vec![("self", this.clone())];
            if transition {
                match (old, optional_old) {
                    (Some(o), false) => {
                        variables.push((
                            "oldSelf",
                            previous
                                .get_or_insert_with(|| from_json_typed(o, schema))
                                .clone(),
                        ));
                    }
                    (Some(o), true) => {
                        let o = previous
                            .get_or_insert_with(|| from_json_typed(o, schema))
                            .clone();
                        variables.push(("oldSelf", optional(Some(o))));
                    }
                    (None, true) => variables.push(("oldSelf", optional(None))),
                    // A transition rule only runs on an update that has the old value.
                    (None, false) => continue,
                }
            } else if old == Some(value) {
                // Ratcheting: an unchanged value is not checked again.
                continue;
            }
            let shown = rule_text(rule);
            match program.evaluate(&variables) {
                Ok(Cel::Bool(true)) => {}
                Ok(Cel::Bool(false)) => {
                    let field = match rule.get("fieldPath").and_then(Value::as_str) {
                        Some(f) if !f.is_empty() => field_path(path, f),
                        _ => here.clone(),
                    };
                    let detail = self.message(rule, &variables);
                    self.errs.push(for_reason(rule, field, type_, &detail));
                }
                Ok(other) => self.errs.push(FieldError::invalid(
                    here.clone(),
                    type_,
                    &format!(
                        "rule did not evaluate to a bool but to {}: {shown}",
                        rkube_cel::type_name(&other)
                    ),
                )),
                Err(EvalError::CostLimitExceeded) => {
                    self.errs.push(FieldError::invalid(
                        here.clone(),
                        type_,
                        &format!(
                            "'{}': no further validation rules will be run due to call cost exceeds limit for rule: {shown}",
                            EvalError::CostLimitExceeded
                        ),
                    ));
                    self.stopped = true;
                    return;
                }
                Err(EvalError::Runtime(e)) if e.starts_with("found no matching overload") => {
                    self.errs.push(FieldError::invalid(
                        here.clone(),
                        type_,
                        &format!("'{e}': call arguments did not match a supported operator, function or macro signature for rule: {shown}"),
                    ));
                }
                Err(EvalError::Runtime(e)) => self.errs.push(FieldError::invalid(
                    here.clone(),
                    type_,
                    &format!("{e} evaluating rule: {shown}"),
                )),
            }
        }
    }

    /// The message of a failed rule: its messageExpression's result when that gives a
    /// non-empty single-line string, else its message, else `failed rule: <rule>`.
    fn message(&mut self, rule: &Value, variables: &[(&str, Cel)]) -> String {
        let expression = rule.get("messageExpression").and_then(Value::as_str);
        if let Some(expression) = expression.filter(|e| !e.trim().is_empty())
            && let Some(program) = compiled(expression)
            && let Ok(Cel::String(s)) = program.evaluate(variables)
            && !s.trim().is_empty()
            && !s.contains('\n')
        {
            return s.trim().to_owned();
        }
        match rule.get("message").and_then(Value::as_str) {
            Some(m) if !m.trim().is_empty() => m.trim().to_owned(),
            _ => format!("failed rule: {}", rule_text(rule)),
        }
    }
}

/// Upstream's `ruleErrorString`: the message if there is one, else the rule.
fn rule_text(rule: &Value) -> String {
    match rule.get("message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() => m.trim().to_owned(),
        _ => rule
            .get("rule")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned(),
    }
}

/// A rule's `fieldPath` (`.spec.replicas`, `.labels['app']`) below the rule's own path.
fn field_path(path: &Option<String>, field: &str) -> String {
    let mut out = path.clone();
    let mut rest = field;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out = Some(child(&out, &after[..end]));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            let key = after[..end].trim_matches('\'');
            out = Some(index(&out, key));
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            out = Some(child(&out, rest));
            break;
        }
    }
    out.unwrap_or_else(|| "<nil>".to_owned())
}

/// Upstream's `fieldErrorForReason`: the cause type the rule's `reason` asks for.
fn for_reason(rule: &Value, field: String, type_: &str, detail: &str) -> FieldError {
    match rule.get("reason").and_then(Value::as_str) {
        Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
        Some("FieldValueRequired") => FieldError::required(field, detail),
        Some("FieldValueDuplicate") => FieldError {
            field,
            kind: FieldErrorKind::Duplicate,
            value: Some(Value::String(type_.to_owned())),
            detail: String::new(),
        },
        _ => FieldError::invalid(field, type_, detail),
    }
}

/// The old element a new list element is compared with: by its keys in a map list
/// (`x-kubernetes-list-type: map`); other lists do not correlate, as upstream.
fn correlated_item<'a>(schema: &Value, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    old?.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be at least minReplicas"},
                {"rule": "self.replicas >= oldSelf.replicas", "messageExpression": "'replicas may not go down from ' + string(oldSelf.replicas)"},
            ],
            "properties": {
                "replicas": {"type": "integer"},
                "minReplicas": {"type": "integer"},
                "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('x')", "reason": "FieldValueForbidden"}]},
            }
        }}})
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_failed_rule_is_an_invalid_object_with_its_message() {
        let errs = validate(
            &schema(),
            &json!({"spec": {"replicas": 1, "minReplicas": 2}}),
            None,
        );
        assert_eq!(
            messages(&errs),
            ["spec: Invalid value: \"object\": replicas must be at least minReplicas"]
        );
    }

    #[test]
    fn transition_rules_run_only_on_update() {
        let new = json!({"spec": {"replicas": 2, "minReplicas": 1}});
        assert!(validate(&schema(), &new, None).is_empty());
        let old = json!({"spec": {"replicas": 3, "minReplicas": 1}});
        assert_eq!(
            messages(&validate(&schema(), &new, Some(&old))),
            ["spec: Invalid value: \"object\": replicas may not go down from 3"]
        );
    }

    #[test]
    fn reason_and_default_message_follow_upstream() {
        let errs = validate(
            &schema(),
            &json!({"spec": {"replicas": 1, "minReplicas": 1, "name": "y"}}),
            None,
        );
        assert_eq!(
            messages(&errs),
            ["spec.name: Forbidden: failed rule: self.startsWith('x')"]
        );
    }

    #[test]
    fn a_rule_that_does_not_compile_refuses_the_definition() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.a == other"}]}}
        }}}]}});
        let errs = validate_definition(&crd, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].field,
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
        );
        assert!(
            errs[0].detail.starts_with(
                "compilation failed: ERROR: <input>:1:11: undeclared reference to 'other'"
            ),
            "{}",
            errs[0].detail
        );
    }

    #[test]
    fn optional_old_self_runs_on_create_with_an_absent_old_value() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{
            "rule": "oldSelf.hasValue() ? self.size >= oldSelf.value().size : self.size == 1",
            "optionalOldSelf": true,
            "message": "starts at 1 and only grows",
        }], "properties": {"size": {"type": "integer"}}});
        assert!(validate(&schema, &json!({"size": 1}), None).is_empty());
        assert_eq!(
            messages(&validate(&schema, &json!({"size": 2}), None)),
            ["<nil>: Invalid value: \"object\": starts at 1 and only grows"]
        );
        assert!(validate(&schema, &json!({"size": 3}), Some(&json!({"size": 2}))).is_empty());
    }

    #[test]
    fn field_path_names_the_field_below_the_rule() {
        assert_eq!(
            field_path(&Some("spec".into()), ".replicas"),
            "spec.replicas"
        );
        assert_eq!(field_path(&None, ".labels['app']"), "labels[app]");
    }
}
