//! PodTopologySpread's unit tests: explicit constraints, then the cluster defaults.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;
use crate::testing::{node, pod_json};
use serde_json::json;

fn zone_node(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
    let mut n = node(name, "4", "8Gi");
    n.metadata.labels = Some(
        [
            ("zone".to_owned(), zone.to_owned()),
            (HOSTNAME.to_owned(), name.to_owned()),
        ]
        .into(),
    );
    n
}

fn spread_pod(name: &str, max_skew: i32, when: &str, min_domains: Option<i32>) -> Arc<PodInfo> {
    let mut c = json!({"maxSkew": max_skew, "topologyKey": "zone", "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}}});
    if let Some(m) = min_domains {
        c["minDomains"] = json!(m);
    }
    Arc::new(pod_json(
        json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "topologySpreadConstraints": [c]}),
    ))
}

/// Zones a (2 nodes), b, c; `web` pods: a has 2, b has 1, c has 0.
fn cluster() -> Snapshot {
    let mut s = Snapshot::new();
    for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c")] {
        s.upsert_node(zone_node(n, z));
    }
    s.add_pod(spread_pod("w1", 1, "DoNotSchedule", None), "a1", false);
    s.add_pod(spread_pod("w2", 1, "DoNotSchedule", None), "a2", false);
    s.add_pod(spread_pod("w3", 1, "DoNotSchedule", None), "b1", false);
    s
}

fn feasible(s: &Snapshot, pod: &PodInfo) -> Vec<String> {
    let mut state = CycleState::default();
    PodTopologySpread::default()
        .pre_filter(&mut state, pod, s)
        .unwrap();
    s.nodes
        .iter()
        .filter(|n| PodTopologySpread::default().filter(&state, pod, n).is_ok())
        .map(|n| n.name.clone())
        .collect()
}

#[test]
fn hard_constraints_keep_skew_within_max_skew() {
    let s = cluster();
    let cases = [
        (1, None, vec!["c1"]),
        (2, None, vec!["b1", "c1"]),
        (3, None, vec!["a1", "a2", "b1", "c1"]),
        // Four domains required, three exist: the minimum counts as 0.
        (2, Some(4), vec!["b1", "c1"]),
        (1, Some(4), vec!["c1"]),
    ];
    for (skew, min_domains, want) in cases {
        let pod = spread_pod("new", skew, "DoNotSchedule", min_domains);
        assert_eq!(
            feasible(&s, &pod),
            want,
            "maxSkew {skew} minDomains {min_domains:?}"
        );
    }
}

#[test]
fn nodes_without_the_topology_key_are_unresolvable() {
    let mut s = cluster();
    s.upsert_node(node("bare", "4", "8Gi"));
    let pod = spread_pod("new", 1, "DoNotSchedule", None);
    let mut state = CycleState::default();
    PodTopologySpread::default()
        .pre_filter(&mut state, &pod, &s)
        .unwrap();
    let err = PodTopologySpread::default()
        .filter(&state, &pod, s.node("bare").unwrap())
        .unwrap_err();
    assert_eq!(err.code, crate::framework::Code::Unresolvable);
}

#[test]
fn soft_constraints_prefer_emptier_domains() {
    let s = cluster();
    let pod = spread_pod("new", 1, "ScheduleAnyway", None);
    let mut state = CycleState::default();
    assert!(PodTopologySpread::default().pre_score(&mut state, &pod, &s, &[0, 1, 2, 3]));
    let mut scores: Vec<i64> = s
        .nodes
        .iter()
        .map(|n| PodTopologySpread::default().score(&state, &pod, n))
        .collect();
    PodTopologySpread::default().normalize(&state, &pod, &mut scores);
    assert!(scores[3] > scores[2] && scores[2] > scores[0], "{scores:?}");
    assert_eq!(scores[3], 100);
}

// --- Default constraints ---

fn host_node(name: &str) -> k8s_openapi::api::core::v1::Node {
    let mut n = node(name, "4", "8Gi");
    n.metadata.labels = Some([(HOSTNAME.to_owned(), name.to_owned())].into());
    n
}

/// A pod labelled `app: <app>`, controlled by the ReplicaSet `owner` when given.
fn replica(name: &str, app: &str, owner: Option<&str>) -> Arc<PodInfo> {
    let mut metadata = json!({"name": name, "uid": name, "labels": {"app": app}});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": owner, "uid": owner, "controller": true}]);
    }
    Arc::new(pod_json(json!({"metadata": metadata})))
}

