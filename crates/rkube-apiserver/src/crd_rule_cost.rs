//! The static cost check of a definition's validation rules, when it is written: each rule
//! (and messageExpression) is estimated from its schema node's bounds and multiplied by how
//! many times it may run in one object; one over the per-expression budget is refused, and so
//! is a schema whose expressions together exceed the per-definition budget.
//!
//! Upstream: apiextensions-apiserver pkg/apis/apiextensions/validation/validation.go
//! (`getExpressionCost`, `getCostErrorMessage`, the version loop's
//! `suppressPerExpressionCost`) and cel_validation.go (`CELSchemaContext`, `TotalCost`).

use rkube_api::FieldError;
use rkube_cel::SchemaType;
use serde_json::Value;

use crate::crd_rules::compiled;

/// Upstream's `StaticEstimatedCostLimit`: the largest cost of one expression.
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Upstream's `StaticEstimatedCRDCostLimit`: the largest cost of all of a schema's rules.
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;

/// How many of the most expensive expressions the total's error names.
const MOST_EXPENSIVE: usize = 4;

/// Checks the rules of one version's schema at `path`
/// (`spec.versions[0].schema.openAPIV3Schema`). `unchanged`: the version's schema is the
/// same as before this update, so its expressions are not refused one by one — a rule
/// accepted once stays accepted, whatever the estimate says now — while the total still is.
pub fn check_version(schema: &Value, path: &str, unchanged: bool, errs: &mut Vec<FieldError>) {
    let mut check = Check {
        unchanged,
        total: 0,
        most_expensive: Vec::new(),
        errs,
    };
    check.node(schema, path, Some(1), true);
    if check.total > STATIC_ESTIMATED_CRD_COST_LIMIT {
        let most_expensive = std::mem::take(&mut check.most_expensive);
        for (field, _) in most_expensive {
            check.errs.push(FieldError::forbidden(
                field,
                "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
            ));
        }
        let message = cost_error_message(
            "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
            check.total,
            STATIC_ESTIMATED_CRD_COST_LIMIT,
        );
        check.errs.push(FieldError::forbidden(path, &message));
    }
}

struct Check<'e> {
    unchanged: bool,
    /// The cost of every expression so far.
    total: u64,
    /// The costliest expressions of at least 1% of the total budget, costliest first.
    most_expensive: Vec<(String, u64)>,
    errs: &'e mut Vec<FieldError>,
}

impl Check<'_> {
    /// `cardinality`: how many times the node may occur in one object, as the product of the
    /// `maxItems`/`maxProperties` above it; `None` when a list or map above is unbounded.
    fn node(&mut self, schema: &Value, path: &str, cardinality: Option<u64>, root: bool) {
        if let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
        {
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            if let Some(node) = SchemaType::from_schema(schema, root || embedded) {
                for (i, rule) in rules.iter().enumerate() {
                    let at = format!("{path}.x-kubernetes-validations[{i}]");
                    self.rule(rule, &node, &at, cardinality);
                }
            }
        }
        let below = cardinality.and_then(|c| max_elements(schema).map(|m| c.saturating_mul(m)));
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, child) in props {
                self.node(child, &format!("{path}.properties[{name}]"), below, false);
            }
        }
        if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
            self.node(items, &format!("{path}.items"), below, false);
        }
        if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            self.node(
                values,
                &format!("{path}.additionalProperties"),
                below,
                false,
            );
        }
    }

    fn rule(&mut self, rule: &Value, node: &SchemaType, at: &str, cardinality: Option<u64>) {
        let times = cardinality.unwrap_or_else(|| node.max_cardinality());
        let source = rule.get("rule").and_then(Value::as_str).unwrap_or("");
        // A rule that does not compile is refused for that, and its message is not checked
        // (upstream stops at the rule's compilation error).
        let Some(program) = compiled(source).filter(|_| !source.trim().is_empty()) else {
            return;
        };
        self.expression(
            "estimated rule cost",
            program.static_cost(node),
            times,
            format!("{at}.rule"),
        );
        if let Some(message) = rule
            .get("messageExpression")
            .and_then(Value::as_str)
            .filter(|m| !m.trim().is_empty())
            && let Some(program) = compiled(message)
        {
            self.expression(
                "estimated messageExpression cost",
                program.static_cost(node),
                times,
                format!("{at}.messageExpression"),
            );
        }
    }

    fn expression(&mut self, what: &str, cost: u64, times: u64, field: String) {
        let cost = cost.saturating_mul(times);
        if !self.unchanged && cost > STATIC_ESTIMATED_COST_LIMIT {
            let message = cost_error_message(what, cost, STATIC_ESTIMATED_COST_LIMIT);
            self.errs
                .push(FieldError::forbidden(field.clone(), &message));
        }
        self.total = self.total.saturating_add(cost);
        if cost >= STATIC_ESTIMATED_CRD_COST_LIMIT / 100 {
            let at = self
                .most_expensive
                .iter()
                .position(|(_, c)| *c < cost)
                .unwrap_or(self.most_expensive.len());
            self.most_expensive.insert(at, (field, cost));
            self.most_expensive.truncate(MOST_EXPENSIVE);
        }
    }
}

