//! ValidatingAdmissionPolicy admission (admissionregistration.k8s.io/v1): every binding whose
//! policy matches the request evaluates the policy's CEL validations, once per parameter
//! object, and its validationActions decide what a failed validation does (Deny refuses the
//! request, Warn adds a warning, Audit is recorded nowhere else in rkube and so does nothing).
//!
//! Upstream: staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/validating
//! (dispatcher.go for matching, params and messages; validator.go for the decisions).
//! `authorizer` is not offered to expressions: one naming it does not compile, which the
//! policy's failurePolicy then decides.

use k8s_openapi::api::admissionregistration::v1 as admission;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;
use rkube_api::selector::LabelSelector;
use rkube_api::{ApiError, FieldError};
use rkube_cel::{Environment, Value as Cel, from_json};
use serde_json::Value;

use crate::app::App;
use crate::webhook::Attributes;
use crate::webhook::matching::{Rule, Target};

/// The variables a policy's expressions may name.
const VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "variables",
];

/// A policy being written: every expression compiles, as upstream's validation of the
/// policy requires (`spec.validations[0].expression: Invalid value: "…": compilation
/// failed: …`).
pub(crate) fn check_policy(policy: &Value) -> Vec<FieldError> {
    let env = Environment::new(VARIABLES);
    let mut errs = Vec::new();
    for (list, field) in [
        ("matchConditions", "expression"),
        ("variables", "expression"),
        ("validations", "expression"),
        ("validations", "messageExpression"),
    ] {
        let items = policy["spec"][list].as_array().into_iter().flatten();
        for (i, item) in items.enumerate() {
            if let Some(expression) = item[field].as_str().filter(|e| !e.trim().is_empty())
                && let Err(e) = env.compile(expression)
            {
                errs.push(FieldError::invalid(
                    format!("spec.{list}[{i}].{field}"),
                    expression,
                    &format!("compilation failed: {e}"),
                ));
            }
        }
    }
    errs
}

/// A failed validation: the status reason (`Invalid` unless the validation names one) and
/// the message.
#[derive(Debug, PartialEq)]
struct Decision {
    reason: String,
    message: String,
}

/// A failure the policy's failurePolicy decides about.
struct Failure(String);

/// Whether a request matches a policy's matchConstraints or a binding's matchResources.
struct Matcher<'a> {
    target: Target<'a>,
    name: &'a str,
    object: Option<&'a Value>,
    old: Option<&'a Value>,
    /// The namespace object of a namespaced request (a Namespace's own object for one).
    namespace: Option<&'a Value>,
}

