use super::*;

use serde_json::{Value, json};

use crate::observed::{Container, Sandbox};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": spec,
    }))
    .expect("a valid pod")
}

fn with_status(mut pod: Pod, status: Value) -> Pod {
    pod.status = Some(serde_json::from_value(status).expect("a valid pod status"));
    pod
}

fn simple(policy: &str, names: &[&str]) -> Pod {
    let containers: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "image": "busybox"}))
        .collect();
    pod(json!({"restartPolicy": policy, "containers": containers}))
}

fn sandbox(id: &str, attempt: u32, ready: bool) -> Sandbox {
    Sandbox {
        id: id.to_owned(),
        attempt,
        ready,
        created_at: T0 + i64::from(attempt) * S,
    }
}

fn instance(name: &str, attempt: u32, sandbox: &str, state: State) -> Container {
    Container {
        id: format!("{sandbox}-{name}-{attempt}"),
        name: name.to_owned(),
        attempt,
        sandbox_id: sandbox.to_owned(),
        state,
        hash: String::new(),
        exit_code: 0,
        created_at: T0 + i64::from(attempt) * S,
        started_at: T0 + i64::from(attempt) * S,
        finished_at: 0,
        reason: String::new(),
        message: String::new(),
        image_ref: String::new(),
    }
}

fn running(name: &str, attempt: u32, sandbox: &str) -> Container {
    instance(name, attempt, sandbox, State::Running)
}

fn exited(name: &str, attempt: u32, sandbox: &str, code: i32, finished_at: i64) -> Container {
    Container {
        exit_code: code,
        finished_at,
        reason: if code == 0 { "Completed" } else { "Error" }.to_owned(),
        ..instance(name, attempt, sandbox, State::Exited)
    }
}

fn runtime(sandboxes: Vec<Sandbox>, containers: Vec<Container>) -> RuntimePod {
    RuntimePod {
        sandboxes,
        containers,
    }
}

fn ready_sandbox(containers: Vec<Container>) -> RuntimePod {
    runtime(vec![sandbox("s1", 0, true)], containers)
}

fn plan_at(pod: &Pod, rt: &RuntimePod, now: i64) -> Plan {
    plan(
        pod,
        rt,
        &ProbeState::default(),
        &mut Backoff::default(),
        now,
    )
}

fn start_init(index: usize, attempt: u32) -> Action {
    Action::StartContainer {
        kind: Kind::Init,
        index,
        attempt,
    }
}

fn start_app(index: usize, attempt: u32) -> Action {
    Action::StartContainer {
        kind: Kind::App,
        index,
        attempt,
    }
}

fn starts(plan: &Plan) -> Vec<&Action> {
    plan.actions
        .iter()
        .filter(|a| matches!(a, Action::StartContainer { .. }))
        .collect()
}

fn creates_sandbox(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::CreateSandbox { .. }))
}

fn with_init() -> Pod {
    pod(json!({
        "restartPolicy": "Always",
        "initContainers": [
            {"name": "migrate", "image": "busybox"},
            {"name": "seed", "image": "busybox"},
        ],
        "containers": [
            {"name": "app", "image": "nginx"},
            {"name": "metrics", "image": "exporter"},
        ],
    }))
}

#[test]
fn a_new_pod_gets_a_sandbox_first_and_is_synced_again_at_once() {
    let p = plan_at(&with_init(), &RuntimePod::default(), T0);
    assert_eq!(p.actions, vec![Action::CreateSandbox { attempt: 0 }]);
    assert_eq!(p.requeue, Some(Duration::ZERO));
    assert!(p.waiting.is_empty());
}

#[test]
fn with_a_ready_sandbox_init_containers_start_one_at_a_time_in_order_then_all_app_containers() {
    let pod = with_init();

    let p = plan_at(&pod, &ready_sandbox(vec![]), T0);
    assert_eq!(p.actions, vec![start_init(0, 0)]);

    let p = plan_at(&pod, &ready_sandbox(vec![running("migrate", 0, "s1")]), T0);
    assert_eq!(
        p.actions,
        vec![],
        "nothing starts while an init container runs"
    );

    let done = exited("migrate", 0, "s1", 0, T0 + S);
    let p = plan_at(&pod, &ready_sandbox(vec![done.clone()]), T0 + S);
    assert_eq!(p.actions, vec![start_init(1, 0)]);

    let p = plan_at(
        &pod,
        &ready_sandbox(vec![done.clone(), running("seed", 0, "s1")]),
        T0 + S,
    );
    assert_eq!(p.actions, vec![]);

    let seeded = exited("seed", 0, "s1", 0, T0 + 2 * S);
    let p = plan_at(&pod, &ready_sandbox(vec![done, seeded]), T0 + 2 * S);
    assert_eq!(p.actions, vec![start_app(0, 0), start_app(1, 0)]);
}