/// Upstream's `extractMaxElements`: how many children each value of the node has at most —
/// `maxItems` of a list, `maxProperties` of a map, 1 for an object's properties; `None`
/// for a list or map without a bound.
fn max_elements(schema: &Value) -> Option<u64> {
    let bound = |name: &str| {
        schema
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .map(|n| n.max(0) as u64)
    };
    match schema.get("type").and_then(Value::as_str) {
        Some("object") if schema.get("additionalProperties").is_some() => bound("maxProperties"),
        Some("array") => bound("maxItems"),
        _ => Some(1),
    }
}

/// Upstream's `getCostErrorMessage`: by how much the budget is exceeded, with six decimals
/// below 1.5x (so that it never reads "1.0x"), one up to 100x, and no number beyond.
fn cost_error_message(what: &str, cost: u64, limit: u64) -> String {
    let ratio = cost as f64 / limit as f64;
    let factor = if ratio > 100.0 {
        "more than 100x".to_owned()
    } else if ratio < 1.5 {
        format!("{ratio:.6}x")
    } else {
        format!("{ratio:.1}x")
    };
    format!(
        "{what} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(schema: Value, unchanged: bool) -> Vec<String> {
        let mut errs = Vec::new();
        check_version(
            &schema,
            "spec.versions[0].schema.openAPIV3Schema",
            unchanged,
            &mut errs,
        );
        errs.iter().map(ToString::to_string).collect()
    }

    fn spec_with(property: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"list": property}}}})
    }

    #[test]
    fn a_quadratic_rule_on_an_unbounded_list_is_forbidden_at_its_rule() {
        let errs = check(
            spec_with(json!({"type": "array", "items": {"type": "string"},
                "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x == y))"}]})),
            false,
        );
        let rule = "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].x-kubernetes-validations[0].rule";
        assert_eq!(
            errs,
            [
                format!("{rule}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"),
                format!("{rule}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"),
                "spec.versions[0].schema.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)".to_owned(),
            ]
        );
    }

    #[test]
    fn bounds_make_the_same_rule_acceptable() {
        let errs = check(
            spec_with(json!({"type": "array", "maxItems": 10,
                "items": {"type": "string", "maxLength": 10},
                "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x == y))"}]})),
            false,
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn a_rule_below_an_unbounded_list_runs_once_per_possible_item() {
        // `self.matches('^[a-z]+$')` on a string of maxLength 64 costs ceil(257 × 0.1) × 2
        // + 1 = 53; an unbounded list holds 3 MiB / 3 = 1,048,576 strings: 55,574,528.
        let errs = check(
            spec_with(
                json!({"type": "array", "items": {"type": "string", "maxLength": 64,
                "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$')"}]}}),
            ),
            false,
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].ends_with("estimated rule cost exceeds budget by factor of 5.6x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn the_total_counts_every_rule_and_names_the_costliest() {
        // Each match on an unbounded string: ceil(3,145,727 × 0.1) × ceil(112 × 0.25) + 1
        // = 8,808,045, under the per-rule budget; twelve of them are 105,696,540.
        let pattern = format!("^{}$", "a".repeat(110));
        let rules: Vec<Value> = (0..12)
            .map(|_| json!({"rule": format!("self.matches('{pattern}')")}))
            .collect();
        let errs = check(
            spec_with(json!({"type": "string", "x-kubernetes-validations": rules})),
            false,
        );
        assert_eq!(errs.len(), 5, "{errs:?}");
        for (i, err) in errs.iter().take(4).enumerate() {
            assert_eq!(
                err,
                &format!(
                    "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].x-kubernetes-validations[{i}].rule: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"
                )
            );
        }
        assert_eq!(
            errs[4],
            "spec.versions[0].schema.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of 1.056965x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        );
    }

    #[test]
    fn an_unchanged_schema_keeps_its_expensive_rules_but_not_an_excessive_total() {
        let schema = spec_with(
            json!({"type": "array", "items": {"type": "string", "maxLength": 64,
            "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$')"}]}}),
        );
        assert!(check(schema, true).is_empty());
    }

    #[test]
    fn message_expressions_are_estimated_too() {
        let errs = check(
            spec_with(json!({"type": "array", "items": {"type": "string",
                "x-kubernetes-validations": [{"rule": "true",
                    "messageExpression": "self + ' is ' + self"}]}})),
            false,
        );
        assert!(
            errs[0].contains("x-kubernetes-validations[0].messageExpression: Forbidden: estimated messageExpression cost exceeds budget"),
            "{errs:?}"
        );
    }
}
