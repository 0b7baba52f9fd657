use serde_json::json;

use super::*;

fn eval_with(expr: &str, object: serde_json::Value) -> Result<Value, EvalError> {
    let program = Environment::new(&["self"])
        .compile(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    program.evaluate(&[("self", from_json(&object))])
}

fn holds(expr: &str, object: serde_json::Value) -> bool {
    match eval_with(expr, object) {
        Ok(Value::Bool(b)) => b,
        other => panic!("{expr}: {other:?}"),
    }
}

fn truth(expr: &str) -> bool {
    holds(expr, json!({}))
}

#[test]
fn validation_rule_examples_from_the_kubernetes_docs_hold() {
    let object = json!({
        "minReplicas": 1, "replicas": 3, "maxReplicas": 5,
        "stateCounts": {"Available": 2},
        "list1": [], "list2": ["x"],
        "map1": {"MY_FIELD": "abc", "other": "x"},
        "set1": ["a", "b"], "set2": ["c"],
        "names": ["a"], "details": {"a": 1},
        "clusters": [{"name": "p"}, {"name": "q"}], "primary": "p",
        "metadata": {"name": "pre-thing"}, "prefix": "pre-",
    });
    for rule in [
        "self.minReplicas <= self.replicas && self.replicas <= self.maxReplicas",
        "'Available' in self.stateCounts",
        "(size(self.list1) == 0) != (size(self.list2) == 0)",
        "!('MY_FIELD' in self.map1) || self.map1['MY_FIELD'].matches('^[a-zA-Z]*$')",
        "self.map1.all(key, key.matches('^[a-zA-Z_]*$'))",
        "self.set1.all(e, !(e in self.set2))",
        "size(self.names) == size(self.details) && self.names.all(n, n in self.details)",
        "size(self.clusters.filter(c, c.name == self.primary)) == 1",
        "self.metadata.name.startsWith(self.prefix)",
        "self.clusters.exists_one(c, c.name == 'q')",
        "self.clusters.map(c, c.name) == ['p', 'q']",
        "has(self.primary) && !has(self.secondary)",
    ] {
        assert!(holds(rule, object.clone()), "{rule}");
    }
}

#[test]
fn kubernetes_list_library_matches_upstream_examples() {
    for expr in [
        "[1, 2, 3].isSorted()",
        "!['b', 'a'].isSorted()",
        "[1, 2, 3].sum() == 6",
        "[1.5, 2.5].sum() == 4.0",
        "[3, 1, 2].min() == 1",
        "[3, 1, 2].max() == 3",
        "[1, 2, 2, 3].indexOf(2) == 1",
        "[1, 2, 2, 3].lastIndexOf(2) == 2",
        "['a'].indexOf('z') == -1",
    ] {
        assert!(truth(expr), "{expr}");
    }
}

#[test]
fn sets_extension_matches_upstream_examples() {
    for expr in [
        "sets.contains([1, 2, 3], [2, 3])",
        "!sets.contains([1], [2])",
        "sets.equivalent([1, 2, 2], [2, 1])",
        "sets.intersects([1, 2], [2, 5])",
        "!sets.intersects([1], [])",
    ] {
        assert!(truth(expr), "{expr}");
    }
}

#[test]
fn strings_and_regex_libraries_match_upstream_examples() {
    for expr in [
        "'TacoCat'.lowerAscii() == 'tacocat'",
        "'TacoCat'.upperAscii() == 'TACOCAT'",
        "'  x '.trim() == 'x'",
        "'a,b,c'.split(',') == ['a', 'b', 'c']",
        "['a', 'b'].join('-') == 'a-b'",
        "'hello'.replace('l', 'L') == 'heLLo'",
        "'hello'.substring(1, 3) == 'el'",
        "'hello'.indexOf('l') == 2",
        "'hello'.charAt(1) == 'e'",
        "'%s has %d'.format(['x', 3]) == 'x has 3'",
        "'abc 123'.find('[0-9]+') == '123'",
        "'abc'.find('[0-9]+') == ''",
        "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
        "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
        "'abc'.matches('^[a-z]+$')",
    ] {
        assert!(truth(expr), "{expr}");
    }
}

#[test]
fn url_library_matches_upstream_examples() {
    for expr in [
        "url('https://example.com:80/').getHost() == 'example.com:80'",
        "url('https://example.com/path').getScheme() == 'https'",
        "url('https://[::1]:80/').getHostname() == '::1'",
        "url('https://example.com:80/').getPort() == '80'",
        "url('https://example.com/').getPort() == ''",
        "url('https://example.com/path with spaces/'.replace(' ', '%20')).getEscapedPath() == '/path%20with%20spaces/'",
        "url('https://example.com/?k=a&k=b').getQuery() == {'k': ['a', 'b']}",
        "isURL('https://example.com/')",
        "isURL('/absolute-path')",
        "!isURL('relative')",
    ] {
        assert!(truth(expr), "{expr}");
    }
}

#[test]
fn ip_and_cidr_libraries_match_upstream_examples() {
    for expr in [
        "isIP('127.0.0.1')",
        "!isIP('1.2.3')",
        "!isIP('::ffff:1.2.3.4')",
        "ip('127.0.0.1').family() == 4",
        "ip('::1').family() == 6",
        "ip('127.0.0.1').isLoopback()",
        "ip('0.0.0.0').isUnspecified()",
        "ip('169.254.1.1').isLinkLocalUnicast()",
        "ip('224.0.0.1').isLinkLocalMulticast()",
        "ip('8.8.8.8').isGlobalUnicast()",
        "ip.isCanonical('2001:db8::1')",
        "!ip.isCanonical('2001:DB8::1')",
        "ip('10.0.0.1') == ip('10.0.0.1')",
        "isCIDR('192.168.0.0/24')",
        "!isCIDR('192.168.0.0/33')",
        "cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))",
        "cidr('192.168.0.0/24').containsIP('192.168.0.1')",
        "!cidr('192.168.0.0/24').containsIP('192.168.1.1')",
        "cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')",
        "!cidr('192.168.0.0/24').containsCIDR('192.168.0.0/16')",
        "cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')",
        "cidr('192.168.0.1/24').ip() == ip('192.168.0.1')",
        "cidr('::1/128').prefixLength() == 128",
    ] {
        assert!(truth(expr), "{expr}");
    }
}

#[test]
fn quantity_library_matches_upstream_examples() {
    for expr in [
        "isQuantity('1.3G')",
        "!isQuantity('1.3GiB')",
        "quantity('50M').isLessThan(quantity('100M'))",
        "quantity('100M').isGreaterThan(quantity('50M'))",
        "quantity('200M').compareTo(quantity('0.2G')) == 0",
        "quantity('50k').add(20).asInteger() == 50020",
        "quantity('50k').sub(quantity('20k')) == quantity('30k')",
        "quantity('1.5').isInteger() == false",
        "quantity('2Ki').asInteger() == 2048",
        "quantity('-1').sign() == -1",
        "quantity('500m').asApproximateFloat() == 0.5",
    ] {
        assert!(truth(expr), "{expr}");
    }
}

#[test]
fn optional_field_access_falls_back_to_a_default() {
    assert!(holds(
        "self.?replicas.orValue(1) == 3",
        json!({"replicas": 3})
    ));
    assert!(holds("self.?replicas.orValue(1) == 1", json!({})));
    assert!(truth(
        "optional.of(1).hasValue() && !optional.none().hasValue()"
    ));
}

#[test]
fn a_missing_field_is_a_runtime_error() {
    let err = eval_with("self.replicas > 1", json!({})).unwrap_err();
    assert!(err.to_string().contains("replicas"), "{err}");
}

#[test]
fn an_undeclared_variable_is_a_compile_error() {
    let err = Environment::new(&["self"])
        .compile("self.a == other")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ERROR: <input>:1:11: undeclared reference to 'other' (in container '')\n | self.a == other\n | ..........^"
    );
}