#[test]
fn a_pod_without_init_containers_starts_every_app_container_in_one_sync() {
    let pod = simple("Always", &["a", "b", "c"]);
    let p = plan_at(&pod, &ready_sandbox(vec![]), T0);
    assert_eq!(
        p.actions,
        vec![start_app(0, 0), start_app(1, 0), start_app(2, 0)]
    );
}

#[test]
fn running_app_containers_that_are_unchanged_and_healthy_are_left_alone() {
    let pod = simple("Always", &["a", "b"]);
    let rt = ready_sandbox(vec![running("a", 0, "s1"), running("b", 0, "s1")]);
    let p = plan_at(&pod, &rt, T0);
    assert_eq!(p, Plan::default());
}

#[test]
fn a_failed_init_container_is_restarted_under_always_and_on_failure() {
    for policy in ["Always", "OnFailure"] {
        let mut pod = with_init();
        pod.spec.as_mut().unwrap().restart_policy = Some(policy.to_owned());
        let rt = ready_sandbox(vec![exited("migrate", 0, "s1", 1, T0)]);
        let p = plan_at(&pod, &rt, T0 + S);
        assert_eq!(p.actions, vec![start_init(0, 1)], "restartPolicy {policy}");
    }
}

#[test]
fn a_failed_init_container_under_never_starts_nothing_more() {
    let mut pod = with_init();
    pod.spec.as_mut().unwrap().restart_policy = Some("Never".to_owned());
    let rt = ready_sandbox(vec![exited("migrate", 0, "s1", 1, T0)]);
    let p = plan_at(&pod, &rt, T0 + S);
    assert!(starts(&p).is_empty(), "{p:?}");
    assert!(!creates_sandbox(&p), "{p:?}");
    assert!(p.waiting.is_empty());
}

#[test]
fn a_failed_init_container_waits_out_its_back_off_before_the_second_restart() {
    let pod = with_init();
    let mut backoff = Backoff::default();
    let probes = ProbeState::default();
    let rt = ready_sandbox(vec![exited("migrate", 0, "s1", 1, T0)]);
    let p = plan(&pod, &rt, &probes, &mut backoff, T0);
    assert_eq!(p.actions, vec![start_init(0, 1)]);

    let rt = ready_sandbox(vec![
        exited("migrate", 0, "s1", 1, T0),
        exited("migrate", 1, "s1", 1, T0 + S),
    ]);
    let p = plan(&pod, &rt, &probes, &mut backoff, T0 + S);
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.waiting["migrate"].0, "CrashLoopBackOff");
    assert_eq!(p.requeue, Some(Duration::from_secs(10)));
}

