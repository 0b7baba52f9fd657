//! The pod worker: one task per pod, serialized, that acts on the sync plan (sandbox, image
//! pulls, containers, kills), reports status when it changed, and finishes deletions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container as ContainerSpec, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};

use crate::env::Sources;
use crate::kubelet::{PodEntry, Shared, runtime_pod};
use crate::observed::{RuntimePod, State};
use crate::podconfig::{self, meta};
use crate::probe::{self, Counter, Outcome, ProbeKind, Target};
use crate::status::{StatusInput, pod_status};
use crate::sync::{self, Action, Kind, ProbeState};

/// How often an agent's running pods are synced even when nothing happens (volume contents,
/// deadlines): more often than upstream's default minute, so that volume contents follow
/// their sources within seconds.
pub const RESYNC: Duration = Duration::from_secs(10);

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs the worker of one pod until the pod is gone from the API and from the runtime.
pub async fn run(shared: Arc<Shared>, uid: String, entry: Arc<PodEntry>) {
    loop {
        let wait = match sync_pod(&shared, &uid, &entry).await {
            Ok(Some(wait)) => wait,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%uid, error = %e, "pod sync");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            () = entry.notify.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    for (_, task) in entry.probers.lock().await.drain() {
        task.abort();
    }
    shared.pods.lock().await.remove(&uid);
    shared.sources.unregister_pod(&uid);
    shared
        .backoff
        .lock()
        .await
        .forget_prefix(&format!("{uid}/"));
}

/// One sync; `None` once the pod is gone for good.
async fn sync_pod(
    shared: &Arc<Shared>,
    uid: &str,
    entry: &Arc<PodEntry>,
) -> anyhow::Result<Option<Duration>> {
    let pod = entry.pod.lock().await.clone();
    let mut runtime = runtime_pod(shared, uid).await?;
    if entry.removed.load(Ordering::SeqCst) {
        let grace = grace_period(&pod);
        remove_runtime_pod(shared, &runtime, grace).await;
        shared.volumes.teardown(uid).await;
        if shared.config.pod_cgroups {
            crate::cgroups::remove(&shared.settings, uid);
        }
        return Ok(None);
    }
    // Admission: a pod new to the node (nothing of it runs yet) is refused under pressure.
    if !entry.admitted.swap(true, Ordering::SeqCst)
        && runtime.sandboxes.is_empty()
        && runtime.containers.is_empty()
        && !sync::pod_is_finished(&pod)
        && let Err(message) = crate::eviction::admit(&pod, &shared.eviction.conditions())
    {
        shared
            .recorder
            .pod(&pod, None, "Warning", "Evicted", &message)
            .await;
        *entry.failed.lock().await =
            Some(("Evicted".to_owned(), format!("Pod was rejected: {message}")));
    }
    // activeDeadlineSeconds: the pod fails once it has been active that long.
    if let Some(deadline) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_nanosecond() as i64);
        if let Some(started) = started
            && now_ns() - started > deadline.saturating_mul(1_000_000_000)
            && !sync::pod_is_finished(&pod)
        {
            let mut failed = entry.failed.lock().await;
            if failed.is_none() {
                *failed = Some((
                    "DeadlineExceeded".to_owned(),
                    "Pod was active on the node longer than the specified deadline".to_string(),
                ));
                shared
                    .recorder
                    .pod(
                        &pod,
                        None,
                        "Normal",
                        "DeadlineExceeded",
                        "Pod was active on the node longer than the specified deadline",
                    )
                    .await;
            }
        }
    }
    let failed = entry.failed.lock().await.clone();
    let probes = entry.probes.lock().await.clone();
    let plan = if failed.is_some() {
        let mut p = sync::Plan::default();
        if runtime.containers.iter().any(|c| c.state == State::Running) {
            p.actions.push(Action::KillPod);
        }
        p
    } else {
        let mut backoff = shared.backoff.lock().await;
        sync::plan(&pod, &runtime, &probes, &mut backoff, now_ns())
    };
    let acted = !plan.actions.is_empty();
    let mut requeue = plan.requeue;
    for action in &plan.actions {
        match action {
            Action::KillPod => {
                // Evicted pods get one second, as upstream's hard evictions.
                let grace = match &failed {
                    Some((reason, _)) if reason == "Evicted" => grace_period(&pod).min(1),
                    _ => grace_period(&pod),
                };
                kill_pod(shared, &pod, &runtime, grace).await;
            }
            Action::CreateSandbox { attempt } => {
                if let Err(message) = create_sandbox(shared, entry, &pod, *attempt).await {
                    shared
                        .recorder
                        .pod(&pod, None, "Warning", "FailedCreatePodSandBox", &message)
                        .await;
                    requeue = Some(Duration::from_secs(2));
                    break;
                }
            }
            Action::StartContainer {
                kind,
                index,
                attempt,
            } => {
                let spec = pod.spec.clone().unwrap_or_default();
                let c = match kind {
                    Kind::Init => spec
                        .init_containers
                        .as_ref()
                        .and_then(|l| l.get(*index))
                        .cloned(),
                    Kind::App => spec.containers.get(*index).cloned(),
                    Kind::Ephemeral => spec
                        .ephemeral_containers
                        .as_ref()
                        .and_then(|l| l.get(*index))
                        .and_then(sync::ephemeral_as_container),
                };
                if let Some(c) = &c
                    && let Err(wait) =
                        start_container(shared, entry, &pod, &runtime, c, *kind, *attempt).await
                {
                    requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
                }
            }
            Action::KillContainer { id, name, reason } => {
                let field = field_path(&pod, name);
                if !reason.contains("never started") {
                    shared
                        .recorder
                        .pod(
                            &pod,
                            field.clone(),
                            "Normal",
                            "Killing",
                            &reason.to_string(),
                        )
                        .await;
                }
                let c = container_spec(&pod, name);
                run_pre_stop(shared, c.as_ref(), id, grace_period(&pod)).await;
                if let Err(e) = shared.runtime.stop_container(id, grace_period(&pod)).await {
                    tracing::warn!(container = %id, error = %e, "stopping a container");
                }
                entry.probes.lock().await.restart.remove(id);
            }
        }
    }
    if acted {
        runtime = runtime_pod(shared, uid).await?;
    }
    manage_probers(shared, entry, &pod, &runtime).await;
    let mut waiting = entry.waiting.lock().await.clone();
    waiting.extend(plan.waiting.clone());
    // A crash-looping container's back-off is an event too, as upstream reports it.
    for (name, (reason, _)) in &plan.waiting {
        if reason == "CrashLoopBackOff" {
            let message = format!(
                "Back-off restarting failed container {name} in pod {}_{}({})",
                meta(&pod).0,
                meta(&pod).1,
                meta(&pod).2
            );
            shared
                .recorder
                .pod(&pod, field_path(&pod, name), "Warning", "BackOff", &message)
                .await;
        }
    }
    let pod_ips = match runtime.sandbox().filter(|s| s.ready) {
        Some(s) => sandbox_ips(shared, &s.id).await,
        None => Vec::new(),
    };
    refresh_volumes(shared, entry, &pod, &runtime, &pod_ips).await;
    let probes = entry.probes.lock().await.clone();
    fill_termination_messages(shared, &pod, &mut runtime);
    let input = StatusInput {
        waiting: &waiting,
        probes: &probes,
        pod_ips: &pod_ips,
        host_ips: &shared.node_ips,
        now: now_ns(),
        failed: failed.clone(),
    };
    let status = pod_status(&pod, &runtime, &input);
    write_status(shared, entry, &pod, &status).await;
    if !acted {
        collect_garbage(shared, &runtime).await;
    }

    // A pod being deleted whose containers all stopped: finish the deletion.
    if pod.metadata.deletion_timestamp.is_some()
        && !runtime.containers.iter().any(|c| c.state == State::Running)
    {
        kill_pod(shared, &pod, &runtime, 0).await;
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), meta(&pod).1);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(meta(&pod).0, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Some(Duration::from_secs(1)));
    }
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let default_wait = if phase == "Succeeded" || phase == "Failed" {
        Duration::from_secs(60)
    } else {
        shared.config.sync_frequency
    };
    Ok(Some(requeue.unwrap_or(default_wait)))
}

