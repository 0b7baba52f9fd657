use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::json;

use super::*;

const NAME_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', \
    and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
    '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric \
    characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. \
    'MyValue',  or 'my_value',  or '12345', regex used for validation is \
    '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn bad_request(s: &str) -> String {
    match LabelSelector::parse(s) {
        Err(ApiError::BadRequest(message)) => message,
        other => panic!("{s:?}: expected a bad request, got {other:?}"),
    }
}

#[test]
fn valid_selectors_parse_to_upstreams_canonical_string() {
    let cases = [
        ("", ""),
        ("   \t\n", ""),
        ("x=a", "x=a"),
        ("  x  =  a  ", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x=", "x="),
        ("x=,y=z", "x=,y=z"),
        ("y=z,x=a", "x=a,y=z"),
        ("x=a,x=b", "x=a,x=b"),
        ("x", "x"),
        ("!x", "!x"),
        ("! x", "!x"),
        ("x in (b,a)", "x in (a,b)"),
        ("x in(b , a)", "x in (a,b)"),
        ("x in (a,a)", "x in (a)"),
        ("x in ()", "x in ()"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        (
            "x in (foo,,baz),y,z notin ()",
            "x in (,baz,foo),y,z notin ()",
        ),
        ("x notin (a)", "x notin (a)"),
        ("x in (in,notin)", "x in (in,notin)"),
        ("in", "in"),
        ("notin=in", "notin=in"),
        ("x>1", "x>1"),
        ("x<10", "x<10"),
        (
            "app.kubernetes.io/name=web,tier notin (db,cache)",
            "app.kubernetes.io/name=web,tier notin (cache,db)",
        ),
        ("a=b,\tc=d\n", "a=b,c=d"),
    ];
    for (input, want) in cases {
        match LabelSelector::parse(input) {
            Ok(s) => assert_eq!(s.to_string(), want, "{input:?}"),
            Err(e) => panic!("{input:?}: {e}"),
        }
    }
}

#[test]
fn bad_syntax_is_rejected_with_upstreams_message() {
    let cases = [
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        ("x=a,", "found '', expected: identifier after ','"),
        ("x=a,,y", "found ',', expected: identifier after ','"),
        (
            ",x",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        (
            "(x)",
            "found '(', expected: !, identifier, or 'end of string'",
        ),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "x (a)",
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "x in a",
            "unable to parse requirement: found 'a' expected: '('",
        ),
        (
            "x in",
            "unable to parse requirement: found '' expected: '('",
        ),
        (
            "x in (a",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "x in (a b)",
            "unable to parse requirement: found 'b', expected: ',' or ')'",
        ),
        (
            "x in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "x in (a,=)",
            "unable to parse requirement: found '=', expected: ',', or identifier",
        ),
        (
            "x=(a)",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "x===a",
            "unable to parse requirement: found '=', expected: identifier",
        ),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        (
            "!",
            "unable to parse requirement: found '', expected: identifier",
        ),
        (
            "!!x",
            "unable to parse requirement: found '!', expected: identifier",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(bad_request(input), want, "{input:?}");
    }
}

#[test]
fn invalid_keys_and_values_are_rejected_with_upstreams_field_errors() {
    let cases = [
        (
            "-x",
            format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_RULE}"),
        ),
        (
            "app:monolith",
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": {NAME_RULE}"
            ),
        ),
        (
            "x=-a",
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"-a\": {VALUE_RULE}"
            ),
        ),
        (
            "x in (-b,-a)",
            format!(
                "unable to parse requirement: [values[0][x]: Invalid value: \"-a\": {VALUE_RULE}, \
                 values[1][x]: Invalid value: \"-b\": {VALUE_RULE}]"
            ),
        ),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
                .to_owned(),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(bad_request(input), want, "{input:?}");
    }
    // Upstream's own test of a key with too many slashes.
    assert_eq!(
        bad_request("a/b/c ?=? def"),
        "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must \
         consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
         alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
         validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS \
         subdomain prefix and '/' (e.g. 'example.com/MyName')"
    );
    assert!(bad_request(&format!("x={}", "v".repeat(64))).contains("must be no more than 63"));
}

#[test]
fn an_equality_requirement_matches_only_its_value() {
    let s = LabelSelector::parse("app=web").expect("valid");
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
    assert!(!s.matches(&labels(&[("app", "db")])));
    assert!(!s.matches(&labels(&[])));
}

#[test]
fn requirements_match_as_upstream_defines_them() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        ("x=a", &[("x", "a")], true),
        ("x==a", &[("x", "a")], true),
        ("x=", &[("x", "")], true),
        ("x=", &[], false),
        ("x!=a", &[("x", "b")], true),
        ("x!=a", &[], true),
        ("x!=a", &[("x", "a")], false),
        ("x in (a,b)", &[("x", "b")], true),
        ("x in (a,b)", &[("x", "c")], false),
        ("x in (a,b)", &[], false),
        ("x in ()", &[("x", "")], true),
        ("x notin (a,b)", &[("x", "c")], true),
        ("x notin (a,b)", &[], true),
        ("x notin (a,b)", &[("x", "a")], false),
        ("x", &[("x", "")], true),
        ("x", &[("y", "")], false),
        ("!x", &[("y", "")], true),
        ("!x", &[("x", "a")], false),
        ("x>1", &[("x", "2")], true),
        ("x>1", &[("x", "1")], false),
        ("x>1", &[("x", "abc")], false),
        ("x>1", &[], false),
        ("x<10", &[("x", "-3")], true),
        ("x<10", &[("x", "10")], false),
        ("x=a,y", &[("x", "a"), ("y", "b")], true),
        ("x=a,y", &[("x", "a")], false),
        ("", &[("x", "a")], true),
    ];
    for (selector, set, want) in cases {
        let s = LabelSelector::parse(selector).expect("valid");
        assert_eq!(s.matches(&labels(set)), *want, "{selector:?} on {set:?}");
    }
}