fn with_sidecar(startup_probe: bool) -> Pod {
    let mut proxy = json!({"name": "proxy", "image": "envoy", "restartPolicy": "Always"});
    if startup_probe {
        proxy["startupProbe"] = json!({"exec": {"command": ["true"]}});
    }
    pod(json!({
        "restartPolicy": "Never",
        "initContainers": [proxy, {"name": "setup", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }))
}

#[test]
fn a_sidecar_must_be_running_before_the_next_init_container_starts() {
    let pod = with_sidecar(false);

    let p = plan_at(&pod, &ready_sandbox(vec![]), T0);
    assert_eq!(p.actions, vec![start_init(0, 0)]);

    let p = plan_at(&pod, &ready_sandbox(vec![running("proxy", 0, "s1")]), T0);
    assert_eq!(p.actions, vec![start_init(1, 0)]);

    let rt = ready_sandbox(vec![
        running("proxy", 0, "s1"),
        exited("setup", 0, "s1", 0, T0 + S),
    ]);
    let p = plan_at(&pod, &rt, T0 + S);
    assert_eq!(
        p.actions,
        vec![start_app(0, 0)],
        "the sidecar keeps running beside the app containers"
    );
}

#[test]
fn a_sidecar_with_a_startup_probe_holds_the_next_init_container_until_the_probe_passes() {
    let pod = with_sidecar(true);
    let rt = ready_sandbox(vec![running("proxy", 0, "s1")]);
    let mut probes = ProbeState::default();

    let p = plan(&pod, &rt, &probes, &mut Backoff::default(), T0);
    assert!(starts(&p).is_empty(), "{p:?}");
    assert!(p.requeue.is_some(), "the worker looks again");

    probes.started.insert("s1-proxy-0".to_owned());
    let p = plan(&pod, &rt, &probes, &mut Backoff::default(), T0);
    assert_eq!(p.actions, vec![start_init(1, 0)]);
}

#[test]
fn a_sidecar_that_exited_is_restarted_whatever_the_pod_restart_policy() {
    let pod = with_sidecar(false);
    let rt = ready_sandbox(vec![exited("proxy", 0, "s1", 0, T0)]);
    let p = plan_at(&pod, &rt, T0 + S);
    assert_eq!(p.actions, vec![start_init(0, 1)]);
}

#[test]
fn an_exited_app_container_is_restarted_under_always_whatever_its_exit_code() {
    for code in [0, 1, 137] {
        let pod = simple("Always", &["app"]);
        let rt = ready_sandbox(vec![exited("app", 0, "s1", code, T0)]);
        let p = plan_at(&pod, &rt, T0 + S);
        assert_eq!(p.actions, vec![start_app(0, 1)], "exit code {code}");
    }
}

#[test]
fn an_exited_app_container_is_restarted_under_on_failure_only_if_it_failed() {
    let pod = simple("OnFailure", &["app"]);
    let rt = ready_sandbox(vec![exited("app", 0, "s1", 2, T0)]);
    assert_eq!(plan_at(&pod, &rt, T0 + S).actions, vec![start_app(0, 1)]);

    let rt = ready_sandbox(vec![exited("app", 0, "s1", 0, T0)]);
    assert_eq!(plan_at(&pod, &rt, T0 + S), Plan::default());
}

#[test]
fn an_exited_app_container_is_never_restarted_under_never() {
    let pod = simple("Never", &["app"]);
    for code in [0, 1] {
        let rt = ready_sandbox(vec![exited("app", 0, "s1", code, T0)]);
        assert_eq!(
            plan_at(&pod, &rt, T0 + S),
            Plan::default(),
            "exit code {code}"
        );
    }
}

#[test]
fn only_the_exited_container_is_restarted_while_its_siblings_keep_running() {
    let pod = simple("Always", &["a", "b"]);
    let rt = ready_sandbox(vec![running("a", 0, "s1"), exited("b", 0, "s1", 1, T0)]);
    assert_eq!(plan_at(&pod, &rt, T0 + S).actions, vec![start_app(1, 1)]);
}

#[test]
fn restarts_back_off_in_crash_loop_back_off_with_delays_doubling_from_ten_seconds() {
    let pod = simple("Always", &["app"]);
    let probes = ProbeState::default();
    let mut backoff = Backoff::default();
    let mut instances = vec![exited("app", 0, "s1", 1, T0)];
    let mut now = T0;

    let p = plan(
        &pod,
        &ready_sandbox(instances.clone()),
        &probes,
        &mut backoff,
        now,
    );
    assert_eq!(
        p.actions,
        vec![start_app(0, 1)],
        "the first restart is at once"
    );
    assert!(p.waiting.is_empty());

    let expected = ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s"];
    for (i, shown) in expected.iter().enumerate() {
        let attempt = u32::try_from(i).unwrap() + 1;
        let delay = [10, 20, 40, 80, 160, 300, 300][i];
        let exit = now + S;
        instances.push(exited("app", attempt, "s1", 1, exit));
        let rt = ready_sandbox(instances.clone());

        now = exit + S;
        let p = plan(&pod, &rt, &probes, &mut backoff, now);
        assert_eq!(p.actions, vec![], "attempt {attempt} waits");
        assert_eq!(
            p.waiting.get("app"),
            Some(&(
                "CrashLoopBackOff".to_owned(),
                format!("back-off {shown} restarting failed container=app pod=web_default(u1)"),
            ))
        );
        assert_eq!(
            p.requeue,
            Some(Duration::from_secs(delay - 1)),
            "the rest of the delay"
        );

        now = exit + delay as i64 * S - 1;
        let p = plan(&pod, &rt, &probes, &mut backoff, now);
        assert_eq!(
            p.actions,
            vec![],
            "still waiting just before the delay ends"
        );
        assert_eq!(p.requeue, Some(Duration::from_nanos(1)));

        now = exit + delay as i64 * S;
        let p = plan(&pod, &rt, &probes, &mut backoff, now);
        assert_eq!(p.actions, vec![start_app(0, attempt + 1)]);
        assert!(p.waiting.is_empty());
    }
}

#[test]
fn back_off_is_kept_per_container() {
    let pod = simple("Always", &["a", "b"]);
    let probes = ProbeState::default();
    let mut backoff = Backoff::default();
    let rt = ready_sandbox(vec![exited("a", 0, "s1", 1, T0), running("b", 0, "s1")]);
    plan(&pod, &rt, &probes, &mut backoff, T0);
    let rt = ready_sandbox(vec![
        exited("a", 0, "s1", 1, T0),
        exited("a", 1, "s1", 1, T0 + S),
        exited("b", 0, "s1", 1, T0 + S),
    ]);
    let p = plan(&pod, &rt, &probes, &mut backoff, T0 + 2 * S);
    assert_eq!(
        p.actions,
        vec![start_app(1, 1)],
        "b's first restart is at once"
    );
    assert_eq!(p.waiting["a"].0, "CrashLoopBackOff");
    assert!(!p.waiting.contains_key("b"));
}

#[test]

fn a_container_that_ran_longer_than_twice_the_longest_back_off_restarts_at_once() {
    let pod = simple("Always", &["app"]);
    let key = backoff_key(&pod, "app");
    let mut backoff = Backoff::default();
    for i in 0..6 {
        backoff.next(&key, T0 + i * S);
    }
    assert_eq!(backoff.delay(&key), Some(Duration::from_secs(300)));

    let exit = T0 + 5 * S + 11 * 60 * S;
    let rt = ready_sandbox(vec![exited("app", 6, "s1", 1, exit)]);
    let p = plan(&pod, &rt, &ProbeState::default(), &mut backoff, exit);
    assert_eq!(p.actions, vec![start_app(0, 7)]);
    assert!(p.waiting.is_empty(), "{:?}", p.waiting);
    assert_eq!(backoff.delay(&key), Some(Duration::from_secs(10)));
}

#[test]
fn next_attempt_continues_from_the_highest_attempt_seen_in_the_runtime() {
    let pod = simple("Always", &["app"]);
    let rt = ready_sandbox(vec![
        exited("app", 0, "s1", 1, T0),
        exited("app", 3, "s1", 1, T0 + 3 * S),
        exited("app", 1, "s1", 1, T0 + S),
    ]);
    assert_eq!(next_attempt(&pod, &rt, "app"), 4);
    assert_eq!(next_attempt(&pod, &rt, "other"), 0);
}

#[test]
fn next_attempt_continues_from_the_reported_restart_count_when_it_is_higher() {
    let status = json!({"containerStatuses": [{
        "name": "app", "image": "busybox", "ready": false, "restartCount": 7,
        "containerID": "containerd://old",
    }]});
    let pod = with_status(simple("Always", &["app"]), status);
    assert_eq!(next_attempt(&pod, &RuntimePod::default(), "app"), 8);

    let rt = ready_sandbox(vec![exited("app", 9, "s1", 1, T0)]);
    assert_eq!(
        next_attempt(&pod, &rt, "app"),
        10,
        "the runtime wins when it is ahead"
    );

    let rt = ready_sandbox(vec![exited("app", 2, "s1", 1, T0)]);
    assert_eq!(next_attempt(&pod, &rt, "app"), 8);
    let p = plan_at(&pod, &rt, T0 + S);
    assert_eq!(p.actions, vec![start_app(0, 8)]);
}

#[test]
fn a_reported_status_of_a_container_that_never_ran_does_not_count() {
    let status = json!({"containerStatuses": [{
        "name": "app", "image": "busybox", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ContainerCreating"}},
    }]});
    let pod = with_status(simple("Always", &["app"]), status);
    assert_eq!(next_attempt(&pod, &RuntimePod::default(), "app"), 0);
}

#[test]
fn init_container_attempts_count_from_their_reported_status_too() {
    let status = json!({"initContainerStatuses": [{
        "name": "migrate", "image": "busybox", "ready": false, "restartCount": 2,
        "containerID": "containerd://old",
    }]});
    let pod = with_status(with_init(), status);
    let p = plan_at(&pod, &ready_sandbox(vec![]), T0);
    assert_eq!(p.actions, vec![start_init(0, 3)]);
}

#[test]
fn a_dead_sandbox_is_killed_and_replaced_with_the_next_attempt() {
    let pod = simple("Always", &["app"]);
    let rt = runtime(
        vec![sandbox("s2", 1, false), sandbox("s1", 0, false)],
        vec![
            exited("app", 0, "s1", 0, T0),
            exited("app", 1, "s2", 137, T0 + S),
        ],
    );
    let p = plan_at(&pod, &rt, T0 + 2 * S);
    assert_eq!(
        p.actions,
        vec![Action::KillPod, Action::CreateSandbox { attempt: 2 }]
    );
    assert_eq!(p.requeue, Some(Duration::ZERO));
}

#[test]
fn a_dead_sandbox_under_on_failure_is_replaced_when_a_container_failed() {
    let pod = simple("OnFailure", &["app"]);
    let rt = runtime(
        vec![sandbox("s1", 0, false)],
        vec![exited("app", 0, "s1", 1, T0)],
    );
    let p = plan_at(&pod, &rt, T0 + S);
    assert_eq!(
        p.actions,
        vec![Action::KillPod, Action::CreateSandbox { attempt: 1 }]
    );
}

#[test]
fn a_dead_sandbox_under_never_is_not_replaced_after_containers_ran() {
    let pod = simple("Never", &["app"]);
    let rt = runtime(
        vec![sandbox("s1", 0, false)],
        vec![exited("app", 0, "s1", 0, T0)],
    );
    assert_eq!(plan_at(&pod, &rt, T0 + S), Plan::default());

    let pod = simple("Never", &["app", "logger"]);
    let rt = runtime(
        vec![sandbox("s1", 0, false)],
        vec![exited("app", 0, "s1", 1, T0), running("logger", 0, "s1")],
    );
    let p = plan_at(&pod, &rt, T0 + S);
    assert_eq!(
        p.actions,
        vec![Action::KillPod],
        "what still runs is stopped"
    );
}

#[test]
fn a_dead_sandbox_under_never_is_replaced_when_no_container_ran_yet() {
    let pod = simple("Never", &["app"]);
    let rt = runtime(vec![sandbox("s1", 0, false)], vec![]);
    let p = plan_at(&pod, &rt, T0);
    assert_eq!(
        p.actions,
        vec![Action::KillPod, Action::CreateSandbox { attempt: 1 }]
    );
}

#[test]

fn a_dead_sandbox_under_on_failure_is_not_replaced_when_every_container_succeeded() {
    let pod = simple("OnFailure", &["app"]);
    let rt = runtime(
        vec![sandbox("s1", 0, false)],
        vec![exited("app", 0, "s1", 0, T0)],
    );
    let p = plan_at(&pod, &rt, T0 + S);
    assert!(!creates_sandbox(&p), "{p:?}");
}

#[test]
fn app_containers_of_a_new_sandbox_continue_their_restart_count() {
    let pod = simple("Always", &["app"]);
    let rt = runtime(
        vec![sandbox("s2", 1, true), sandbox("s1", 0, false)],
        vec![exited("app", 4, "s1", 137, T0)],
    );
    assert_eq!(plan_at(&pod, &rt, T0 + S).actions, vec![start_app(0, 5)]);
}

#[test]
fn init_containers_run_again_in_a_new_sandbox() {
    let pod = with_init();
    let rt = runtime(
        vec![sandbox("s2", 1, true), sandbox("s1", 0, false)],
        vec![
            exited("migrate", 0, "s1", 0, T0),
            exited("seed", 0, "s1", 0, T0),
            exited("app", 0, "s1", 137, T0 + S),
            exited("metrics", 0, "s1", 137, T0 + S),
        ],
    );
    assert_eq!(
        plan_at(&pod, &rt, T0 + 2 * S).actions,
        vec![start_init(0, 1)]
    );
}

fn with_liveness() -> Pod {
    pod(json!({
        "containers": [{
            "name": "app", "image": "nginx",
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        }],
    }))
}

#[test]
fn a_liveness_failure_kills_the_running_container() {
    let pod = with_liveness();
    let rt = ready_sandbox(vec![running("app", 0, "s1")]);
    let mut probes = ProbeState::default();
    probes.restart.insert("s1-app-0".to_owned());
    let p = plan(&pod, &rt, &probes, &mut Backoff::default(), T0);
    assert_eq!(p.actions.len(), 1, "{p:?}");
    match &p.actions[0] {
        Action::KillContainer { id, name, reason } => {
            assert_eq!(id, "s1-app-0");
            assert_eq!(name, "app");
            assert!(reason.contains("failed liveness probe"), "{reason}");
            assert!(reason.ends_with("will be restarted"), "{reason}");
        }
        other => panic!("expected a kill, got {other:?}"),
    }
    assert_eq!(p.requeue, Some(Duration::ZERO));
}

#[test]
fn a_liveness_failure_of_another_instance_does_not_kill_the_current_one() {
    let pod = with_liveness();
    let rt = ready_sandbox(vec![
        exited("app", 0, "s1", 137, T0),
        running("app", 1, "s1"),
    ]);
    let mut probes = ProbeState::default();
    probes.restart.insert("s1-app-0".to_owned());
    let p = plan(&pod, &rt, &probes, &mut Backoff::default(), T0 + S);
    assert_eq!(p.actions, vec![]);
}

#[test]
fn a_startup_probe_failure_kills_the_container_with_its_own_reason() {
    let pod = pod(json!({
        "containers": [{
            "name": "app", "image": "nginx",
            "startupProbe": {"tcpSocket": {"port": 8080}},
        }],
    }));
    let rt = ready_sandbox(vec![running("app", 0, "s1")]);
    let mut probes = ProbeState::default();
    probes.restart.insert("s1-app-0".to_owned());
    let p = plan(&pod, &rt, &probes, &mut Backoff::default(), T0);
    assert!(
        matches!(&p.actions[..], [Action::KillContainer { id, reason, .. }]
            if id == "s1-app-0" && reason.contains("failed startup probe")),
        "{p:?}"
    );
}

#[test]
fn a_changed_container_spec_kills_the_running_container() {
    let old: ContainerSpec =
        serde_json::from_value(json!({"name": "app", "image": "nginx:1.25"})).unwrap();
    let pod = pod(json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}));
    let mut current = running("app", 0, "s1");
    current.hash = container_hash(&old);
    let rt = ready_sandbox(vec![current]);
    let p = plan_at(&pod, &rt, T0);
    assert_eq!(
        p.actions,
        vec![Action::KillContainer {
            id: "s1-app-0".to_owned(),
            name: "app".to_owned(),
            reason: "Container definition changed, will be restarted".to_owned(),
        }]
    );
}