/// Brings configMap, secret, downwardAPI and projected volumes of a running pod up to date
/// (at most every sync period), swapping their contents atomically when they changed.
async fn refresh_volumes(
    shared: &Shared,
    entry: &PodEntry,
    pod: &Pod,
    runtime: &RuntimePod,
    pod_ips: &[String],
) {
    if !runtime.sandbox().is_some_and(|s| s.ready) || sync::pod_is_finished(pod) {
        return;
    }
    let refreshable = pod.spec.as_ref().is_some_and(|s| {
        s.volumes.iter().flatten().any(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        })
    });
    let due = entry
        .volumes_synced
        .lock()
        .await
        .is_none_or(|t| t.elapsed() >= shared.config.sync_frequency);
    if !refreshable || !due {
        return;
    }
    // From the watches of what the pod refers to: the refresh sends the API server nothing.
    let sources = match fetch_sources(shared, pod, pod_ips.to_vec(), false).await {
        Ok(sources) => sources,
        Err(message) => {
            tracing::debug!(pod = meta(pod).0, %message, "refreshing volumes");
            return;
        }
    };
    match shared.volumes.setup(pod, &sources).await {
        Ok(v) => *entry.volumes.lock().await = v,
        Err(message) => tracing::debug!(pod = meta(pod).0, %message, "refreshing volumes"),
    }
    *entry.volumes_synced.lock().await = Some(std::time::Instant::now());
}

