use super::*;

use serde_json::{Value, json};

use crate::observed::Sandbox;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;
const T0_TEXT: &str = "2023-11-14T22:13:20Z";

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

fn instance(name: &str, attempt: u32, state: State) -> Container {
    Container {
        id: format!("{name}-{attempt}"),
        name: name.to_owned(),
        attempt,
        sandbox_id: "s1".to_owned(),
        state,
        hash: String::new(),
        exit_code: 0,
        created_at: T0 + i64::from(attempt) * S,
        started_at: T0 + i64::from(attempt) * S,
        finished_at: 0,
        reason: String::new(),
        message: String::new(),
        image_ref: "sha256:abc".to_owned(),
    }
}

fn running(name: &str, attempt: u32) -> Container {
    instance(name, attempt, State::Running)
}

fn exited(name: &str, attempt: u32, code: i32) -> Container {
    Container {
        exit_code: code,
        finished_at: T0 + i64::from(attempt) * S + S / 2,
        ..instance(name, attempt, State::Exited)
    }
}

fn ready_sandbox(containers: Vec<Container>) -> RuntimePod {
    RuntimePod {
        sandboxes: vec![Sandbox {
            id: "s1".to_owned(),
            attempt: 0,
            ready: true,
            created_at: T0,
        }],
        containers,
    }
}

struct Inputs {
    waiting: HashMap<String, (String, String)>,
    probes: ProbeState,
    pod_ips: Vec<String>,
    host_ips: Vec<String>,
    now: i64,
    failed: Option<(String, String)>,
}

impl Default for Inputs {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
            probes: ProbeState::default(),
            pod_ips: vec!["10.42.0.7".to_owned()],
            host_ips: vec!["192.168.1.10".to_owned()],
            now: T0 + 60 * S,
            failed: None,
        }
    }
}

fn status_with(pod: &Pod, rt: &RuntimePod, inputs: &Inputs) -> PodStatus {
    pod_status(
        pod,
        rt,
        &StatusInput {
            waiting: &inputs.waiting,
            probes: &inputs.probes,
            pod_ips: &inputs.pod_ips,
            host_ips: &inputs.host_ips,
            now: inputs.now,
            failed: inputs.failed.clone(),
        },
    )
}

fn status_of(pod: &Pod, rt: &RuntimePod) -> PodStatus {
    status_with(pod, rt, &Inputs::default())
}

fn cond<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

fn app<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

fn init<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no init status for {name}"))
}

fn waiting_reason(s: &ContainerStatus) -> Option<&str> {
    s.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

fn terminated(s: &ContainerStatus) -> &ContainerStateTerminated {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .unwrap_or_else(|| panic!("{} is not terminated: {:?}", s.name, s.state))
}

fn phase(status: &PodStatus) -> &str {
    status.phase.as_deref().unwrap_or_default()
}

fn transition(c: &PodCondition) -> Value {
    serde_json::to_value(&c.last_transition_time).unwrap()
}

fn with_init() -> Pod {
    pod(json!({
        "restartPolicy": "Always",
        "initContainers": [{"name": "migrate", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }))
}

#[test]
fn a_container_that_does_not_exist_yet_waits_in_container_creating_and_the_pod_is_pending() {
    let pod = simple("Always", &["app"]);
    let s = status_of(&pod, &ready_sandbox(vec![]));
    let c = app(&s, "app");
    assert_eq!(waiting_reason(c), Some("ContainerCreating"));
    assert_eq!(c.image, "busybox");
    assert_eq!(c.restart_count, 0);
    assert!(!c.ready);
    assert_eq!(c.started, Some(false));
    assert_eq!(c.container_id, None);
    assert_eq!(phase(&s), "Pending");
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "True");
    assert_eq!(cond(&s, "Initialized").status, "True");
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app]")
    );
}

#[test]
fn a_pod_without_a_sandbox_is_pending_and_not_ready_to_start_containers() {
    let pod = simple("Always", &["app"]);
    let s = status_of(&pod, &RuntimePod::default());
    assert_eq!(phase(&s), "Pending");
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
    assert_eq!(waiting_reason(app(&s, "app")), Some("ContainerCreating"));
}