#[test]
fn an_unchanged_container_spec_keeps_the_container() {
    let pod = pod(json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}));
    let spec = &pod.spec.as_ref().unwrap().containers[0];
    let mut current = running("app", 0, "s1");
    current.hash = container_hash(spec);
    assert_eq!(
        plan_at(&pod, &ready_sandbox(vec![current]), T0),
        Plan::default()
    );
}

#[test]
fn a_container_created_but_never_started_is_removed_to_be_made_again() {
    let pod = simple("Always", &["app"]);
    let rt = ready_sandbox(vec![instance("app", 0, "s1", State::Created)]);
    let p = plan_at(&pod, &rt, T0);
    assert!(
        matches!(&p.actions[..], [Action::KillContainer { id, .. }] if id == "s1-app-0"),
        "{p:?}"
    );
}

fn deleted(pod: Pod) -> Pod {
    let mut pod = pod;
    pod.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2023-11-14T22:13:20Z")).expect("a valid timestamp"));
    pod
}

#[test]
fn a_pod_being_deleted_is_killed_while_anything_runs() {
    let pod = deleted(simple("Always", &["app"]));
    let rt = ready_sandbox(vec![running("app", 0, "s1")]);
    assert_eq!(plan_at(&pod, &rt, T0).actions, vec![Action::KillPod]);

    let rt = runtime(vec![sandbox("s1", 0, false)], vec![running("app", 0, "s1")]);
    assert_eq!(plan_at(&pod, &rt, T0).actions, vec![Action::KillPod]);
}

