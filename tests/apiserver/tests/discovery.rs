//! Discovery against upstream v1.33's `kubectl api-resources` (testdata), group by group,
//! and the resources that list adds: bindings, componentstatuses, the API Priority and
//! Fairness objects a new cluster has, and the default ServiceCIDR.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use rkube_apiserver_tests::{api_error, start};
use serde_json::{Value, json};

/// (name, short names, apiVersion, namespaced, kind)
type Row = (String, String, String, bool, String);

fn upstream_rows() -> Vec<Row> {
    let text = include_str!("../testdata/api-resources-v1.33.txt");
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header = lines.next().unwrap();
    let column = |name: &str| header.find(name).unwrap();
    let cols = [
        0,
        column("SHORTNAMES"),
        column("APIVERSION"),
        column("NAMESPACED"),
        column("KIND"),
    ];
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cell = |i: usize| {
                let end = cols
                    .get(i + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line[cols[i]..end].trim().to_owned()
            };
            (cell(0), cell(1), cell(2), cell(3) == "true", cell(4))
        })
        .collect()
}

async fn get(client: &kube::Client, path: &str) -> Value {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap()
}

async fn served_rows(client: &kube::Client) -> Vec<Row> {
    let mut lists = vec![("v1".to_owned(), get(client, "/api/v1").await)];
    let groups = get(client, "/apis").await;
    for group in groups["groups"].as_array().unwrap() {
        let version = group["preferredVersion"]["groupVersion"].as_str().unwrap();
        lists.push((
            version.to_owned(),
            get(client, &format!("/apis/{version}")).await,
        ));
    }
    let mut rows = Vec::new();
    for (api_version, list) in lists {
        for r in list["resources"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            if name.contains('/') {
                continue;
            }
            let short: Vec<&str> = r["shortNames"]
                .as_array()
                .map(|s| s.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            rows.push((
                name.to_owned(),
                short.join(","),
                api_version.clone(),
                r["namespaced"].as_bool().unwrap(),
                r["kind"].as_str().unwrap().to_owned(),
            ));
        }
    }
    rows
}

fn by_group(rows: Vec<Row>) -> BTreeMap<String, BTreeSet<Row>> {
    let mut groups: BTreeMap<String, BTreeSet<Row>> = BTreeMap::new();
    for row in rows {
        let group = match row.2.split_once('/') {
            Some((group, _)) => group.to_owned(),
            None => "core".to_owned(),
        };
        groups.entry(group).or_default().insert(row);
    }
    groups
}

#[tokio::test]
async fn discovery_lists_what_upstream_v1_33_lists_group_by_group() {
    let t = start().await;
    let served = by_group(served_rows(&t.client).await);
    let upstream = by_group(upstream_rows());
    for (group, rows) in &upstream {
        let ours = served.get(group).cloned().unwrap_or_default();
        let missing: Vec<&Row> = rows.difference(&ours).collect();
        let extra: Vec<&Row> = ours.difference(rows).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "group {group}: missing {missing:?}, not upstream's {extra:?}"
        );
    }
    let unknown: Vec<&String> = served
        .keys()
        .filter(|g| !upstream.contains_key(*g))
        .collect();
    assert!(
        unknown.is_empty(),
        "groups upstream does not list: {unknown:?}"
    );
}

#[tokio::test]
async fn a_new_cluster_has_upstreams_flow_schemas_and_priority_levels() {
    let t = start().await;
    let schemas = get(
        &t.client,
        "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
    )
    .await;
    let mut names: Vec<(i64, String, String)> = schemas["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(
                s["metadata"]["annotations"]["apf.kubernetes.io/autoupdate-spec"],
                "true"
            );
            (
                s["spec"]["matchingPrecedence"].as_i64().unwrap(),
                s["metadata"]["name"].as_str().unwrap().to_owned(),
                s["spec"]["priorityLevelConfiguration"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    names.sort();
    let expected = [
        (1, "exempt", "exempt"),
        (2, "probes", "exempt"),
        (100, "system-leader-election", "leader-election"),
        (150, "endpoint-controller", "workload-high"),
        (200, "workload-leader-election", "leader-election"),
        (400, "system-node-high", "node-high"),
        (500, "system-nodes", "system"),
        (800, "kube-controller-manager", "workload-high"),
        (800, "kube-scheduler", "workload-high"),
        (900, "kube-system-service-accounts", "workload-high"),
        (9000, "service-accounts", "workload-low"),
        (9900, "global-default", "global-default"),
        (10000, "catch-all", "catch-all"),
    ];
    let expected: Vec<(i64, String, String)> = expected
        .iter()
        .map(|(p, n, l)| (*p, n.to_string(), l.to_string()))
        .collect();
    assert_eq!(names, expected);

    let levels = get(
        &t.client,
        "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
    )
    .await;
    let levels: BTreeMap<String, Value> = levels["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["metadata"]["name"].as_str().unwrap().to_owned(),
                l["spec"].clone(),
            )
        })
        .collect();
    assert_eq!(
        levels.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "catch-all",
            "exempt",
            "global-default",
            "leader-election",
            "node-high",
            "system",
            "workload-high",
            "workload-low"
        ]
    );
    assert_eq!(
        levels["exempt"],
        json!({"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}})
    );
    assert_eq!(
        levels["workload-low"]["limited"],
        json!({"nominalConcurrencyShares": 100, "lendablePercent": 90,
            "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}})
    );
    assert_eq!(
        levels["catch-all"]["limited"]["limitResponse"],
        json!({"type": "Reject"})
    );

    let cidr = get(
        &t.client,
        "/apis/networking.k8s.io/v1/servicecidrs/kubernetes",
    )
    .await;
    assert_eq!(cidr["spec"]["cidrs"], json!(["10.43.0.0/16"]));
}

#[tokio::test]
async fn component_statuses_report_the_servers_parts_healthy() {
    let t = start().await;
    let list = get(&t.client, "/api/v1/componentstatuses").await;
    assert_eq!(list["kind"], "ComponentStatusList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["controller-manager", "scheduler", "etcd-0"]);
    let one = get(&t.client, "/api/v1/componentstatuses/scheduler").await;
    assert_eq!(
        one["conditions"],
        json!([{"type": "Healthy", "status": "True", "message": "ok"}])
    );
    let request = http::Request::get("/api/v1/componentstatuses/nope")
        .body(Vec::new())
        .unwrap();
    let status = api_error(t.client.request_text(request).await.unwrap_err());
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "componentstatus \"nope\" not found");
}

#[tokio::test]
async fn posting_a_binding_binds_the_pod_it_names() {
    let t = start().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let request = http::Request::post("/api/v1/namespaces/default/pods")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&pod).unwrap())
        .unwrap();
    t.client.request_text(request).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}});
    let request = http::Request::post("/api/v1/namespaces/default/bindings")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    let answer: Value =
        serde_json::from_str(&t.client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(answer["status"], "Success");
    let pod = get(&t.client, "/api/v1/namespaces/default/pods/p").await;
    assert_eq!(pod["spec"]["nodeName"], "n1");
}