#[test]
fn app_containers_wait_in_pod_initializing_while_init_containers_are_pending() {
    let pod = with_init();

    let s = status_of(&pod, &ready_sandbox(vec![]));
    assert_eq!(waiting_reason(init(&s, "migrate")), Some("PodInitializing"));
    assert_eq!(waiting_reason(app(&s, "app")), Some("PodInitializing"));
    assert_eq!(phase(&s), "Pending");

    let s = status_of(&pod, &ready_sandbox(vec![running("migrate", 0)]));
    let m = init(&s, "migrate");
    assert!(m.state.as_ref().unwrap().running.is_some());
    assert_eq!(m.container_id.as_deref(), Some("containerd://migrate-0"));
    assert_eq!(waiting_reason(app(&s, "app")), Some("PodInitializing"));
    assert_eq!(phase(&s), "Pending");
    let initialized = cond(&s, "Initialized");
    assert_eq!(initialized.status, "False");
    assert_eq!(
        initialized.reason.as_deref(),
        Some("ContainersNotInitialized")
    );
    assert_eq!(
        initialized.message.as_deref(),
        Some("containers with incomplete status: [migrate]")
    );
}

#[test]
fn a_pod_whose_init_containers_completed_is_initialized() {
    let pod = with_init();
    let rt = ready_sandbox(vec![exited("migrate", 0, 0), running("app", 0)]);
    let s = status_of(&pod, &rt);
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert_eq!(
        terminated(init(&s, "migrate")).reason.as_deref(),
        Some("Completed")
    );
    assert_eq!(phase(&s), "Running");
}

#[test]

fn an_init_container_that_completed_is_reported_ready() {
    let pod = with_init();
    let rt = ready_sandbox(vec![exited("migrate", 0, 0), running("app", 0)]);
    let s = status_of(&pod, &rt);
    assert!(init(&s, "migrate").ready);
}

#[test]
fn a_failed_init_container_fails_the_pod_under_never() {
    let mut pod = with_init();
    pod.spec.as_mut().unwrap().restart_policy = Some("Never".to_owned());
    let s = status_of(&pod, &ready_sandbox(vec![exited("migrate", 0, 1)]));
    assert_eq!(phase(&s), "Failed");
    assert_eq!(terminated(init(&s, "migrate")).exit_code, 1);
}

#[test]
fn a_failed_init_container_keeps_the_pod_pending_while_it_is_restarted() {
    let mut pod = with_init();
    pod.spec.as_mut().unwrap().restart_policy = Some("OnFailure".to_owned());
    let inputs = Inputs {
        waiting: HashMap::from([(
            "migrate".to_owned(),
            ("CrashLoopBackOff".to_owned(), "back-off 10s".to_owned()),
        )]),
        ..Inputs::default()
    };
    let s = status_with(&pod, &ready_sandbox(vec![exited("migrate", 1, 1)]), &inputs);
    assert_eq!(phase(&s), "Pending");
    assert_eq!(
        waiting_reason(init(&s, "migrate")),
        Some("CrashLoopBackOff")
    );
    assert_eq!(init(&s, "migrate").restart_count, 1);
}

#[test]
fn running_containers_make_the_pod_running_and_ready() {
    let pod = simple("Always", &["app", "metrics"]);
    let rt = ready_sandbox(vec![running("app", 0), running("metrics", 0)]);
    let s = status_of(&pod, &rt);
    assert_eq!(phase(&s), "Running");
    for name in ["app", "metrics"] {
        let c = app(&s, name);
        assert!(c.ready, "{name}");
        assert_eq!(c.started, Some(true));
        assert_eq!(c.image_id, "sha256:abc");
        let started_at = serde_json::to_value(
            &c.state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at,
        )
        .unwrap();
        assert_eq!(started_at, json!(T0_TEXT));
    }
    for type_ in [
        "Ready",
        "ContainersReady",
        "Initialized",
        "PodReadyToStartContainers",
    ] {
        let c = cond(&s, type_);
        assert_eq!(c.status, "True", "{type_}");
        assert_eq!(c.reason, None, "{type_}");
        assert_eq!(c.message, None, "{type_}");
    }
}

fn with_readiness() -> Pod {
    pod(json!({
        "containers": [
            {"name": "c", "image": "nginx", "readinessProbe": {"tcpSocket": {"port": 80}}},
            {"name": "d", "image": "nginx"},
        ],
    }))
}

