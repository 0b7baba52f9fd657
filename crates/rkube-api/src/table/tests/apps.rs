//! Workloads, jobs, autoscalers and disruption budgets.

use serde_json::{Value, json};

use super::{ago, headers, meta, row};

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {
        "nodeSelector": {"disk": "ssd"},
        "containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}})
}

#[test]
fn a_deployment_shows_ready_over_desired_and_its_selector() {
    let object = json!({"metadata": meta("web", 86400 * 2), "spec": {
        "replicas": 3, "template": template(),
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "canary"]},
                                          {"key": "beta", "operator": "DoesNotExist"}]}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let (normal, wide) = headers("apps", "Deployment");
    assert_eq!(normal, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(wide, ["CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(
        row("apps", "Deployment", &object),
        json!([
            "web",
            "2/3",
            3,
            2,
            "2d",
            "app,log",
            "nginx:1.25,busybox",
            "app=web,!beta,env in (canary,prod)"
        ])
    );
}

#[test]
fn a_deployment_with_an_invalid_selector_says_so_and_an_empty_one_shows_nothing() {
    let invalid =
        json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
    let empty = json!({"spec": {"selector": {}}});
    assert_eq!(row("apps", "Deployment", &invalid)[7], json!("<invalid>"));
    assert_eq!(row("apps", "Deployment", &empty)[7], json!(""));
}

#[test]
fn a_replica_set_shows_desired_current_and_ready() {
    let object = json!({"metadata": meta("web-5d4f", 300), "spec": {
        "replicas": 3, "template": template(), "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}},
        "status": {"replicas": 3, "readyReplicas": 1}});
    assert_eq!(
        row("apps", "ReplicaSet", &object),
        json!([
            "web-5d4f",
            3,
            3,
            1,
            "5m",
            "app,log",
            "nginx:1.25,busybox",
            "app=web,pod-template-hash=5d4f"
        ])
    );
}

#[test]
fn a_replication_controller_shows_its_map_selector() {
    let object = json!({"metadata": meta("old", 300), "spec": {
        "replicas": 2, "selector": {"app": "old"}, "template": template()},
        "status": {"replicas": 2, "readyReplicas": 2}});
    assert_eq!(
        row("", "ReplicationController", &object),
        json!([
            "old",
            2,
            2,
            2,
            "5m",
            "app,log",
            "nginx:1.25,busybox",
            "app=old"
        ])
    );
    assert_eq!(
        row("", "ReplicationController", &json!({}))[7],
        json!("<none>")
    );
}

#[test]
fn a_daemon_set_shows_its_counts_and_node_selector() {
    let object = json!({"metadata": meta("agent", 3600 * 9), "spec": {
        "template": template(), "selector": {"matchLabels": {"app": "agent"}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
    let (normal, _) = headers("apps", "DaemonSet");
    assert_eq!(
        normal,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(
        row("apps", "DaemonSet", &object),
        json!([
            "agent",
            3,
            3,
            2,
            3,
            2,
            "disk=ssd",
            "9h",
            "app,log",
            "nginx:1.25,busybox",
            "app=agent"
        ])
    );
}

#[test]
fn a_stateful_set_shows_ready_over_desired() {
    let object = json!({"metadata": meta("db", 3600 * 5 + 60 * 7), "spec": {"replicas": 3, "template": template()},
                        "status": {"readyReplicas": 3}});
    assert_eq!(
        row("apps", "StatefulSet", &object),
        json!(["db", "3/3", "5h7m", "app,log", "nginx:1.25,busybox"])
    );
}

#[test]
fn a_controller_revision_names_its_controller_by_kind_and_group() {
    let object = json!({"metadata": {"name": "db-7f9", "creationTimestamp": ago(60), "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": "other"},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]},
        "revision": 2});
    assert_eq!(
        row("apps", "ControllerRevision", &object),
        json!(["db-7f9", "statefulset.apps/db", 2, "60s"])
    );
    assert_eq!(
        row("apps", "ControllerRevision", &json!({}))[1],
        json!("<none>")
    );
}

#[test]
fn a_finished_job_shows_complete_and_how_long_it_took() {
    let object = json!({"metadata": meta("backup", 3600), "spec": {
        "completions": 1, "parallelism": 1, "template": template(),
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}},
        "status": {"succeeded": 1, "startTime": ago(3600), "completionTime": ago(3600 - 95),
                   "conditions": [{"type": "Complete", "status": "True"}]}});
    let (normal, _) = headers("batch", "Job");
    assert_eq!(normal, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(
        row("batch", "Job", &object),
        json!([
            "backup",
            "Complete",
            "1/1",
            "95s",
            "60m",
            "app,log",
            "nginx:1.25,busybox",
            "batch.kubernetes.io/controller-uid=abc"
        ])
    );
}

#[test]
fn a_running_job_counts_duration_up_to_now() {
    let object = json!({"metadata": meta("work", 400), "spec": {"parallelism": 3},
                        "status": {"succeeded": 1, "startTime": ago(200)}});
    let suspended = json!({"spec": {"completions": 5}, "status": {
        "conditions": [{"type": "Suspended", "status": "True"}]}});
    let mut deleting = object.clone();
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(
        row("batch", "Job", &object)
            .as_array()
            .map(|c| c[1..4].to_vec()),
        Some(vec![json!("Running"), json!("1/1 of 3"), json!("3m20s")])
    );
    assert_eq!(
        row("batch", "Job", &suspended)
            .as_array()
            .map(|c| c[1..4].to_vec()),
        Some(vec![json!("Suspended"), json!("0/5"), json!("")])
    );
    assert_eq!(row("batch", "Job", &deleting)[1], json!("Terminating"));
}

#[test]
fn a_cron_job_shows_schedule_suspension_and_last_run() {
    let object = json!({"metadata": meta("nightly", 86400 * 30), "spec": {
        "schedule": "0 3 * * *", "suspend": false,
        "jobTemplate": {"spec": {"template": template()}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600 * 9)}});
    let (normal, wide) = headers("batch", "CronJob");
    assert_eq!(
        normal,
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(wide, ["CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(
        row("batch", "CronJob", &object),
        json!([
            "nightly",
            "0 3 * * *",
            "<none>",
            "False",
            1,
            "9h",
            "30d",
            "app,log",
            "nginx:1.25,busybox",
            "<none>"
        ])
    );
    let zoned = json!({"spec": {"schedule": "@hourly", "timeZone": "Europe/Paris"}});
    assert_eq!(
        row("batch", "CronJob", &zoned)
            .as_array()
            .map(|c| c[1..6].to_vec()),
        Some(vec![
            json!("@hourly"),
            json!("Europe/Paris"),
            json!("<unset>"),
            json!(0),
            json!("<none>")
        ])
    );
}

#[test]
fn an_autoscaler_shows_its_first_two_targets_then_how_many_more() {
    let object = json!({"metadata": meta("web", 600), "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 10,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}]},
        "status": {"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "90m"}}}]}});
    let (normal, _) = headers("autoscaling", "HorizontalPodAutoscaler");
    assert_eq!(
        normal,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert_eq!(
        row("autoscaling", "HorizontalPodAutoscaler", &object),
        json!([
            "web",
            "Deployment/web",
            "cpu: 45%/80%, <unknown>/1k + 1 more...",
            "2",
            10,
            3,
            "10m"
        ])
    );
}

#[test]
fn autoscaler_targets_cover_every_metric_source() {
    let object = json!({"spec": {"metrics": [
        {"type": "ContainerResource", "containerResource": {"name": "memory", "container": "app",
            "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
        {"type": "Object", "object": {"target": {"type": "AverageValue", "averageValue": "2"}}}]},
        "status": {"currentMetrics": [
            {"type": "ContainerResource", "containerResource": {"current": {"averageValue": "200Mi"}}},
            {"type": "Object", "object": {"current": {"value": "5"}}}]}});
    let external = json!({"spec": {"metrics": [
        {"type": "External", "external": {"target": {"type": "Value", "value": "10"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]},
        "status": {"currentMetrics": [{"type": "External", "external": {"current": {"value": "3"}}}]}});
    assert_eq!(
        row("autoscaling", "HorizontalPodAutoscaler", &object)[2],
        json!("memory: 200Mi/500Mi, <unknown>/2 (avg)")
    );
    assert_eq!(
        row("autoscaling", "HorizontalPodAutoscaler", &external)[2],
        json!("3/10, cpu: <unknown>/<auto>")
    );
    assert_eq!(
        row("autoscaling", "HorizontalPodAutoscaler", &json!({})),
        json!(["", "/", "<none>", "<unset>", 0, 0, "<unknown>"])
    );
}

#[test]
fn a_disruption_budget_shows_its_bounds_or_not_applicable() {
    let object = json!({"metadata": meta("web", 60), "spec": {"minAvailable": "50%"},
                        "status": {"disruptionsAllowed": 1}});
    let counted = json!({"metadata": meta("db", 60), "spec": {"maxUnavailable": 1}});
    assert_eq!(
        headers("policy", "PodDisruptionBudget").0,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(
        row("policy", "PodDisruptionBudget", &object),
        json!(["web", "50%", "N/A", 1, "60s"])
    );
    assert_eq!(
        row("policy", "PodDisruptionBudget", &counted),
        json!(["db", "N/A", "1", 0, "60s"])
    );
}

#[test]
fn a_scale_shows_desired_and_available_replicas() {
    let object =
        json!({"metadata": meta("web", 60), "spec": {"replicas": 4}, "status": {"replicas": 3}});
    assert_eq!(
        row("autoscaling", "Scale", &object),
        json!(["web", 4, 3, "60s"])
    );
}