#[test]
fn an_unknown_function_is_a_compile_error() {
    let err = Environment::new(&["self"])
        .compile("self.frobnicate()")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("undeclared reference to 'frobnicate'"),
        "{err}"
    );
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    let err = Environment::new(&["self"])
        .compile("self.a ==")
        .unwrap_err();
    assert!(err.to_string().starts_with("ERROR: <input>:1:"), "{err}");
}

#[test]
fn comprehension_variables_are_in_scope_only_inside_the_macro() {
    let env = Environment::new(&["self"]);
    assert!(env.compile("self.l.all(x, x > 0)").is_ok());
    assert!(env.compile("self.l.all(x, x > 0) && x > 0").is_err());
}

#[test]
fn a_cubic_rule_over_a_large_list_exceeds_the_cost_limit() {
    let items: Vec<i64> = (0..200).collect();
    let rule = "self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))";
    assert_eq!(
        eval_with(rule, json!({ "l": items })),
        Err(EvalError::CostLimitExceeded)
    );
    assert!(holds(rule, json!({ "l": [1, 2, 3] })));
}

#[test]
fn json_round_trips_through_cel_values() {
    let doc = json!({"a": [1, 2.5, "x", true, null], "b": {"c": 1}});
    assert_eq!(to_json(&from_json(&doc)), Some(doc));
}