#[test]
fn a_readiness_probe_that_has_not_passed_keeps_the_pod_unready() {
    let pod = with_readiness();
    let rt = ready_sandbox(vec![running("c", 0), running("d", 0)]);
    let s = status_of(&pod, &rt);
    assert_eq!(phase(&s), "Running");
    assert!(!app(&s, "c").ready);
    assert!(app(&s, "d").ready);
    for type_ in ["Ready", "ContainersReady"] {
        let c = cond(&s, type_);
        assert_eq!(c.status, "False", "{type_}");
        assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            c.message.as_deref(),
            Some("containers with unready status: [c]")
        );
    }

    let inputs = Inputs {
        probes: ProbeState {
            ready: ["c-0".to_owned()].into(),
            ..ProbeState::default()
        },
        ..Inputs::default()
    };
    let s = status_with(&pod, &rt, &inputs);
    assert!(app(&s, "c").ready);
    assert_eq!(cond(&s, "Ready").status, "True");
}

#[test]
fn a_startup_probe_that_has_not_passed_keeps_the_container_unstarted_and_unready() {
    let pod = pod(json!({
        "containers": [{"name": "c", "image": "nginx", "startupProbe": {"tcpSocket": {"port": 80}}}],
    }));
    let rt = ready_sandbox(vec![running("c", 0)]);
    let s = status_of(&pod, &rt);
    assert_eq!(app(&s, "c").started, Some(false));
    assert!(!app(&s, "c").ready);
    assert_eq!(phase(&s), "Running");

    let inputs = Inputs {
        probes: ProbeState {
            started: ["c-0".to_owned()].into(),
            ..ProbeState::default()
        },
        ..Inputs::default()
    };
    let s = status_with(&pod, &rt, &inputs);
    assert_eq!(app(&s, "c").started, Some(true));
    assert!(app(&s, "c").ready);
}

#[test]
fn every_container_exited_zero_under_never_or_on_failure_means_succeeded() {
    for policy in ["Never", "OnFailure"] {
        let pod = simple(policy, &["a", "b"]);
        let rt = ready_sandbox(vec![exited("a", 0, 0), exited("b", 0, 0)]);
        let s = status_of(&pod, &rt);
        assert_eq!(phase(&s), "Succeeded", "restartPolicy {policy}");
        for type_ in ["Ready", "ContainersReady"] {
            let c = cond(&s, type_);
            assert_eq!(c.status, "False", "{type_}");
            assert_eq!(c.reason.as_deref(), Some("PodCompleted"), "{type_}");
            assert_eq!(c.message, None, "{type_}");
        }
    }
}

#[test]
fn a_non_zero_exit_under_never_fails_the_pod() {
    let pod = simple("Never", &["a", "b"]);
    let rt = ready_sandbox(vec![exited("a", 0, 0), exited("b", 0, 3)]);
    let s = status_of(&pod, &rt);
    assert_eq!(phase(&s), "Failed");
    assert_eq!(cond(&s, "Ready").status, "False");
}

#[test]

fn a_failed_pod_is_unready_with_reason_pod_failed() {
    let pod = simple("Never", &["a"]);
    let s = status_of(&pod, &ready_sandbox(vec![exited("a", 0, 3)]));
    assert_eq!(phase(&s), "Failed");
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodFailed"));
    assert_eq!(
        cond(&s, "ContainersReady").reason.as_deref(),
        Some("PodFailed")
    );
}

#[test]
fn a_pod_is_running_while_some_containers_run_and_others_exited() {
    let pod = simple("Never", &["a", "b"]);
    let rt = ready_sandbox(vec![exited("a", 0, 1), running("b", 0)]);
    assert_eq!(phase(&status_of(&pod, &rt)), "Running");
}

#[test]
fn exited_containers_under_always_keep_the_pod_running() {
    for code in [0, 1] {
        let pod = simple("Always", &["app"]);
        let s = status_of(&pod, &ready_sandbox(vec![exited("app", 0, code)]));
        assert_eq!(phase(&s), "Running", "exit code {code}");
    }
}

#[test]
fn a_failed_container_under_on_failure_keeps_the_pod_running() {
    let pod = simple("OnFailure", &["a", "b"]);
    let rt = ready_sandbox(vec![exited("a", 0, 0), exited("b", 0, 1)]);
    assert_eq!(phase(&status_of(&pod, &rt)), "Running");
}