impl Matcher<'_> {
    /// `empty_matches`: a binding without resourceRules takes the policy's, so it matches
    /// whatever reached it; a policy without them matches nothing.
    fn matches(
        &self,
        resources: &admission::MatchResources,
        empty_matches: bool,
    ) -> Result<bool, Failure> {
        let any_version = resources.match_policy.as_deref() != Some("Exact");
        let covers = |rules: &Option<Vec<admission::NamedRuleWithOperations>>| {
            rules
                .iter()
                .flatten()
                .any(|r| self.rule_matches(r, any_version))
        };
        let has_rules = resources
            .resource_rules
            .as_ref()
            .is_some_and(|r| !r.is_empty());
        if has_rules && !covers(&resources.resource_rules) || !has_rules && !empty_matches {
            return Ok(false);
        }
        if covers(&resources.exclude_resource_rules) {
            return Ok(false);
        }
        if let Some(selector) = &resources.namespace_selector
            && let Some(namespace) = self.namespace
            && !compile(selector)?.matches_object(namespace)
        {
            return Ok(false);
        }
        if let Some(selector) = &resources.object_selector {
            let selector = compile(selector)?;
            if !selector.is_empty()
                && ![self.object, self.old]
                    .into_iter()
                    .flatten()
                    .any(|o| selector.matches_object(o))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn rule_matches(&self, named: &admission::NamedRuleWithOperations, any_version: bool) -> bool {
        let rule = Rule {
            operations: named.operations.clone().unwrap_or_default(),
            api_groups: named.api_groups.clone().unwrap_or_default(),
            api_versions: named.api_versions.clone().unwrap_or_default(),
            resources: named.resources.clone().unwrap_or_default(),
            scope: named.scope.clone().unwrap_or_else(|| "*".to_owned()),
        };
        let named_ok = named
            .resource_names
            .as_ref()
            .is_none_or(|names| names.is_empty() || names.iter().any(|n| n == self.name));
        named_ok && rule.matches(&self.target, any_version)
    }
}

fn compile(selector: &ApiLabelSelector) -> Result<LabelSelector, Failure> {
    LabelSelector::from_api(selector).map_err(|e| Failure(format!("invalid selector: {e}")))
}

/// The variables of one evaluation.
struct Inputs {
    object: Cel,
    old: Cel,
    request: Cel,
    namespace: Cel,
}

/// Evaluates one policy with one parameter object (`Null` without paramKind): `None` when
/// its matchConditions skip it, else the decisions of its failed validations.
fn evaluate(
    spec: &admission::ValidatingAdmissionPolicySpec,
    inputs: &Inputs,
    params: Cel,
) -> Result<Option<Vec<Decision>>, Failure> {
    let env = Environment::new(VARIABLES);
    let mut variables: Vec<(String, Value)> = Vec::new();
    let bind = |variables: &[(String, Value)]| {
        let map: serde_json::Map<String, Value> = variables.iter().cloned().collect();
        [
            ("object", inputs.object.clone()),
            ("oldObject", inputs.old.clone()),
            ("request", inputs.request.clone()),
            ("params", params.clone()),
            ("namespaceObject", inputs.namespace.clone()),
            ("variables", from_json(&Value::Object(map))),
        ]
    };
    let run = |expression: &str, bound: &[(&str, Cel)]| {
        env.compile(expression)
            .map_err(|e| format!("compilation failed: {e}"))
            .and_then(|p| p.evaluate(bound).map_err(|e| e.to_string()))
    };
    let bound = bind(&variables);
    let mut condition_error = None;
    for condition in spec.match_conditions.iter().flatten() {
        match run(&condition.expression, &bound) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => return Ok(None),
            Ok(other) => {
                condition_error.get_or_insert(format!(
                    "failed to evaluate match condition {:?}: expected a bool, got {}",
                    condition.name,
                    rkube_cel::type_name(&other)
                ));
            }
            Err(e) => {
                condition_error.get_or_insert(format!(
                    "failed to evaluate match condition {:?}: {e}",
                    condition.name
                ));
            }
        }
    }
    if let Some(e) = condition_error {
        return Err(Failure(e));
    }
    // Composited variables: each sees the ones before it. One that fails is left out, so an
    // expression reading it fails in turn.
    for variable in spec.variables.iter().flatten() {
        let bound = bind(&variables);
        if let Ok(value) = run(&variable.expression, &bound)
            && let Some(json) = rkube_cel::to_json(&value)
        {
            variables.push((variable.name.clone(), json));
        }
    }
    let bound = bind(&variables);
    let mut decisions = Vec::new();
    for validation in spec.validations.iter().flatten() {
        match run(&validation.expression, &bound) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let message = validation
                    .message_expression
                    .as_deref()
                    .filter(|m| !m.trim().is_empty())
                    .and_then(|m| match run(m, &bound) {
                        Ok(Cel::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                            Some(s.trim().to_owned())
                        }
                        _ => None,
                    })
                    .or_else(|| {
                        validation
                            .message
                            .as_deref()
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| {
                        format!("failed expression: {}", validation.expression.trim())
                    });
                decisions.push(Decision {
                    reason: validation
                        .reason
                        .clone()
                        .unwrap_or_else(|| "Invalid".to_owned()),
                    message,
                });
            }
            Ok(other) => {
                return Err(Failure(format!(
                    "expression '{}' resulted in error: expected a bool, got {}",
                    validation.expression,
                    rkube_cel::type_name(&other)
                )));
            }
            Err(e) => {
                return Err(Failure(format!(
                    "expression '{}' resulted in error: {e}",
                    validation.expression
                )));
            }
        }
    }
    Ok(Some(decisions))
}

/// `deployments.apps`, `configmaps`: how upstream's Forbidden names the resource.
fn qualified_resource(attrs: &Attributes<'_>) -> String {
    if attrs.rt.group.is_empty() {
        attrs.rt.plural.to_owned()
    } else {
        format!("{}.{}", attrs.rt.plural, attrs.rt.group)
    }
}

