//! Expected costs are worked out by hand from cel-go's checker/cost.go and the Kubernetes
//! size estimator; each test's comment shows the arithmetic.

use serde_json::{Value, json};

use crate::{Environment, SchemaType};

fn cost(rule: &str, schema: Value) -> u64 {
    let program = Environment::new(&["self", "oldSelf"])
        .compile(rule)
        .unwrap_or_else(|e| panic!("{rule}: {e}"));
    let node = SchemaType::from_schema(&schema, false)
        .unwrap_or_else(|| panic!("{schema} has no CEL type"));
    program.static_cost(&node)
}

fn strings(max_items: Option<u64>, max_length: Option<u64>) -> Value {
    let mut items = json!({"type": "string"});
    if let Some(n) = max_length {
        items["maxLength"] = json!(n);
    }
    let mut list = json!({"type": "array", "items": items});
    if let Some(n) = max_items {
        list["maxItems"] = json!(n);
    }
    list
}

#[test]
fn contains_over_each_bounded_string_costs_what_upstream_accepts_at_its_limit() {
    // Per element: condition 2 + step (1 + x 1 + ceil(64 × 0.1) × ceil(3 × 0.1)) = 11;
    // plus `self` 1 and the result 1. 909,090 elements of maxLength 16 is the largest
    // list upstream accepts for this rule (10,000,000 budget).
    assert_eq!(
        cost(
            "self.all(x, x.contains('gpu'))",
            strings(Some(909_090), Some(16))
        ),
        2 + 909_090 * 11
    );
}

#[test]
fn a_quadratic_rule_over_unbounded_strings_is_estimated_far_over_budget() {
    // An unbounded list of strings holds (3 MiB - 2) / 3 = 1,048,575 of them, each up to
    // 3 MiB - 2 bytes; `x == y` costs ceil(3,145,726 × 0.1) + 2 = 314,575.
    let inner = 2 + 1_048_575 * (3 + 314_575);
    assert_eq!(
        cost("self.all(x, self.all(y, x == y))", strings(None, None)),
        2 + 1_048_575 * (3 + inner)
    );
}

#[test]
fn the_same_rule_with_max_items_and_max_length_is_cheap() {
    // maxLength 10 is 40 bytes: `x == y` costs 4 + 2; the inner loop 2 + 10 × 9 = 92,
    // the outer one 2 + 10 × (3 + 92).
    assert_eq!(
        cost(
            "self.all(x, self.all(y, x == y))",
            strings(Some(10), Some(10))
        ),
        952
    );
}

#[test]
fn matches_costs_the_string_times_the_pattern() {
    // ceil((3,145,726 + 1) × 0.1) × ceil(8 × 0.25) + `self` 1.
    assert_eq!(
        cost("self.matches('^[a-z]+$')", json!({"type": "string"})),
        314_573 * 2 + 1
    );
}

#[test]
fn an_enum_bounds_a_string_by_its_longest_value() {
    // "Always" is 6 bytes: ceil(7 × 0.1) × ceil(2 × 0.25) + 1.
    assert_eq!(
        cost(
            "self.matches('^A')",
            json!({"type": "string", "enum": ["Always", "Never"]})
        ),
        2
    );
}

#[test]
fn formats_bound_date_times() {
    // A date-time is at most 32 bytes: ceil(32 × 0.1) + 2; an unbounded string compares
    // up to ceil(3,145,726 × 0.1) bytes.
    assert_eq!(
        cost(
            "self == oldSelf",
            json!({"type": "string", "format": "date-time"})
        ),
        6
    );
    assert_eq!(cost("self == oldSelf", json!({"type": "string"})), 314_575);
}

#[test]
fn map_keys_iterate_with_the_maps_max_properties() {
    // Keys have no declared size (0): per key 2 + 1 + (k 1 + ceil(1 × 0.1)) = 5.
    let schema = json!({"type": "object", "maxProperties": 5,
        "additionalProperties": {"type": "string"}});
    assert_eq!(cost("self.all(k, k.startsWith('a'))", schema), 2 + 5 * 5);
}

#[test]
fn selecting_a_field_and_testing_presence_follow_cel_go() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}});
    // A presence test is free in Kubernetes: `has(self.a)` costs its operand `self`.
    assert_eq!(cost("has(self.a)", schema.clone()), 1);
    // `'x'` is 1 byte: ceil(1 × 0.1) + 2.
    assert_eq!(cost("self.a == 'x'", schema), 3);
}

#[test]
fn map_builds_a_list_whose_elements_are_iterated_again() {
    // map: `self` 1 + `[]` 10 + result 1 + 10 × (`@result + [x * 2]` 1 + 1 + 10 + 2) = 152;
    // all: 152 + 1 + 10 × (2 + 1 + `y > 0` 2) = 203.
    let schema = json!({"type": "array", "maxItems": 10, "items": {"type": "integer"}});
    assert_eq!(cost("self.map(x, x * 2).all(y, y > 0)", schema), 203);
}

#[test]
fn int_or_string_is_bounded_by_its_max_length() {
    // maxLength 8 is 32 bytes. `type(self) == string`: type() 2 + the `string` identifier
    // 1 + ceil(32 × 0.1) (the identifier is sized as the rule's node, as upstream's path
    // estimator does) = 7; the match: ceil(33 × 0.1) × ceil(7 × 0.25) + 1 = 9.
    let schema = json!({"x-kubernetes-int-or-string": true, "maxLength": 8});
    assert_eq!(
        cost("type(self) == string && self.matches('^[0-9]%')", schema),
        7 + 9
    );
}

#[test]
fn cardinality_counts_how_many_values_of_a_node_fit_in_a_request() {
    // {"name":""} is at least 2 + 4 + 4 + 2 = 12 bytes; 3 MiB / 13.
    let node = SchemaType::from_schema(
        &json!({"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}}}),
        false,
    );
    assert_eq!(node.map(|n| n.max_cardinality()), Some(241_979));
}

#[test]
fn a_resource_root_always_shows_its_name() {
    // `self.metadata.name` is 3 (the root schema does not declare metadata); `startsWith`
    // costs a tenth of the prefix, 1.
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
    let program = Environment::new(&["self"])
        .compile("self.metadata.name.startsWith('a')")
        .unwrap_or_else(|e| panic!("{e}"));
    let root = SchemaType::from_schema(&schema, true);
    assert_eq!(root.map(|r| program.static_cost(&r)), Some(4));
}

#[test]
fn nested_loops_over_unbounded_lists_with_matches_multiply() {
    // 1,048,575 objects (at least `{}` each), each with up to 1,048,575 strings:
    // `y.matches('^a$')` is ceil(3,145,727 × 0.1) × 1 + 1 = 314,574; the inner loop
    // `x.names` 2 + result 1 + N × (3 + 314,574); the outer one 2 + N × (3 + inner).
    let schema = json!({"type": "array", "items": {"type": "object", "properties": {
        "names": {"type": "array", "items": {"type": "string"}}}}});
    let n: u64 = 1_048_575;
    let inner = 3 + n * (3 + 314_574);
    assert_eq!(
        cost("self.all(x, x.names.all(y, y.matches('^a$')))", schema),
        2 + n * (3 + inner)
    );
}