#[test]
fn a_crash_looping_container_shows_back_off_and_its_last_termination() {
    let pod = simple("Always", &["app"]);
    let message = "back-off 40s restarting failed container=app pod=web_default(u1)";
    let inputs = Inputs {
        waiting: HashMap::from([(
            "app".to_owned(),
            ("CrashLoopBackOff".to_owned(), message.to_owned()),
        )]),
        ..Inputs::default()
    };
    let rt = ready_sandbox(vec![exited("app", 2, 1), exited("app", 3, 1)]);
    let s = status_with(&pod, &rt, &inputs);
    let c = app(&s, "app");
    let waiting = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(waiting.message.as_deref(), Some(message));
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(last.container_id.as_deref(), Some("containerd://app-3"));
    assert_eq!(c.restart_count, 3);
    assert!(!c.ready);
    assert_eq!(phase(&s), "Running");
    assert_eq!(
        cond(&s, "Ready").message.as_deref(),
        Some("containers with unready status: [app]")
    );
}

#[test]
fn a_restarted_running_container_shows_the_previous_termination() {
    let pod = simple("Always", &["app"]);
    let rt = ready_sandbox(vec![exited("app", 0, 2), running("app", 1)]);
    let s = status_of(&pod, &rt);
    let c = app(&s, "app");
    assert!(c.state.as_ref().unwrap().running.is_some());
    assert_eq!(c.restart_count, 1);
    assert_eq!(c.container_id.as_deref(), Some("containerd://app-1"));
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 2);
    assert_eq!(last.container_id.as_deref(), Some("containerd://app-0"));
}

#[test]
fn terminated_reasons_are_completed_for_zero_error_otherwise_and_oom_killed_from_the_runtime() {
    let pod = simple("Never", &["ok", "bad", "oom"]);
    let mut ok = exited("ok", 0, 0);
    ok.reason.clear();
    let mut bad = exited("bad", 0, 2);
    bad.reason.clear();
    let mut oom = exited("oom", 0, 137);
    oom.reason = "OOMKilled".to_owned();
    oom.message = "memory limit reached".to_owned();
    let s = status_of(&pod, &ready_sandbox(vec![ok, bad, oom]));

    let t = terminated(app(&s, "ok"));
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let t = terminated(app(&s, "bad"));
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
    let t = terminated(app(&s, "oom"));
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
    assert_eq!(t.message.as_deref(), Some("memory limit reached"));
    assert_eq!(t.container_id.as_deref(), Some("containerd://oom-0"));
    assert_eq!(serde_json::to_value(&t.started_at).unwrap(), json!(T0_TEXT));
    assert!(t.finished_at.is_some());
    assert_eq!(phase(&s), "Failed");
}

#[test]
fn the_pod_scheduled_condition_is_kept_from_the_old_status() {
    let old = json!({"conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-11-14T20:00:00Z"},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
    ]});
    let pod = with_status(simple("Always", &["app"]), old);
    let s = status_of(&pod, &ready_sandbox(vec![running("app", 0)]));
    let scheduled = cond(&s, "PodScheduled");
    assert_eq!(scheduled.status, "True");
    assert_eq!(transition(scheduled), json!("2023-11-14T20:00:00Z"));
    assert_eq!(
        cond(&s, "DisruptionTarget").reason.as_deref(),
        Some("EvictionByEvictionAPI")
    );
    let kinds: Vec<&str> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    for type_ in ["PodScheduled", "Initialized", "Ready", "ContainersReady"] {
        assert_eq!(
            kinds.iter().filter(|k| **k == type_).count(),
            1,
            "{type_} once in {kinds:?}"
        );
    }
}

#[test]
fn a_condition_keeps_its_transition_time_while_its_status_does_not_change() {
    let old = json!({"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T20:00:00Z"},
        {"type": "ContainersReady", "status": "False", "lastTransitionTime": "2023-11-14T20:00:00Z"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "2023-11-14T20:00:00Z"},
    ]});
    let pod = with_status(simple("Always", &["app"]), old);
    let inputs = Inputs {
        now: T0,
        ..Inputs::default()
    };
    let s = status_with(&pod, &ready_sandbox(vec![running("app", 0)]), &inputs);
    assert_eq!(transition(cond(&s, "Ready")), json!("2023-11-14T20:00:00Z"));
    assert_eq!(
        transition(cond(&s, "Initialized")),
        json!("2023-11-14T20:00:00Z")
    );
    assert_eq!(cond(&s, "ContainersReady").status, "True");
    assert_eq!(
        transition(cond(&s, "ContainersReady")),
        json!(T0_TEXT),
        "a condition that changed moves to now"
    );
    assert_eq!(
        transition(cond(&s, "PodReadyToStartContainers")),
        json!(T0_TEXT),
        "a new condition starts now"
    );
}