fn grace_period(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0)
}

fn container_spec(pod: &Pod, name: &str) -> Option<ContainerSpec> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .cloned()
        .or_else(|| {
            spec.ephemeral_containers
                .iter()
                .flatten()
                .find(|e| e.name == name)
                .and_then(sync::ephemeral_as_container)
        })
}

fn field_path(pod: &Pod, name: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if spec.containers.iter().any(|c| c.name == name) {
        Some(format!("spec.containers{{{name}}}"))
    } else if spec
        .ephemeral_containers
        .iter()
        .flatten()
        .any(|c| c.name == name)
    {
        Some(format!("spec.ephemeralContainers{{{name}}}"))
    } else {
        Some(format!("spec.initContainers{{{name}}}"))
    }
}

async fn sandbox_ips(shared: &Shared, id: &str) -> Vec<String> {
    match shared.runtime.pod_sandbox_status(id).await {
        Ok(s) => s
            .network
            .map(|n| {
                let mut ips = vec![n.ip];
                ips.extend(n.additional_ips.into_iter().map(|i| i.ip));
                ips.retain(|ip| !ip.is_empty());
                ips
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn pod_files(shared: &Shared, pod: &Pod) -> PathBuf {
    podconfig::pod_dir(&shared.pods_dir, pod)
}

fn termination_file(shared: &Shared, pod: &Pod, name: &str, attempt: u32) -> PathBuf {
    pod_files(shared, pod)
        .join("containers")
        .join(name)
        .join(attempt.to_string())
}

/// Reads exited containers' termination messages (the file, or the log's tail with
/// FallbackToLogsOnError), as upstream's kubelet does.
fn fill_termination_messages(shared: &Shared, pod: &Pod, runtime: &mut RuntimePod) {
    for c in &mut runtime.containers {
        if c.state != State::Exited || !c.message.is_empty() {
            continue;
        }
        let path = termination_file(shared, pod, &c.name, c.attempt);
        let mut message = shared
            .files
            .read(&path)
            .map(|mut b| {
                b.truncate(4096);
                String::from_utf8_lossy(&b).into_owned()
            })
            .unwrap_or_default();
        let policy = container_spec(pod, &c.name).and_then(|s| s.termination_message_policy);
        if message.is_empty()
            && c.exit_code != 0
            && policy.as_deref() == Some("FallbackToLogsOnError")
        {
            let log = podconfig::log_directory(&shared.settings, pod)
                .join(&c.name)
                .join(format!("{}.log", c.attempt));
            if let Ok(text) = std::fs::read_to_string(log) {
                let lines: Vec<String> = crate::logs::parse(&text)
                    .map(|l| l.content.to_owned())
                    .collect();
                let tail = lines[lines.len().saturating_sub(80)..].join("\n");
                let start = tail.len().saturating_sub(2048);
                message = tail[tail.ceil_char_boundary(start)..].to_owned();
            }
        }
        c.message = message;
    }
}

/// What a pod's volumes and environment are made from: the ConfigMaps and Secrets it names
/// (from their watches; an absent one is left out, for `optional` and "not found" to decide)
/// and, with `services` (only a container's environment needs them), its Service variables.
/// An object whose watch has not listed yet, or Services not yet listed, are an error for
/// this sync.
async fn fetch_sources(
    shared: &Shared,
    pod: &Pod,
    pod_ips: Vec<String>,
    services: bool,
) -> Result<Sources, String> {
    let ns = meta(pod).1;
    let (cms, secrets) = crate::env::referenced(pod);
    let mut sources = Sources {
        node_allocatable: shared.allocatable,
        host_ips: shared.node_ips.clone(),
        pod_ips,
        ..Default::default()
    };
    for name in cms {
        let found = shared.sources.config_maps.get(ns, &name).await;
        if let Some(cm) = found.map_err(|e| e.to_string())? {
            sources.config_maps.insert(name, cm);
        }
    }
    for name in secrets {
        let found = shared.sources.secrets.get(ns, &name).await;
        if let Some(secret) = found.map_err(|e| e.to_string())? {
            sources.secrets.insert(name, secret);
        }
    }
    if services {
        let links = pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false);
        sources.service_env = shared
            .sources
            .services
            .env(ns, links)
            .map_err(|e| e.to_string())?;
    }
    Ok(sources)
}

async fn create_sandbox(
    shared: &Arc<Shared>,
    entry: &PodEntry,
    pod: &Pod,
    attempt: u32,
) -> Result<(), String> {
    let volumes = match fetch_sources(shared, pod, Vec::new(), false).await {
        Ok(sources) => shared.volumes.setup(pod, &sources).await,
        Err(message) => Err(message),
    };
    let volumes = match volumes {
        Ok(v) => v,
        Err(message) => {
            shared
                .recorder
                .pod(pod, None, "Warning", "FailedMount", &message)
                .await;
            return Err(message);
        }
    };
    *entry.volumes.lock().await = volumes;
    *entry.volumes_synced.lock().await = Some(std::time::Instant::now());
    if shared.config.pod_cgroups
        && let Err(e) = crate::cgroups::apply(&shared.settings, pod)
    {
        tracing::warn!(pod = %meta(pod).0, error = %e, "setting the pod's cgroup limits");
    }
    let config = podconfig::sandbox_config(&shared.settings, pod, attempt);
    shared
        .files
        .create_dir_all(Path::new(&config.log_directory))
        .map_err(|e| format!("creating the log directory: {e}"))?;
    let handler = pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.clone())
        .unwrap_or_default();
    let handler = runtime_handler(shared, &handler).await;
    shared
        .runtime
        .run_pod_sandbox(config, &handler)
        .await
        .map(|_| ())
        .map_err(|e| format!("Failed to create pod sandbox: {}", e.message))
}

async fn runtime_handler(shared: &Shared, class: &str) -> String {
    if class.is_empty() {
        return String::new();
    }
    let api: Api<k8s_openapi::api::node::v1::RuntimeClass> = Api::all(shared.client.clone());
    match api.get_opt(class).await {
        Ok(Some(rc)) => rc.handler,
        _ => String::new(),
    }
}

fn etc_hosts(pod: &Pod, ips: &[String], domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let (name, ns, _) = meta(pod);
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.to_owned());
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        match &spec.subdomain {
            Some(sub) if !sub.is_empty() => {
                text.push_str(&format!(
                    "{ip}\t{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}\n"
                ));
            }
            _ => text.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        text.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            text.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    text
}

/// Pulls (per the pull policy), creates and starts a container. On failure the container's
/// waiting reason is set and the error is the time to wait before trying again.
#[allow(clippy::too_many_arguments)]
async fn start_container(
    shared: &Arc<Shared>,
    entry: &Arc<PodEntry>,
    pod: &Pod,
    runtime: &RuntimePod,
    c: &ContainerSpec,
    kind: Kind,
    attempt: u32,
) -> Result<(), Duration> {
    let Some(sandbox) = runtime.sandbox().cloned() else {
        return Err(Duration::from_secs(1));
    };
    let field = field_path(pod, &c.name);
    let set_waiting = |reason: &str, message: String| {
        let (entry, name, reason) = (entry.clone(), c.name.clone(), reason.to_owned());
        async move {
            entry.waiting.lock().await.insert(name, (reason, message));
        }
    };
    let image = c.image.clone().unwrap_or_default();
    let image_key = format!("{}/image/{}", meta(pod).2, c.name);
    // Image pull back-off: after a failed pull, wait before the next.
    {
        let backoff = shared.backoff.lock().await;
        let failed_at = entry
            .waiting
            .lock()
            .await
            .get(&c.name)
            .is_some_and(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff");
        if failed_at
            && let Some(wait) = backoff.remaining(
                &image_key,
                last_pull_failure(entry, &c.name).await,
                now_ns(),
            )
        {
            drop(backoff);
            set_waiting(
                "ImagePullBackOff",
                format!("Back-off pulling image {image:?}"),
            )
            .await;
            shared
                .recorder
                .pod(
                    pod,
                    field.clone(),
                    "Normal",
                    "BackOff",
                    &format!("Back-off pulling image {image:?}"),
                )
                .await;
            return Err(wait);
        }
    }
    let sandbox_config = podconfig::sandbox_config(&shared.settings, pod, sandbox.attempt);
    let present = shared.runtime.image_status(&image).await.ok().flatten();
    let policy = c
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| "IfNotPresent".to_owned());
    let image_ref = match crate::images::should_pull(&policy, present.is_some()) {
        Err(reason) => {
            let message =
                format!("Container image {image:?} is not present with pull policy of Never");
            shared
                .recorder
                .pod(pod, field.clone(), "Warning", "ErrImageNeverPull", &message)
                .await;
            set_waiting(&reason, message).await;
            return Err(Duration::from_secs(10));
        }
        Ok(false) => {
            shared
                .recorder
                .pod(
                    pod,
                    field.clone(),
                    "Normal",
                    "Pulled",
                    &format!("Container image {image:?} already present on machine"),
                )
                .await;
            present.map(|i| i.id).unwrap_or_else(|| image.clone())
        }
        Ok(true) => {
            shared
                .recorder
                .pod(
                    pod,
                    field.clone(),
                    "Normal",
                    "Pulling",
                    &format!("Pulling image {image:?}"),
                )
                .await;
            let started = std::time::Instant::now();
            // Pulls go ahead with the secrets that can be read, as upstream's.
            let secrets = match fetch_sources(shared, pod, Vec::new(), false).await {
                Ok(sources) => sources.secrets,
                Err(message) => {
                    tracing::warn!(pod = meta(pod).0, %message, "reading image pull secrets");
                    HashMap::new()
                }
            };
            let pull_secrets: Vec<&Secret> = pod
                .spec
                .as_ref()
                .and_then(|s| s.image_pull_secrets.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|r| secrets.get(&r.name))
                .collect();
            // The pod's pull secrets first, then the node's registry configuration.
            let auth = crate::images::auth_for(&image, &pull_secrets).or_else(|| {
                shared
                    .config
                    .registries
                    .auth_for_host(crate::images::registry_host(&image))
            });
            match shared
                .runtime
                .pull_image(&image, auth, Some(sandbox_config.clone()))
                .await
            {
                Ok(reference) => {
                    let took = started.elapsed().as_secs_f64();
                    let size = shared
                        .runtime
                        .image_status(&reference)
                        .await
                        .ok()
                        .flatten()
                        .map_or(0, |i| i.size);
                    shared
                        .recorder
                        .pod(pod, field.clone(), "Normal", "Pulled", &format!("Successfully pulled image {image:?} in {took:.3}s ({took:.3}s including waiting). Image size: {size} bytes."))
                        .await;
                    entry.waiting.lock().await.remove(&c.name);
                    reference
                }
                Err(e) => {
                    let message = format!("Failed to pull image {image:?}: {}", e.message);
                    shared
                        .recorder
                        .pod(pod, field.clone(), "Warning", "Failed", &message)
                        .await;
                    shared
                        .recorder
                        .pod(
                            pod,
                            field.clone(),
                            "Warning",
                            "Failed",
                            "Error: ErrImagePull",
                        )
                        .await;
                    set_waiting("ErrImagePull", message).await;
                    let now = now_ns();
                    shared.backoff.lock().await.next(&image_key, now);
                    entry.pull_failures_insert(&c.name, now).await;
                    return Err(Duration::from_secs(1));
                }
            }
        }
    };
    // A container that cannot be configured or started waits with the reason, and an event
    // says why.
    let config_error = async |reason: &str, message: String| {
        shared
            .recorder
            .pod(
                pod,
                field.clone(),
                "Warning",
                "Failed",
                &format!("Error: {message}"),
            )
            .await;
        set_waiting(reason, message).await;
        Duration::from_secs(5)
    };
    let pod_ips = sandbox_ips(shared, &sandbox.id).await;
    let sources = match fetch_sources(shared, pod, pod_ips.clone(), true).await {
        Ok(sources) => sources,
        Err(message) => return Err(config_error("CreateContainerConfigError", message).await),
    };
    let envs = match crate::env::resolve(pod, c, &sources) {
        Ok(e) => e,
        Err(message) => return Err(config_error("CreateContainerConfigError", message).await),
    };
    // Volumes are refreshed before each start (configMap and secret contents may have moved).
    match shared.volumes.setup(pod, &sources).await {
        Ok(v) => *entry.volumes.lock().await = v,
        Err(message) => {
            shared
                .recorder
                .pod(pod, None, "Warning", "FailedMount", &message)
                .await;
            return Err(Duration::from_secs(5));
        }
    }
    let volumes = entry.volumes.lock().await.clone();
    let files = pod_files(shared, pod);
    let hosts_path = files.join("etc-hosts");
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let hosts = if host_network {
        None
    } else {
        let hosts = etc_hosts(pod, &pod_ips, &shared.settings.cluster_domain);
        let _ = shared.files.write(&hosts_path, hosts.as_bytes(), 0o644);
        Some(hosts_path.as_path())
    };
    let term = termination_file(shared, pod, &c.name, attempt);
    // Writable by any user the container runs as.
    let _ = shared.files.write(&term, b"", 0o666);
    let mounts = match crate::volumes::container_mounts(c, &volumes, hosts, Some(&term)) {
        Ok(m) => m,
        Err(message) => return Err(config_error("CreateContainerConfigError", message).await),
    };
    if let Some(message) = non_root_violation(shared, pod, c, &image_ref).await {
        return Err(config_error("CreateContainerConfigError", message).await);
    }
    let mut config =
        podconfig::container_config(&shared.settings, pod, c, attempt, &image_ref, envs, &mounts);
    // An ephemeral container with a target shares that container's process namespace.
    if kind == Kind::Ephemeral {
        let target = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .and_then(|l| l.iter().find(|e| e.name == c.name))
            .and_then(|e| e.target_container_name.clone());
        if let Some(target) = target.and_then(|t| runtime.current(&t).map(|c| c.id.clone()))
            && let Some(ns) = config
                .linux
                .as_mut()
                .and_then(|l| l.security_context.as_mut())
                .and_then(|s| s.namespace_options.as_mut())
        {
            ns.pid = crate::cri::v1::NamespaceMode::Target as i32;
            ns.target_id = target;
        }
    }
    let id = match shared
        .runtime
        .create_container(&sandbox.id, config, sandbox_config)
        .await
    {
        Ok(id) => id,
        Err(e) => return Err(config_error("CreateContainerError", e.message).await),
    };
    shared
        .recorder
        .pod(
            pod,
            field.clone(),
            "Normal",
            "Created",
            &format!("Created container: {}", c.name),
        )
        .await;
    if let Err(e) = shared.runtime.start_container(&id).await {
        return Err(config_error("RunContainerError", e.message).await);
    }
    entry.waiting.lock().await.remove(&c.name);
    shared
        .recorder
        .pod(
            pod,
            field.clone(),
            "Normal",
            "Started",
            &format!("Started container {}", c.name),
        )
        .await;
    if let Some(exec) = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
        .and_then(|h| h.exec.as_ref())
    {
        let cmd = exec.command.clone().unwrap_or_default();
        match shared.runtime.exec_sync(&id, cmd, 30).await {
            Ok(r) if r.exit_code == 0 => {}
            other => {
                let detail = match other {
                    Ok(r) => format!(
                        "command exited with {}: {}",
                        r.exit_code,
                        String::from_utf8_lossy(&r.stderr)
                    ),
                    Err(e) => e.message,
                };
                shared
                    .recorder
                    .pod(
                        pod,
                        field.clone(),
                        "Warning",
                        "FailedPostStartHook",
                        &format!("PostStartHook failed: {detail}"),
                    )
                    .await;
                let _ = shared.runtime.stop_container(&id, grace_period(pod)).await;
            }
        }
    }
    Ok(())
}

impl PodEntry {
    async fn pull_failures_insert(&self, name: &str, at: i64) {
        self.waiting
            .lock()
            .await
            .entry(format!("\0pull-failed/{name}"))
            .or_insert_with(|| (String::new(), String::new()))
            .0 = at.to_string();
    }
}

/// runAsNonRoot (the container's setting over the pod's): the user the container runs as,
/// given by runAsUser or else by the image, must be known and not root. Upstream's messages.
async fn non_root_violation(
    shared: &Shared,
    pod: &Pod,
    c: &ContainerSpec,
    image_ref: &str,
) -> Option<String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        return None;
    }
    let (name, ns, uid) = meta(pod);
    let who = format!("(pod: \"{name}_{ns}({uid})\", container: {})", c.name);
    let run_as = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user));
    if let Some(user) = run_as {
        return (user == 0).then(|| format!("container's runAsUser breaks non-root policy {who}"));
    }
    let image = shared.runtime.image_status(image_ref).await.ok().flatten();
    match image
        .as_ref()
        .map(|i| (i.uid.as_ref().map(|u| u.value), i.username.as_str()))
    {
        Some((Some(0), _)) | None | Some((None, "")) => Some(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
        Some((None, user)) => Some(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root {who}"
        )),
        Some((Some(_), _)) => None,
    }
}