/// Hosts a, b, c (hostname labels only); a Service `web` selecting `app: web` and a
/// ReplicaSet `api` selecting `app: api`.
fn hosts() -> Snapshot {
    let mut s = Snapshot::new();
    for n in ["a", "b", "c"] {
        s.upsert_node(host_node(n));
    }
    s.workloads.apply_service(
        &serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}}}))
        .unwrap(),
    );
    s.workloads.apply_replica_set(
        &serde_json::from_value(json!({"metadata": {"name": "api", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "api"}}}}))
        .unwrap(),
    );
    s
}

fn keys(constraints: &[SpreadConstraint]) -> Vec<&str> {
    constraints
        .iter()
        .map(|c| c.topology_key.as_str())
        .collect()
}

#[test]
fn default_constraints_apply_only_to_selected_pods_without_their_own() {
    let s = hosts();
    let own = Arc::new(pod_json(json!({
        "metadata": {"name": "own", "labels": {"app": "web"}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]})));
    let list = PodTopologySpread::from_args(&json!({"defaultingType": "List",
        "defaultConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]}))
    .unwrap();
    let system = PodTopologySpread::default();
    // (case, plugin, pod, hard constraints' keys, soft constraints' keys)
    let cases = [
        (
            "its own constraints win",
            &system,
            own,
            vec![],
            vec!["zone"],
        ),
        (
            "nothing selects it",
            &system,
            replica("p", "batch", None),
            vec![],
            vec![],
        ),
        (
            "a Service selects it",
            &system,
            replica("p", "web", None),
            vec![],
            vec![HOSTNAME, ZONE],
        ),
        (
            "its ReplicaSet selects it",
            &system,
            replica("p", "api", Some("api")),
            vec![],
            vec![HOSTNAME, ZONE],
        ),
        (
            "List defaults",
            &list,
            replica("p", "api", Some("api")),
            vec![ZONE],
            vec![],
        ),
        (
            "List defaults, nothing selects it",
            &list,
            replica("p", "batch", None),
            vec![],
            vec![],
        ),
    ];
    for (case, plugin, pod, hard, soft) in cases {
        assert_eq!(
            keys(&plugin.constraints(&pod, &s, true)),
            hard,
            "{case}: hard"
        );
        assert_eq!(
            keys(&plugin.constraints(&pod, &s, false)),
            soft,
            "{case}: soft"
        );
    }
    // The defaults count the pods the workload selects, not the pod's labels as such.
    let selector = &system.constraints(&replica("p", "api", Some("api")), &s, false)[0].selector;
    assert!(selector.matches(&[("app".to_owned(), "api".to_owned())].into()));
    assert!(!selector.matches(&[("app".to_owned(), "web".to_owned())].into()));
}

#[test]
fn plugin_arguments_choose_system_or_listed_defaults() {
    let system = PodTopologySpread::from_args(&Value::Null).unwrap();
    assert!(system.system_defaulted && system.reads_workloads());
    assert_eq!(keys(&system.defaults), vec![HOSTNAME, ZONE]);
    assert_eq!(
        system
            .defaults
            .iter()
            .map(|c| c.max_skew)
            .collect::<Vec<_>>(),
        vec![3, 5]
    );
    assert!(system.defaults.iter().all(|c| !c.hard));
    let list = PodTopologySpread::from_args(&json!({"defaultingType": "List",
        "defaultConstraints": [
            {"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3},
            {"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "ScheduleAnyway",
             "nodeTaintsPolicy": "Honor"}]}))
    .unwrap();
    assert!(!list.system_defaulted);
    assert_eq!(keys(&list.defaults), vec!["rack", "rack"]);
    assert!(list.defaults[0].hard && list.defaults[0].min_domains == 3);
    assert!(!list.defaults[1].hard && list.defaults[1].honor_taints);
    // An empty list turns defaulting off, and with it the workload watches.
    let none = PodTopologySpread::from_args(&json!({"defaultingType": "List"})).unwrap();
    assert!(none.defaults.is_empty() && !none.reads_workloads());
}

#[test]
fn bad_plugin_arguments_are_refused_with_upstream_messages() {
    let c = |v: Value| json!({"defaultingType": "List", "defaultConstraints": [v]});
    let cases = [
        (
            json!({"defaultConstraints": [{"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]}),
            r#"defaultingType: Invalid value: "System": when .defaultConstraints are not empty"#,
        ),
        (
            json!({"defaultingType": "Sometimes"}),
            r#"defaultingType: Unsupported value: "Sometimes": supported values: "System", "List""#,
        ),
        (
            c(json!({"maxSkew": 0, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"})),
            "defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf)",
        ),
        (
            c(json!({"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"})),
            "defaultConstraints[0].topologyKey: Required value: can not be empty",
        ),
        (
            c(json!({"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "Maybe"})),
            r#"defaultConstraints[0].whenUnsatisfiable: Unsupported value: "Maybe": supported values: "DoNotSchedule", "ScheduleAnyway""#,
        ),
        (
            c(
                json!({"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}),
            ),
            "defaultConstraints[0].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod",
        ),
        (
            json!({"defaultingType": "List", "defaultConstraints": [
                {"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"},
                {"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]}),
            r#"defaultConstraints[1]: Duplicate value: "{rack, DoNotSchedule}""#,
        ),
        (
            c(json!({"maxSkew": -1, "topologyKey": "rack"})),
            "[defaultConstraints[0].maxSkew: Invalid value: -1: not in valid range (0, inf), \
             defaultConstraints[0].whenUnsatisfiable: Required value: can not be empty]",
        ),
    ];
    for (args, want) in cases {
        let err = PodTopologySpread::from_args(&args).err().unwrap();
        assert_eq!(err, format!("PodTopologySpread: {want}"), "{args}");
    }
}

/// Normalized scores of the nodes for `pod`, all nodes feasible.
fn scores(plugin: &PodTopologySpread, s: &Snapshot, pod: &PodInfo) -> Option<Vec<i64>> {
    let mut state = CycleState::default();
    let all: Vec<usize> = (0..s.nodes.len()).collect();
    if !plugin.pre_score(&mut state, pod, s, &all) {
        return None;
    }
    let mut scores: Vec<i64> = s
        .nodes
        .iter()
        .map(|n| plugin.score(&state, pod, n))
        .collect();
    plugin.normalize(&state, pod, &mut scores);
    Some(scores)
}

#[test]
fn system_defaults_prefer_hosts_with_fewer_replicas_even_without_zones() {
    let mut s = hosts();
    s.add_pod(replica("api-1", "api", Some("api")), "a", false);
    s.add_pod(replica("api-2", "api", Some("api")), "a", false);
    s.add_pod(replica("api-3", "api", Some("api")), "b", false);
    // Pods the ReplicaSet does not select do not count.
    for i in 0..3 {
        s.add_pod(replica(&format!("web-{i}"), "web", None), "c", false);
    }
    let pod = replica("api-4", "api", Some("api"));
    // hostname weight ln(3 + 2), maxSkew 3: raw a 5, b 4, c 2; the zone constraint is
    // skipped on nodes without a zone label.
    assert_eq!(
        scores(&PodTopologySpread::default(), &s, &pod),
        Some(vec![40, 60, 100])
    );
    // The same constraints given as a List ignore nodes that lack a key: no zone, no score.
    let listed =
        PodTopologySpread::from_args(&json!({"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
        {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"}]}))
        .unwrap();
    assert_eq!(scores(&listed, &s, &pod), Some(vec![0, 0, 0]));
    // A pod nothing selects is not scored at all.
    assert_eq!(
        scores(
            &PodTopologySpread::default(),
            &s,
            &replica("lone", "batch", None)
        ),
        None
    );
}

#[test]
fn system_defaults_spread_a_replica_sets_pods_across_hosts() {
    use crate::profile::{Profile, Rng};
    let profile = Profile {
        scheduler_name: "default-scheduler".into(),
        filters: Vec::new(),
        scorers: vec![(Arc::new(PodTopologySpread::default()), 2)],
        reservers: Vec::new(),
        percentage_of_nodes_to_score: None,
        preemption: false,
    };
    let mut s = hosts();
    let mut rng = Rng::new(7);
    for i in 0..9 {
        let pod = replica(&format!("api-{i}"), "api", Some("api"));
        let mut state = CycleState::default();
        let placement = profile
            .schedule(&mut state, &pod, &s, &mut 0, &mut rng)
            .unwrap();
        let node = s.nodes[placement.node].name.clone();
        s.add_pod(pod, &node, false);
    }
    let per_node: Vec<usize> = s.nodes.iter().map(|n| n.pods.len()).collect();
    assert_eq!(per_node, vec![3, 3, 3]);
}