#[test]
fn pod_ips_and_host_ips_come_from_the_input() {
    let pod = simple("Always", &["app"]);
    let inputs = Inputs {
        pod_ips: vec!["10.42.0.7".to_owned(), "fd00:42::7".to_owned()],
        host_ips: vec!["192.168.1.10".to_owned(), "fd00:1::10".to_owned()],
        ..Inputs::default()
    };
    let s = status_with(&pod, &ready_sandbox(vec![running("app", 0)]), &inputs);
    assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.7"));
    let pod_ips: Vec<&str> = s.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
    assert_eq!(pod_ips, ["10.42.0.7", "fd00:42::7"]);
    assert_eq!(s.host_ip.as_deref(), Some("192.168.1.10"));
    let host_ips: Vec<&str> = s.host_ips.iter().flatten().map(|h| h.ip.as_str()).collect();
    assert_eq!(host_ips, ["192.168.1.10", "fd00:1::10"]);
}

#[test]
fn a_pod_without_addresses_reports_none() {
    let pod = simple("Always", &["app"]);
    let inputs = Inputs {
        pod_ips: vec![],
        ..Inputs::default()
    };
    let s = status_with(&pod, &RuntimePod::default(), &inputs);
    assert_eq!(s.pod_ip, None);
    assert_eq!(s.pod_ips, None);
    assert_eq!(s.host_ip.as_deref(), Some("192.168.1.10"));
}

#[test]
fn a_host_network_pod_takes_the_node_address_as_its_own() {
    let pod = pod(json!({"hostNetwork": true, "containers": [{"name": "app", "image": "x"}]}));
    let inputs = Inputs {
        pod_ips: vec![],
        ..Inputs::default()
    };
    let s = status_with(&pod, &ready_sandbox(vec![running("app", 0)]), &inputs);
    assert_eq!(s.pod_ip.as_deref(), Some("192.168.1.10"));
    let pod_ips: Vec<&str> = s.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
    assert_eq!(pod_ips, ["192.168.1.10"]);
}

#[test]
fn the_start_time_is_kept_from_the_old_status_or_set_to_now() {
    let pod = simple("Always", &["app"]);
    let inputs = Inputs {
        now: T0,
        ..Inputs::default()
    };
    let s = status_with(&pod, &RuntimePod::default(), &inputs);
    assert_eq!(serde_json::to_value(&s.start_time).unwrap(), json!(T0_TEXT));

    let pod = with_status(pod, json!({"startTime": "2023-11-14T20:00:00Z"}));
    let s = status_with(&pod, &RuntimePod::default(), &inputs);
    assert_eq!(
        serde_json::to_value(&s.start_time).unwrap(),
        json!("2023-11-14T20:00:00Z")
    );
}

#[test]
fn a_pod_failed_by_the_kubelet_reports_its_reason_and_message() {
    let pod = simple("Always", &["app"]);
    let inputs = Inputs {
        failed: Some((
            "DeadlineExceeded".to_owned(),
            "Pod was active on the node longer than the specified deadline".to_owned(),
        )),
        ..Inputs::default()
    };
    let s = status_with(&pod, &ready_sandbox(vec![running("app", 0)]), &inputs);
    assert_eq!(phase(&s), "Failed");
    assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        s.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    assert_eq!(cond(&s, "Ready").status, "False");
}

#[test]

fn a_pod_already_reported_terminal_keeps_its_phase() {
    let pod = with_status(simple("Always", &["app"]), json!({"phase": "Failed"}));
    let s = status_of(&pod, &ready_sandbox(vec![exited("app", 0, 137)]));
    assert_eq!(phase(&s), "Failed");

    let pod = with_status(simple("OnFailure", &["app"]), json!({"phase": "Succeeded"}));
    let s = status_of(&pod, &ready_sandbox(vec![exited("app", 0, 137)]));
    assert_eq!(phase(&s), "Succeeded");
}

fn with_sidecar() -> Pod {
    pod(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }))
}