#[test]
fn a_loop_over_a_small_map_with_a_long_value_is_within_the_cost_limit() {
    // Gateway API's rule on `spec.infrastructure.annotations` (at most 16 keys, values of
    // up to 4096 characters): the loop runs once per key, whatever the values hold.
    let rule = r#"self.all(key, key.matches(r"""^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"""))"#;
    let annotations = json!({"example.com/a": "v".repeat(4096), "example.com/b": "x"});
    assert!(holds(rule, annotations));
}

#[test]
fn runtime_errors_read_as_cel_go_words_them() {
    let err = |rule: &str| match eval_with(rule, json!({"a": 1})) {
        Err(EvalError::Runtime(message)) => message,
        other => panic!("{rule}: {other:?}"),
    };
    assert_eq!(err("self.missing == 1"), "no such key: missing");
    assert_eq!(err("self.a / 0 == 1"), "division by zero");
    assert_eq!(err("self.a % 0 == 1"), "modulus by zero");
    assert_eq!(err("9223372036854775807 + self.a > 0"), "integer overflow");
}

fn holds_typed(expr: &str, object: serde_json::Value, schema: serde_json::Value) -> bool {
    let program = Environment::new(&["self"])
        .compile(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    match program.evaluate(&[("self", from_json_typed(&object, &schema))]) {
        Ok(Value::Bool(b)) => b,
        other => panic!("{expr}: {other:?}"),
    }
}

#[test]
fn formatted_strings_are_timestamps_durations_and_bytes_in_rules() {
    let schema = json!({"type": "object", "properties": {
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "timeout": {"type": "string", "format": "duration"},
        "data": {"type": "string", "format": "byte"},
        "ratio": {"type": "number"},
        "plain": {"type": "string"},
        "windows": {"type": "array", "items": {"type": "string", "format": "duration"}},
    }});
    // 10:00 at +02:00 is 08:00 UTC: before 09:00 UTC, though its text sorts after it.
    let object = json!({
        "start": "2024-01-01T10:00:00+02:00", "end": "2024-01-01T09:00:00Z",
        "timeout": "1h30m", "data": "YWJj", "ratio": 1, "plain": "2024-01-01T10:00:00Z",
        "windows": ["90s", "-1.5h", "2d"],
    });
    for rule in [
        "self.end > self.start",
        "self.end - self.start == duration('1h')",
        "self.start + self.timeout > self.end",
        "self.timeout == duration('90m')",
        "self.end.getHours() == 9",
        "size(self.data) == 3 && self.data == b'abc'",
        "self.ratio == 1.0",
        "type(self.plain) == string",
        "self.windows[0] == duration('1m30s') && self.windows[1] < duration('0s')",
        "self.windows[2] == duration('48h')",
    ] {
        assert!(holds_typed(rule, object.clone(), schema.clone()), "{rule}");
    }
    // Untyped, the same document holds plain strings and integers.
    assert!(holds("type(self.end) == string && self.ratio == 1", object));
}