#[test]
fn a_pod_being_deleted_starts_nothing() {
    let pod = deleted(simple("Always", &["app"]));
    let rt = ready_sandbox(vec![exited("app", 0, "s1", 1, T0)]);
    let p = plan_at(&pod, &rt, T0 + S);
    assert!(starts(&p).is_empty(), "{p:?}");
    assert!(!creates_sandbox(&p), "{p:?}");

    let p = plan_at(&pod, &RuntimePod::default(), T0);
    assert_eq!(p, Plan::default(), "nothing is made for a pod going away");
}

#[test]
fn a_pod_whose_status_is_succeeded_or_failed_is_killed_while_anything_runs() {
    for phase in ["Succeeded", "Failed"] {
        let pod = with_status(
            simple("Always", &["app", "sidecar"]),
            json!({"phase": phase}),
        );
        let rt = ready_sandbox(vec![
            exited("app", 0, "s1", 0, T0),
            running("sidecar", 0, "s1"),
        ]);
        assert_eq!(
            plan_at(&pod, &rt, T0 + S).actions,
            vec![Action::KillPod],
            "phase {phase}"
        );
    }
}

#[test]
fn a_finished_pod_with_nothing_left_in_the_runtime_gets_nothing() {
    for phase in ["Succeeded", "Failed"] {
        let pod = with_status(simple("Always", &["app"]), json!({"phase": phase}));
        assert_eq!(
            plan_at(&pod, &RuntimePod::default(), T0),
            Plan::default(),
            "phase {phase}"
        );
    }
}