async fn last_pull_failure(entry: &PodEntry, name: &str) -> i64 {
    entry
        .waiting
        .lock()
        .await
        .get(&format!("\0pull-failed/{name}"))
        .and_then(|(at, _)| at.parse().ok())
        .unwrap_or(0)
}

async fn run_pre_stop(shared: &Shared, c: Option<&ContainerSpec>, id: &str, grace: i64) {
    let Some(hook) = c
        .and_then(|c| c.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.as_ref())
    else {
        return;
    };
    if let Some(exec) = &hook.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let _ = tokio::time::timeout(
            Duration::from_secs(grace.max(1) as u64),
            shared.runtime.exec_sync(id, cmd, grace.max(1)),
        )
        .await;
    } else if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(
            sleep.seconds.clamp(0, grace.max(0)) as u64
        ))
        .await;
    }
}

/// Stops every running container of the pod (preStop hooks first, in parallel, each within the
/// grace period), then its sandboxes.
async fn kill_pod(shared: &Arc<Shared>, pod: &Pod, runtime: &RuntimePod, grace: i64) {
    let running: Vec<_> = runtime
        .containers
        .iter()
        .filter(|c| c.state == State::Running || c.state == State::Created)
        .cloned()
        .collect();
    let tasks = running.into_iter().map(|c| {
        let shared = shared.clone();
        let pod = pod.clone();
        async move {
            let spec = container_spec(&pod, &c.name);
            if grace > 0 {
                shared
                    .recorder
                    .pod(
                        &pod,
                        field_path(&pod, &c.name),
                        "Normal",
                        "Killing",
                        &format!("Stopping container {}", c.name),
                    )
                    .await;
                run_pre_stop(&shared, spec.as_ref(), &c.id, grace).await;
            }
            if let Err(e) = shared.runtime.stop_container(&c.id, grace).await {
                tracing::warn!(container = %c.id, error = %e, "stopping a container");
            }
        }
    });
    futures::future::join_all(tasks).await;
    for s in runtime.sandboxes.iter().filter(|s| s.ready) {
        if let Err(e) = shared.runtime.stop_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, error = %e, "stopping a sandbox");
        }
    }
}

