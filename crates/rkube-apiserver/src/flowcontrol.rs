//! API Priority and Fairness configuration a new cluster has: upstream's mandatory and
//! suggested PriorityLevelConfigurations and FlowSchemas (flowcontrol.apiserver.k8s.io/v1,
//! `k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap`), created at start when missing and
//! marked `apf.kubernetes.io/autoupdate-spec: "true"` as upstream marks them. rkube stores
//! and serves them; it does not yet queue requests by them.

use serde_json::{Value, json};

const AUTOUPDATE: &str = "apf.kubernetes.io/autoupdate-spec";

fn metadata(name: &str) -> Value {
    json!({"name": name, "annotations": {AUTOUPDATE: "true"}})
}

/// A Limited level that queues: nominal shares, lendable percent, queues, hand size.
fn queuing(name: &str, shares: i32, lendable: i32, queues: i32, hand: i32) -> Value {
    json!({
        "metadata": metadata(name),
        "spec": {
            "type": "Limited",
            "limited": {
                "nominalConcurrencyShares": shares,
                "lendablePercent": lendable,
                "limitResponse": {
                    "type": "Queue",
                    "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": 50},
                },
            },
        },
    })
}

/// The PriorityLevelConfigurations: mandatory (exempt, catch-all), then suggested.
pub fn priority_levels() -> Vec<Value> {
    vec![
        json!({
            "metadata": metadata("exempt"),
            "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}},
        }),
        json!({
            "metadata": metadata("catch-all"),
            "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": 5,
                "lendablePercent": 0,
                "limitResponse": {"type": "Reject"},
            }},
        }),
        queuing("system", 30, 33, 64, 6),
        queuing("node-high", 40, 25, 64, 6),
        queuing("leader-election", 10, 0, 16, 4),
        queuing("workload-high", 40, 50, 128, 6),
        queuing("workload-low", 100, 90, 128, 6),
        queuing("global-default", 20, 50, 128, 6),
    ]
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "group": {"name": name}})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "user": {"name": name}})
}

fn kube_system_account(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "serviceAccount": {"name": name, "namespace": "kube-system"}})
}

fn resource_rule(
    verbs: &[&str],
    groups: &[&str],
    resources: &[&str],
    namespaces: &[&str],
    cluster: bool,
) -> Value {
    let mut rule = json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "namespaces": namespaces});
    if cluster {
        rule["clusterScope"] = json!(true);
    }
    rule
}

/// Every request of the subjects: all verbs on all resources and all non-resource URLs.
fn everything(subjects: Vec<Value>) -> Value {
    json!({
        "subjects": subjects,
        "resourceRules": [resource_rule(&["*"], &["*"], &["*"], &["*"], true)],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    })
}

fn flow_schema(
    name: &str,
    level: &str,
    precedence: i32,
    distinguisher: Option<&str>,
    rules: Value,
) -> Value {
    let mut spec = json!({
        "priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence,
        "rules": [rules],
    });
    if let Some(method) = distinguisher {
        spec["distinguisherMethod"] = json!({"type": method});
    }
    json!({"metadata": metadata(name), "spec": spec})
}

/// The FlowSchemas: mandatory (exempt, catch-all), then suggested.
pub fn flow_schemas() -> Vec<Value> {
    let authenticated = || {
        vec![
            group("system:unauthenticated"),
            group("system:authenticated"),
        ]
    };
    let leader_election = |namespaces: &[&str]| {
        vec![
            resource_rule(
                &["get", "create", "update"],
                &[""],
                &["endpoints", "configmaps"],
                namespaces,
                false,
            ),
            resource_rule(
                &["get", "create", "update"],
                &["coordination.k8s.io"],
                &["leases"],
                &["*"],
                false,
            ),
        ]
    };
    vec![
        flow_schema(
            "exempt",
            "exempt",
            1,
            None,
            everything(vec![group("system:masters")]),
        ),
        flow_schema(
            "catch-all",
            "catch-all",
            10000,
            Some("ByUser"),
            everything(authenticated()),
        ),
        flow_schema(
            "system-nodes",
            "system",
            500,
            Some("ByUser"),
            everything(vec![group("system:nodes")]),
        ),
        flow_schema(
            "system-node-high",
            "node-high",
            400,
            Some("ByUser"),
            json!({
                "subjects": [group("system:nodes")],
                "resourceRules": [
                    resource_rule(&["*"], &[""], &["nodes", "nodes/status"], &["*"], true),
                    resource_rule(&["*"], &["coordination.k8s.io"], &["leases"], &["*"], false),
                ],
            }),
        ),
        flow_schema(
            "probes",
            "exempt",
            2,
            None,
            json!({
                "subjects": authenticated(),
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}],
            }),
        ),
        flow_schema(
            "system-leader-election",
            "leader-election",
            100,
            Some("ByUser"),
            json!({
                "subjects": [
                    user("system:kube-controller-manager"),
                    user("system:kube-scheduler"),
                    kube_system_account("*"),
                ],
                "resourceRules": leader_election(&["kube-system"]),
            }),
        ),
        flow_schema(
            "endpoint-controller",
            "workload-high",
            150,
            Some("ByUser"),
            json!({
                "subjects": [
                    user("system:kube-controller-manager"),
                    kube_system_account("endpoint-controller"),
                    kube_system_account("endpointslicemirroring-controller"),
                ],
                "resourceRules": [resource_rule(&["get", "create", "update"], &[""], &["endpoints"], &["*"], false)],
            }),
        ),
        flow_schema(
            "workload-leader-election",
            "leader-election",
            200,
            Some("ByUser"),
            json!({"subjects": [kube_system_account("*")], "resourceRules": leader_election(&["*"])}),
        ),
        flow_schema(
            "kube-controller-manager",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(vec![user("system:kube-controller-manager")]),
        ),
        flow_schema(
            "kube-scheduler",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(vec![user("system:kube-scheduler")]),
        ),
        flow_schema(
            "kube-system-service-accounts",
            "workload-high",
            900,
            Some("ByNamespace"),
            everything(vec![kube_system_account("*")]),
        ),
        flow_schema(
            "service-accounts",
            "workload-low",
            9000,
            Some("ByUser"),
            everything(vec![group("system:serviceaccounts")]),
        ),
        flow_schema(
            "global-default",
            "global-default",
            9900,
            Some("ByUser"),
            everything(authenticated()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_schema_names_a_bootstrap_priority_level_and_all_decode() {
        let registry = rkube_api::registry::all();
        let levels = registry
            .by_kind("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration")
            .unwrap();
        let schemas = registry
            .by_kind("flowcontrol.apiserver.k8s.io", "FlowSchema")
            .unwrap();
        let names: Vec<String> = priority_levels()
            .iter()
            .map(|l| {
                (levels.normalize)(l).unwrap();
                l["metadata"]["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(names.len(), 8);
        let all = flow_schemas();
        assert_eq!(all.len(), 13);
        for schema in all {
            (schemas.normalize)(&schema).unwrap();
            let level = schema["spec"]["priorityLevelConfiguration"]["name"]
                .as_str()
                .unwrap();
            assert!(names.iter().any(|n| n == level), "{level}");
        }
    }
}