#[test]

fn a_finished_pod_whose_sandbox_and_containers_are_all_down_gets_nothing() {
    let rt = runtime(
        vec![sandbox("s1", 0, false)],
        vec![exited("app", 0, "s1", 0, T0)],
    );
    let pod = with_status(simple("Never", &["app"]), json!({"phase": "Succeeded"}));
    assert_eq!(plan_at(&pod, &rt, T0 + S), Plan::default());

    let pod = deleted(simple("Always", &["app"]));
    assert_eq!(plan_at(&pod, &rt, T0 + S), Plan::default());
}

#[test]

fn a_crashing_sidecar_does_not_hold_back_the_app_containers_once_the_pod_initialized() {
    let pod = pod(json!({
        "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
        "containers": [{
            "name": "app", "image": "nginx",
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        }],
    }));
    let key = backoff_key(&pod, "proxy");
    let mut backoff = Backoff::default();
    backoff.next(&key, T0);
    let rt = ready_sandbox(vec![
        exited("proxy", 1, "s1", 1, T0 + S),
        running("app", 0, "s1"),
    ]);
    let mut probes = ProbeState::default();
    probes.restart.insert("s1-app-0".to_owned());

    let p = plan(&pod, &rt, &probes, &mut backoff, T0 + 2 * S);
    assert_eq!(p.waiting["proxy"].0, "CrashLoopBackOff");
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::KillContainer { id, .. } if id == "s1-app-0")),
        "{p:?}"
    );
}

#[test]
fn a_pod_without_a_spec_gets_nothing() {
    let pod = Pod::default();
    assert_eq!(plan_at(&pod, &RuntimePod::default(), T0), Plan::default());
}

#[test]
fn delays_print_as_go_durations() {
    assert_eq!(format_delay(Duration::from_secs(10)), "10s");
    assert_eq!(format_delay(Duration::from_secs(80)), "1m20s");
    assert_eq!(format_delay(Duration::from_secs(300)), "5m0s");
}

#[test]
fn sidecars_are_init_containers_with_restart_policy_always() {
    let sidecar: ContainerSpec =
        serde_json::from_value(json!({"name": "p", "restartPolicy": "Always"})).unwrap();
    let plain: ContainerSpec = serde_json::from_value(json!({"name": "p"})).unwrap();
    assert!(is_sidecar(&sidecar));
    assert!(!is_sidecar(&plain));
}