/// Upstream's `reasonToCode`.
fn code_for(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

impl App {
    /// Validating admission by ValidatingAdmissionPolicies: every binding, in name order,
    /// whose policy matches; the first denial refuses the request.
    pub(crate) async fn validate_by_policies(
        &self,
        attrs: &Attributes<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let group = "admissionregistration.k8s.io";
        let bindings_rt = self.resource(group, "ValidatingAdmissionPolicyBinding")?;
        let mut bindings: Vec<admission::ValidatingAdmissionPolicyBinding> = self
            .list_current(bindings_rt, None)
            .await?
            .into_iter()
            .filter_map(|b| serde_json::from_value(b).ok())
            .collect();
        if bindings.is_empty() {
            return Ok(());
        }
        bindings.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let policies_rt = self.resource(group, "ValidatingAdmissionPolicy")?;
        let policies: Vec<admission::ValidatingAdmissionPolicy> = self
            .list_current(policies_rt, None)
            .await?
            .into_iter()
            .filter_map(|p| serde_json::from_value(p).ok())
            .collect();
        let target = attrs.target();
        let namespace = if target.group.is_empty() && target.resource == "namespaces" {
            object.or(old).cloned()
        } else if let Some(ns) = attrs.namespace.filter(|ns| !ns.is_empty()) {
            let namespaces = self.resource("", "Namespace")?;
            self.lookup(namespaces, None, ns).await.ok()
        } else {
            None
        };
        let matcher = Matcher {
            target,
            name: attrs.name,
            object,
            old,
            namespace: namespace.as_ref(),
        };
        let inputs = Inputs {
            object: object.map_or(Cel::Null, from_json),
            old: old.map_or(Cel::Null, from_json),
            request: from_json(&crate::webhook::conditions::request(attrs)),
            namespace: namespace.as_ref().map_or(Cel::Null, from_json),
        };
        for binding in &bindings {
            let Some(spec) = &binding.spec else { continue };
            let Some(policy) = policies
                .iter()
                .find(|p| p.metadata.name == spec.policy_name)
            else {
                continue;
            };
            let Some(policy_spec) = &policy.spec else {
                continue;
            };
            let policy_name = policy.metadata.name.as_deref().unwrap_or("");
            let binding_name = binding.metadata.name.as_deref().unwrap_or("");
            let fail = policy_spec.failure_policy.as_deref() != Some("Ignore");
            let refuse = |message: String, reason: &str| ApiError::Rejected {
                code: code_for(reason),
                message: format!(
                    "{} \"{}\" is forbidden: ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {message}",
                    qualified_resource(attrs),
                    attrs.name
                ),
            };
            let outcome = self
                .run_binding(&matcher, &inputs, policy_spec, spec, attrs)
                .await;
            let decisions = match outcome {
                Ok(decisions) => decisions,
                Err(Failure(e)) if fail => return Err(refuse(e, "Invalid")),
                Err(_) => continue,
            };
            let actions = spec.validation_actions.clone().unwrap_or_default();
            for Decision { reason, message } in decisions {
                if actions.iter().any(|a| a == "Warn") {
                    crate::warnings::warn(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                    ));
                }
                if actions.iter().any(|a| a == "Deny") {
                    return Err(refuse(message, &reason));
                }
            }
        }
        Ok(())
    }

    /// One binding: whether it and its policy match, its parameters, and the decisions of
    /// the policy's failed validations for each.
    async fn run_binding(
        &self,
        matcher: &Matcher<'_>,
        inputs: &Inputs,
        policy: &admission::ValidatingAdmissionPolicySpec,
        binding: &admission::ValidatingAdmissionPolicyBindingSpec,
        attrs: &Attributes<'_>,
    ) -> Result<Vec<Decision>, Failure> {
        let Some(constraints) = &policy.match_constraints else {
            return Ok(Vec::new());
        };
        if !matcher.matches(constraints, false)? {
            return Ok(Vec::new());
        }
        if let Some(resources) = &binding.match_resources
            && !matcher.matches(resources, true)?
        {
            return Ok(Vec::new());
        }
        let params = match &policy.param_kind {
            None => vec![Value::Null],
            Some(kind) => self.params(kind, binding, attrs).await?,
        };
        let mut decisions = Vec::new();
        for param in &params {
            if let Some(found) = evaluate(policy, inputs, from_json(param))? {
                decisions.extend(found);
            }
        }
        Ok(decisions)
    }

    /// The parameter objects a binding's paramRef names (by name, or by selector).
    async fn params(
        &self,
        kind: &admission::ParamKind,
        binding: &admission::ValidatingAdmissionPolicyBindingSpec,
        attrs: &Attributes<'_>,
    ) -> Result<Vec<Value>, Failure> {
        let configure = |e: String| Failure(format!("failed to configure binding: {e}"));
        let api_version = kind.api_version.as_deref().unwrap_or("");
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let rt = self
            .resource(group, kind.kind.as_deref().unwrap_or(""))
            .map_err(|_| {
                configure(format!(
                    "failed to find resource referenced by paramKind: '{api_version}, Kind={}'",
                    kind.kind.as_deref().unwrap_or("")
                ))
            })?;
        let Some(reference) = &binding.param_ref else {
            return Err(configure(
                "paramRef is required when paramKind is set".to_owned(),
            ));
        };
        let namespace = if rt.namespaced {
            match reference.namespace.as_deref().filter(|n| !n.is_empty()) {
                Some(ns) => Some(ns),
                None => match attrs.namespace.filter(|n| !n.is_empty()) {
                    Some(ns) => Some(ns),
                    None => {
                        return Err(configure(
                            "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".to_owned(),
                        ));
                    }
                },
            }
        } else {
            None
        };
        let found = match (&reference.name, &reference.selector) {
            (Some(name), _) if !name.is_empty() => self
                .lookup(rt, namespace, name)
                .await
                .ok()
                .into_iter()
                .collect(),
            (_, Some(selector)) => {
                let selector = compile(selector)?;
                self.list_current(rt, namespace)
                    .await
                    .map_err(|e| configure(e.to_string()))?
                    .into_iter()
                    .filter(|p| selector.matches_object(p))
                    .collect()
            }
            _ => Vec::new(),
        };
        if found.is_empty() && reference.parameter_not_found_action.as_deref() != Some("Allow") {
            return Err(configure(
                "no params found for policy binding with `Deny` parameterNotFoundAction".to_owned(),
            ));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(validation: Value) -> admission::ValidatingAdmissionPolicySpec {
        serde_json::from_value(json!({
            "variables": [{"name": "limit", "expression": "5"}],
            "validations": [validation],
        }))
        .unwrap()
    }

    fn inputs(replicas: i64) -> Inputs {
        Inputs {
            object: from_json(&json!({"spec": {"replicas": replicas}})),
            old: Cel::Null,
            request: from_json(&json!({"operation": "CREATE"})),
            namespace: Cel::Null,
        }
    }

    #[test]
    fn a_false_validation_is_a_denial_with_the_default_message() {
        let spec = spec(json!({"expression": "object.spec.replicas <= variables.limit"}));
        let decisions = evaluate(&spec, &inputs(7), Cel::Null)
            .ok()
            .flatten()
            .unwrap();
        assert_eq!(
            decisions,
            [Decision {
                reason: "Invalid".into(),
                message: "failed expression: object.spec.replicas <= variables.limit".into(),
            }]
        );
        let none = evaluate(&spec, &inputs(3), Cel::Null)
            .ok()
            .flatten()
            .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn an_evaluation_error_names_the_expression() {
        let spec = spec(json!({"expression": "object.spec.missing > 1"}));
        let Err(Failure(message)) = evaluate(&spec, &inputs(1), Cel::Null) else {
            panic!("expected a failure");
        };
        assert!(
            message.starts_with("expression 'object.spec.missing > 1' resulted in error: "),
            "{message}"
        );
    }

    #[test]
    fn a_policy_whose_expression_does_not_compile_is_refused() {
        let errs =
            check_policy(&json!({"spec": {"validations": [{"expression": "object.x == nope"}]}}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.validations[0].expression");
        assert!(
            errs[0].detail.starts_with(
                "compilation failed: ERROR: <input>:1:13: undeclared reference to 'nope'"
            ),
            "{}",
            errs[0].detail
        );
    }
}