#[test]
fn a_running_sidecar_initializes_the_pod_and_counts_for_readiness() {
    let pod = with_sidecar();
    let s = status_of(&pod, &ready_sandbox(vec![running("proxy", 0)]));
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert!(waiting_reason(app(&s, "app")).is_some());
    assert_eq!(phase(&s), "Pending");

    let s = status_of(
        &pod,
        &ready_sandbox(vec![running("proxy", 0), running("app", 0)]),
    );
    assert_eq!(phase(&s), "Running");
    assert!(init(&s, "proxy").ready);
    assert_eq!(cond(&s, "Ready").status, "True");
}

#[test]

fn a_stopped_sidecar_does_not_count_against_a_pod_whose_app_containers_succeeded() {
    let pod = with_sidecar();
    let rt = ready_sandbox(vec![exited("proxy", 0, 137), exited("app", 0, 0)]);
    let s = status_of(&pod, &rt);
    assert_eq!(phase(&s), "Succeeded");
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
}

#[test]

fn app_containers_of_a_pod_with_init_containers_wait_in_pod_initializing_until_they_exist() {
    let pod = with_sidecar();
    let s = status_of(&pod, &ready_sandbox(vec![running("proxy", 0)]));
    assert_eq!(waiting_reason(app(&s, "app")), Some("PodInitializing"));
}

#[test]

fn a_crash_looping_sidecar_after_initialization_keeps_the_pod_running_and_initialized() {
    let mut pod = with_sidecar();
    pod.spec.as_mut().unwrap().restart_policy = Some("Always".to_owned());
    let inputs = Inputs {
        waiting: HashMap::from([(
            "proxy".to_owned(),
            ("CrashLoopBackOff".to_owned(), "back-off 10s".to_owned()),
        )]),
        ..Inputs::default()
    };
    let rt = ready_sandbox(vec![exited("proxy", 1, 1), running("app", 0)]);
    let s = status_with(&pod, &rt, &inputs);
    assert_eq!(phase(&s), "Running");
    assert_eq!(cond(&s, "Initialized").status, "True");
    assert_eq!(cond(&s, "Ready").status, "False");
}

#[test]

fn unready_sidecars_are_listed_before_app_containers() {
    let pod = pod(json!({
        "initContainers": [{
            "name": "proxy", "image": "envoy", "restartPolicy": "Always",
            "readinessProbe": {"tcpSocket": {"port": 15021}},
        }],
        "containers": [{"name": "app", "image": "nginx", "readinessProbe": {"tcpSocket": {"port": 80}}}],
    }));
    let s = status_of(
        &pod,
        &ready_sandbox(vec![running("proxy", 0), running("app", 0)]),
    );
    assert_eq!(
        cond(&s, "ContainersReady").message.as_deref(),
        Some("containers with unready status: [proxy app]")
    );
}

fn with_gate(old_conditions: Value) -> Pod {
    let pod = pod(json!({
        "readinessGates": [{"conditionType": "example.com/lb"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    with_status(pod, json!({"conditions": old_conditions}))
}

#[test]
fn a_readiness_gate_that_is_true_lets_the_pod_be_ready() {
    let pod = with_gate(json!([{"type": "example.com/lb", "status": "True"}]));
    let s = status_of(&pod, &ready_sandbox(vec![running("app", 0)]));
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(
        cond(&s, "example.com/lb").status,
        "True",
        "the gate is kept"
    );
}

#[test]
fn a_readiness_gate_that_is_not_true_holds_ready_but_not_containers_ready() {
    let pod = with_gate(json!([{"type": "example.com/lb", "status": "False"}]));
    let s = status_of(&pod, &ready_sandbox(vec![running("app", 0)]));
    assert_eq!(cond(&s, "ContainersReady").status, "True");
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
}

#[test]

fn a_readiness_gate_message_names_the_gate() {
    let pod = with_gate(json!([]));
    let s = status_of(&pod, &ready_sandbox(vec![running("app", 0)]));
    assert_eq!(
        cond(&s, "Ready").message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );

    let pod = with_gate(json!([{"type": "example.com/lb", "status": "False"}]));
    let s = status_of(&pod, &ready_sandbox(vec![running("app", 0)]));
    assert_eq!(
        cond(&s, "Ready").message.as_deref(),
        Some("the status of pod readiness gate \"example.com/lb\" is not \"True\", but False")
    );
}
