//! Pods and pod templates.

use serde_json::{Value, json};

use super::{ago, headers, meta, row};

fn pod(spec: Value, status: Value) -> Value {
    json!({"metadata": meta("web-0", 3600), "spec": spec, "status": status})
}

fn running(name: &str, restarts: i64) -> Value {
    json!({"name": name, "ready": true, "restartCount": restarts,
           "state": {"running": {"startedAt": ago(600)}}})
}

#[test]
fn pod_columns_are_upstreams() {
    let (normal, wide) = headers("", "Pod");
    assert_eq!(normal, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(wide, ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
}

#[test]
fn a_running_pod_shows_ready_containers_and_when_it_last_restarted() {
    let mut restarted = running("sidecar", 2);
    restarted["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": ago(300)}});
    let object = pod(
        json!({"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "sidecar"}]}),
        json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [running("app", 0), restarted]}),
    );
    assert_eq!(
        row("", "Pod", &object),
        json!([
            "web-0",
            "2/2",
            "Running",
            "2 (5m ago)",
            "60m",
            "10.0.0.5",
            "node-1",
            "<none>",
            "<none>"
        ])
    );
}

#[test]
fn restarts_without_a_last_termination_time_show_only_the_count() {
    let object = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [running("app", 3)]}),
    );
    assert_eq!(row("", "Pod", &object)[3], json!("3"));
    assert_eq!(row("", "Pod", &object)[5], json!("10.0.0.7"));
}

#[test]
fn a_waiting_container_shows_its_reason() {
    let object = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}]}),
    );
    assert_eq!(
        row("", "Pod", &object).as_array().map(|c| c[1..4].to_vec()),
        Some(vec![
            json!("0/1"),
            json!("CrashLoopBackOff"),
            json!("4 (30s ago)")
        ])
    );
}

#[test]
fn a_terminated_container_without_reason_shows_its_exit_code_or_signal() {
    let exited = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Failed", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 137}}}]}),
    );
    let signalled = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Failed", "containerStatuses": [
            {"name": "app", "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
    );
    assert_eq!(row("", "Pod", &exited)[2], json!("ExitCode:137"));
    assert_eq!(row("", "Pod", &signalled)[2], json!("Signal:9"));
}

#[test]
fn init_containers_show_progress_then_their_failures() {
    let spec =
        json!({"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "app"}]});
    let done =
        json!({"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let pending = pod(
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            done.clone(), {"name": "b", "state": {"running": {}}}]}),
    );
    let failed = pod(
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "restartCount": 1,
             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
    );
    let backoff = pod(
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            done, {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
    );
    let initializing = pod(
        spec,
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    assert_eq!(row("", "Pod", &pending)[2], json!("Init:1/2"));
    assert_eq!(row("", "Pod", &failed)[2], json!("Init:Error"));
    assert_eq!(row("", "Pod", &failed)[3], json!("1"));
    assert_eq!(row("", "Pod", &backoff)[2], json!("Init:CrashLoopBackOff"));
    assert_eq!(row("", "Pod", &initializing)[2], json!("Init:0/2"));
}

#[test]
fn a_started_sidecar_counts_as_a_ready_container() {
    let object = pod(
        json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
               "containers": [{"name": "app"}]}),
        json!({"phase": "Running",
               "conditions": [{"type": "Initialized", "status": "True"}],
               "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true,
                   "restartCount": 1, "state": {"running": {}},
                   "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}}],
               "containerStatuses": [running("app", 0)]}),
    );
    assert_eq!(
        row("", "Pod", &object).as_array().map(|c| c[1..4].to_vec()),
        Some(vec![json!("2/2"), json!("Running"), json!("1 (90s ago)")])
    );
}

#[test]
fn a_completed_container_beside_a_running_one_reads_running_or_not_ready() {
    let statuses = json!([
        running("app", 0),
        {"name": "job", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    ]);
    let ready = pod(
        json!({"containers": [{"name": "app"}, {"name": "job"}]}),
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": statuses.clone()}),
    );
    let not_ready = pod(
        json!({"containers": [{"name": "app"}, {"name": "job"}]}),
        json!({"phase": "Running", "containerStatuses": statuses}),
    );
    assert_eq!(row("", "Pod", &ready)[2], json!("Running"));
    assert_eq!(row("", "Pod", &not_ready)[2], json!("NotReady"));
}

#[test]
fn a_deleted_pod_is_terminating_unless_its_node_was_lost() {
    let mut terminating = pod(
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Running", "containerStatuses": [running("app", 0)]}),
    );
    terminating["metadata"]["deletionTimestamp"] = json!(ago(10));
    let mut lost = terminating.clone();
    lost["status"]["reason"] = json!("NodeLost");
    let mut finished = terminating.clone();
    finished["status"]["phase"] = json!("Succeeded");
    finished["status"]["containerStatuses"] = json!([]);
    assert_eq!(row("", "Pod", &terminating)[2], json!("Terminating"));
    assert_eq!(row("", "Pod", &lost)[2], json!("Unknown"));
    assert_eq!(row("", "Pod", &finished)[2], json!("Succeeded"));
}

#[test]
fn a_gated_pod_shows_scheduling_gated_and_its_readiness_gates() {
    let object = pod(
        json!({"containers": [{"name": "app"}],
               "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]}),
        json!({"phase": "Pending", "nominatedNodeName": "node-2", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
            {"type": "a", "status": "True"}, {"type": "b", "status": "False"}]}),
    );
    assert_eq!(
        row("", "Pod", &object),
        json!([
            "web-0",
            "0/1",
            "SchedulingGated",
            "0",
            "60m",
            "<none>",
            "<none>",
            "node-2",
            "1/2"
        ])
    );
}

#[test]
fn an_empty_pod_prints_zero_values() {
    assert_eq!(
        row("", "Pod", &json!({})),
        json!([
            "",
            "0/0",
            "",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ])
    );
}

#[test]
fn a_pod_template_shows_containers_images_and_labels() {
    let object = json!({"metadata": meta("tpl", 60), "template": {
        "metadata": {"labels": {"tier": "web", "app": "shop"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"},
                                {"name": "log", "image": "busybox"}]}}});
    assert_eq!(
        headers("", "PodTemplate").0,
        ["NAME", "CONTAINERS", "IMAGES", "POD LABELS"]
    );
    assert_eq!(
        row("", "PodTemplate", &object),
        json!(["tpl", "app,log", "nginx:1.25,busybox", "app=shop,tier=web"])
    );
}