#[test]
fn matching_an_object_reads_its_metadata_labels() {
    let s = LabelSelector::parse("app=web,!canary").expect("valid");
    let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
    assert!(s.matches_object(&pod));
    let canary = json!({"metadata": {"labels": {"app": "web", "canary": "yes"}}});
    assert!(!s.matches_object(&canary));
    assert!(!s.matches_object(&json!({"metadata": {"name": "p"}})));
    assert!(!s.matches_object(&json!({"metadata": {"labels": {"app": 5}}})));
    assert!(
        LabelSelector::parse("!app")
            .expect("valid")
            .matches_object(&json!({}))
    );
    assert!(LabelSelector::everything().matches_object(&json!(null)));
}

#[test]
fn everything_and_nothing_are_opposites() {
    assert!(LabelSelector::everything().is_empty());
    assert!(LabelSelector::parse("").expect("valid").is_empty());
    assert!(!LabelSelector::parse("a").expect("valid").is_empty());
    let nothing = LabelSelector::nothing();
    assert!(!nothing.is_empty());
    assert!(nothing.matches_nothing());
    assert!(!nothing.matches(&labels(&[])));
    assert_eq!(nothing.to_string(), "");
}

#[test]
fn an_exact_match_is_found_only_for_single_valued_equality_and_in() {
    let s = LabelSelector::parse("a=1,b in (2),c in (3,4),d!=5,e").expect("valid");
    assert_eq!(s.requires_exact_match("a"), Some("1"));
    assert_eq!(s.requires_exact_match("b"), Some("2"));
    assert_eq!(s.requires_exact_match("c"), None);
    assert_eq!(s.requires_exact_match("d"), None);
    assert_eq!(s.requires_exact_match("e"), None);
    assert_eq!(s.requires_exact_match("z"), None);
}

fn api(
    labels: &[(&str, &str)],
    expressions: &[(&str, &str, Option<&[&str]>)],
) -> metav1::LabelSelector {
    metav1::LabelSelector {
        match_labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }),
        match_expressions: (!expressions.is_empty()).then(|| {
            expressions
                .iter()
                .map(|(key, operator, values)| metav1::LabelSelectorRequirement {
                    key: (*key).to_owned(),
                    operator: (*operator).to_owned(),
                    values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
                })
                .collect()
        }),
    }
}

#[test]
fn an_api_selector_combines_match_labels_and_expressions() {
    let s = LabelSelector::from_api(&api(
        &[("tier", "fe"), ("app", "web")],
        &[
            ("env", "In", Some(&["prod", "dev"])),
            ("track", "NotIn", Some(&["canary"])),
            ("owner", "Exists", None),
            ("legacy", "DoesNotExist", Some(&[])),
        ],
    ))
    .expect("valid");
    assert_eq!(
        s.to_string(),
        "app=web,env in (dev,prod),!legacy,owner,tier=fe,track notin (canary)"
    );
    let good = labels(&[
        ("app", "web"),
        ("tier", "fe"),
        ("env", "dev"),
        ("owner", "me"),
    ]);
    assert!(s.matches(&good));
    let mut canary = good.clone();
    canary.insert("track".into(), "canary".into());
    assert!(!s.matches(&canary));
    assert!(
        LabelSelector::from_api(&api(&[], &[]))
            .expect("valid")
            .is_empty()
    );
}

#[test]
fn an_invalid_api_selector_is_rejected_with_upstreams_message() {
    let err = |s: metav1::LabelSelector| match LabelSelector::from_api(&s) {
        Err(ApiError::BadRequest(m)) => m,
        other => panic!("expected a bad request, got {other:?}"),
    };
    assert_eq!(
        err(api(&[], &[("a", "In", None)])),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be \
         empty"
    );
    assert_eq!(
        err(api(&[], &[("a", "NotIn", Some(&[]))])),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be \
         empty"
    );
    assert_eq!(
        err(api(&[], &[("a", "Exists", Some(&["x", "y"]))])),
        "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and \
         does not exist"
    );
    assert_eq!(
        err(api(&[], &[("a", "Gt", Some(&["1"]))])),
        "\"Gt\" is not a valid pod selector operator"
    );
    assert_eq!(
        err(api(&[], &[("-a", "In", Some(&["-v"]))])),
        format!(
            "[key: Invalid value: \"-a\": {NAME_RULE}, values[0][-a]: Invalid value: \"-v\": \
             {VALUE_RULE}]"
        )
    );
    assert_eq!(
        err(api(&[("app", "a b")], &[])),
        format!("values[0][app]: Invalid value: \"a b\": {VALUE_RULE}")
    );
}