/// Removes dead containers beyond the newest two instances of each container (the current and
/// the previous one, for `kubectl logs --previous`), and stopped sandboxes that no longer hold
/// any container kept (upstream's container garbage collection, MaxPerPodContainer 1).
async fn collect_garbage(shared: &Shared, runtime: &RuntimePod) {
    let mut kept = std::collections::HashSet::new();
    let mut names: Vec<&str> = runtime.containers.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        for (i, c) in runtime.instances(name).enumerate() {
            if i < 2 || c.state != State::Exited {
                kept.insert(c.id.clone());
            } else if let Err(e) = shared.runtime.remove_container(&c.id).await {
                tracing::debug!(container = %c.id, error = %e, "removing a dead container");
            }
        }
    }
    let newest = runtime.sandbox().map(|s| s.id.clone());
    for s in &runtime.sandboxes {
        let holds_kept = runtime
            .containers
            .iter()
            .any(|c| c.sandbox_id == s.id && kept.contains(&c.id));
        if Some(&s.id) != newest.as_ref()
            && !s.ready
            && !holds_kept
            && let Err(e) = shared.runtime.remove_pod_sandbox(&s.id).await
        {
            tracing::debug!(sandbox = %s.id, error = %e, "removing an old sandbox");
        }
    }
}

/// Stops and removes everything the runtime holds for a pod.
pub async fn remove_runtime_pod(shared: &Shared, runtime: &RuntimePod, grace: i64) {
    let stops = runtime
        .containers
        .iter()
        .filter(|c| c.state == State::Running || c.state == State::Created)
        .map(|c| shared.runtime.stop_container(&c.id, grace));
    futures::future::join_all(stops).await;
    for s in &runtime.sandboxes {
        let _ = shared.runtime.stop_pod_sandbox(&s.id).await;
        if let Err(e) = shared.runtime.remove_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, error = %e, "removing a sandbox");
        }
    }
    for c in &runtime.containers {
        let _ = shared.runtime.remove_container(&c.id).await;
    }
}

/// Keeps one prober task per probe of each running container; stops the others.
async fn manage_probers(
    shared: &Arc<Shared>,
    entry: &Arc<PodEntry>,
    pod: &Pod,
    runtime: &RuntimePod,
) {
    let mut probers = entry.probers.lock().await;
    let running: HashMap<String, String> = runtime
        .sandbox()
        .map(|s| {
            runtime
                .containers
                .iter()
                .filter(|c| c.state == State::Running && c.sandbox_id == s.id)
                .map(|c| (c.id.clone(), c.name.clone()))
                .collect()
        })
        .unwrap_or_default();
    probers.retain(|(id, _), task| {
        let keep = running.contains_key(id);
        if !keep {
            task.abort();
        }
        keep
    });
    {
        let mut state = entry.probes.lock().await;
        let live = |id: &String| running.contains_key(id);
        state.ready.retain(live);
        state.started.retain(live);
        state.restart.retain(live);
    }
    let pod_ip = match runtime.sandbox() {
        Some(s) if pod.spec.as_ref().and_then(|s| s.host_network) != Some(true) => {
            sandbox_ips(shared, &s.id)
                .await
                .into_iter()
                .next()
                .unwrap_or_default()
        }
        _ => shared.node_ips.first().cloned().unwrap_or_default(),
    };
    for (id, name) in running {
        let Some(c) = container_spec(pod, &name) else {
            continue;
        };
        for (kind, probe) in [
            (ProbeKind::Startup, c.startup_probe.clone()),
            (ProbeKind::Liveness, c.liveness_probe.clone()),
            (ProbeKind::Readiness, c.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            if probers.contains_key(&(id.clone(), kind)) {
                continue;
            }
            let target = Target {
                runtime: shared.runtime.clone(),
                container_id: id.clone(),
                pod_ip: pod_ip.clone(),
                container: c.clone(),
            };
            let task = tokio::spawn(prober(
                shared.clone(),
                entry.clone(),
                pod.clone(),
                kind,
                probe,
                target,
                c.startup_probe.is_some(),
            ));
            probers.insert((id.clone(), kind), task);
        }
    }
}

async fn prober(
    shared: Arc<Shared>,
    entry: Arc<PodEntry>,
    pod: Pod,
    kind: ProbeKind,
    probe: k8s_openapi::api::core::v1::Probe,
    target: Target,
    has_startup: bool,
) {
    let id = target.container_id.clone();
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let initial = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    tokio::time::sleep(initial).await;
    let mut counter = Counter::new(&probe);
    loop {
        // Liveness and readiness wait until the startup probe has passed.
        let gated = kind != ProbeKind::Startup
            && has_startup
            && !entry.probes.lock().await.started.contains(&id);
        let startup_done =
            kind == ProbeKind::Startup && entry.probes.lock().await.started.contains(&id);
        if !gated && !startup_done {
            let outcome = probe::run(&probe, &target).await;
            let passed = outcome == Outcome::Success;
            if let Outcome::Failure(output) = &outcome {
                let message = format!("{} probe failed: {}", kind.title(), output.trim_end());
                shared
                    .recorder
                    .pod(
                        &pod,
                        field_path(&pod, &target.container.name),
                        "Warning",
                        "Unhealthy",
                        &message,
                    )
                    .await;
            }
            if let Some(result) = counter.observe(passed) {
                let mut state = entry.probes.lock().await;
                apply_result(&mut state, kind, &id, result);
                drop(state);
                entry.notify.notify_one();
            }
        }
        tokio::time::sleep(period).await;
    }
}

fn apply_result(state: &mut ProbeState, kind: ProbeKind, id: &str, passed: bool) {
    match (kind, passed) {
        (ProbeKind::Readiness, true) => {
            state.ready.insert(id.to_owned());
        }
        (ProbeKind::Readiness, false) => {
            state.ready.remove(id);
        }
        (ProbeKind::Startup, true) => {
            state.started.insert(id.to_owned());
        }
        (ProbeKind::Liveness | ProbeKind::Startup, false) => {
            state.restart.insert(id.to_owned());
        }
        (ProbeKind::Liveness, true) => {}
    }
}

/// Writes the pod's status through the status subresource when it changed.
async fn write_status(
    shared: &Shared,
    entry: &PodEntry,
    pod: &Pod,
    status: &k8s_openapi::api::core::v1::PodStatus,
) {
    let Ok(mut value) = serde_json::to_value(status) else {
        return;
    };
    // Fields the kubelet owns are cleared explicitly when it has nothing for them.
    if let Some(map) = value.as_object_mut() {
        for key in [
            "reason",
            "message",
            "podIP",
            "podIPs",
            "initContainerStatuses",
        ] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    let mut last = entry.last_status.lock().await;
    if last.as_ref() == Some(&value) {
        return;
    }
    let current = pod
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    if last.is_none() && current.as_ref().is_some_and(|c| same_status(c, &value)) {
        *last = Some(value);
        return;
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), meta(pod).1);
    let patch = serde_json::json!({"status": value});
    match api
        .patch_status(meta(pod).0, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(updated) => {
            *last = Some(value);
            *entry.pod.lock().await = updated;
        }
        Err(e) => tracing::debug!(pod = meta(pod).0, error = %e, "writing the pod status"),
    }
}

fn same_status(current: &serde_json::Value, new: &serde_json::Value) -> bool {
    let Some(new) = new.as_object() else {
        return false;
    };
    new.iter().all(|(k, v)| {
        let cur = current.get(k).unwrap_or(&serde_json::Value::Null);
        cur == v
    })
}
