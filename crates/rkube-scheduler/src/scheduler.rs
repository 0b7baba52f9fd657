//! The scheduling loop: one task owns the queue and the cache, applies informer events
//! between cycles and schedules one pod per cycle; bindings, status updates and events
//! are written by spawned tasks, so the next pod is scheduled while they are in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cache::Snapshot;
use crate::config::{ConfigError, SchedulerConfig};
use crate::events::EventSink;
use crate::framework::{CycleState, FitError, PreBindTask, events};
use crate::informer::{self, Change};
use crate::metrics::{AttemptResult, Metrics};
use crate::preemption::{self, Preemption};
use crate::profile::{Profile, Rng};
use crate::queue::SchedulingQueue;
use crate::types::PodInfo;

/// What reaches the scheduling loop. Objects travel by value: each message is moved
/// once, from its informer to the loop, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Message {
    Pod(Change<Pod>),
    Node(Change<Node>),
    Namespace(Change<Namespace>),
    Budget(Change<PodDisruptionBudget>),
    Volume(Change<PersistentVolume>),
    Claim(Change<PersistentVolumeClaim>),
    Class(Change<StorageClass>),
    /// Services, ReplicationControllers, ReplicaSets and StatefulSets: only their selectors
    /// are kept, for PodTopologySpread's default constraints.
    Service(Change<Service>),
    ReplicationController(Change<ReplicationController>),
    ReplicaSet(Change<ReplicaSet>),
    StatefulSet(Change<StatefulSet>),
    /// A binding finished (PreBind, then the binding itself).
    Bound {
        info: Arc<PodInfo>,
        node: String,
        result: Result<(), BindError>,
        first_seen: Instant,
        state: Box<CycleState>,
    },
}

/// POSTs the pod's `pods/binding` to `node` ([`crate::events::post_json`]).
async fn post_binding(client: &kube::Client, pod: &PodInfo, node: &str) -> Result<(), kube::Error> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Binding<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: Meta<'a>,
        target: Target<'a>,
    }
    #[derive(serde::Serialize)]
    struct Meta<'a> {
        name: &'a str,
        namespace: &'a str,
        uid: &'a str,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Target<'a> {
        api_version: &'a str,
        kind: &'a str,
        name: &'a str,
    }
    let binding = Binding {
        api_version: "v1",
        kind: "Binding",
        metadata: Meta {
            name: &pod.name,
            namespace: &pod.namespace,
            uid: &pod.uid,
        },
        target: Target {
            api_version: "v1",
            kind: "Node",
            name: node,
        },
    };
    let body = serde_json::to_vec(&binding).map_err(kube::Error::SerdeError)?;
    // Namespaces and pod names are DNS labels and subdomains: nothing in them needs escaping.
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/binding",
        pod.namespace, pod.name
    );
    crate::events::post_json(client, path, body).await
}

/// Why a pod's binding failed.
#[derive(Debug)]
enum BindError {
    /// A plugin's PreBind failed.
    PreBind(&'static str, String),
    /// The `pods/binding` request failed.
    Binding(kube::Error),
}

/// Informers the loop waits for before the first cycle: pods, nodes, volumes, claims,
/// storage classes, and (when a profile's PodTopologySpread has default constraints)
/// Services, ReplicationControllers, ReplicaSets and StatefulSets.
const SYNCED: usize = 9;
/// The first of the workload informers in `Core::synced`.
const WORKLOADS_SYNCED: usize = 5;

/// The scheduler. [`Scheduler::run`] can be started and dropped at any time (for leader
/// election): dropping it stops its watches; writes already sent complete on their own.
#[derive(Clone)]
pub struct Scheduler {
    client: kube::Client,
    config: SchedulerConfig,
    metrics: Arc<Metrics>,
}

impl Scheduler {
    /// A scheduler acting through `client`; fails if the configuration names plugins or
    /// arguments it cannot build.
    pub fn new(client: kube::Client, config: SchedulerConfig) -> Result<Self, ConfigError> {
        config.build_profiles()?;
        Ok(Scheduler {
            client,
            config,
            metrics: Arc::default(),
        })
    }

    /// Shares a metrics registry (so it outlives restarts of the loop).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics registry, to serve on `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until dropped.
    pub async fn run(self) {
        let profiles = match self.config.build_profiles() {
            Ok(p) => p,
            Err(err) => {
                tracing::error!(error = %err, "scheduler configuration");
                return;
            }
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let client = self.client.clone();
        let watch_workloads = profiles.iter().any(Profile::reads_workloads);
        let mut watches = AbortOnDrop(vec![
            informer::spawn(&client, &tx, Message::Pod),
            informer::spawn(&client, &tx, Message::Node),
            informer::spawn(&client, &tx, Message::Namespace),
            informer::spawn(&client, &tx, Message::Budget),
            informer::spawn(&client, &tx, Message::Volume),
            informer::spawn(&client, &tx, Message::Claim),
            informer::spawn(&client, &tx, Message::Class),
        ]);
        if watch_workloads {
            watches.0.extend([
                informer::spawn(&client, &tx, Message::Service),
                informer::spawn(&client, &tx, Message::ReplicationController),
                informer::spawn(&client, &tx, Message::ReplicaSet),
                informer::spawn(&client, &tx, Message::StatefulSet),
            ]);
        }
        let mut synced = [false; SYNCED];
        synced[WORKLOADS_SYNCED..].fill(!watch_workloads);
        let mut core = Core {
            client: client.clone(),
            tx,
            profiles: profiles
                .into_iter()
                .map(|p| (p.scheduler_name.clone(), p))
                .collect(),
            cache: Snapshot::new(),
            queue: SchedulingQueue::new(self.config.initial_backoff, self.config.max_backoff),
            next_start: 0,
            rng: Rng::new(0x9e37_79b9_7f4a_7c15),
            metrics: self.metrics.clone(),
            events: EventSink::start(client),
            synced,
            budgets: HashMap::new(),
        };
        let mut next_flush = Instant::now() + Duration::from_secs(30);
        let mut since_yield = 0u32;
        loop {
            while let Ok(message) = rx.try_recv() {
                core.handle(message);
            }
            let now = Instant::now();
            if now >= next_flush {
                core.queue.flush_unschedulable(now);
                next_flush = now + Duration::from_secs(30);
            }
            if core.synced.iter().all(|s| *s) && core.schedule_one(now) {
                since_yield += 1;
                if since_yield >= 32 {
                    since_yield = 0;
                    tokio::task::yield_now().await;
                }
                continue;
            }
            core.metrics.pending(core.queue.depths());
            let wake = core
                .queue
                .next_backoff()
                .map_or(next_flush, |t| t.min(next_flush));
            tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => core.handle(message),
                    None => return,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// `namespace/name`, as the informers' `Gone` keys are.
fn object_key<K: kube::Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Aborts its tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The loop's state.
struct Core {
    client: kube::Client,
    tx: mpsc::UnboundedSender<Message>,
    profiles: HashMap<String, Profile>,
    cache: Snapshot,
    queue: SchedulingQueue,
    next_start: usize,
    rng: Rng,
    metrics: Arc<Metrics>,
    events: EventSink,
    /// Whether each informer has listed everything (see [`SYNCED`]); those not started
    /// count as synced.
    synced: [bool; SYNCED],
    /// PodDisruptionBudgets by `namespace/name`.
    budgets: HashMap<String, PodDisruptionBudget>,
}

impl Core {
    fn handle(&mut self, message: Message) {
        let now = Instant::now();
        match message {
            Message::Pod(Change::Apply(pod)) => self.on_pod(*pod, now),
            Message::Pod(Change::Delete(pod)) => {
                let key = crate::types::pod_key(&pod);
                self.on_pod_gone(&key, now);
            }
            Message::Pod(Change::Gone(key)) => self.on_pod_gone(&key, now),
            Message::Pod(Change::Synced) => self.synced[0] = true,
            Message::Node(Change::Apply(node)) => {
                let event = self.cache.upsert_node(*node);
                self.queue.on_event(event, now);
            }
            Message::Node(Change::Delete(node)) => {
                self.cache
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
                self.queue.on_event(events::NODE_DELETE, now);
            }
            Message::Node(Change::Gone(name)) => {
                self.cache.remove_node(&name);
                self.queue.on_event(events::NODE_DELETE, now);
            }
            Message::Node(Change::Synced) => self.synced[1] = true,
            Message::Namespace(Change::Apply(ns)) => {
                let name = ns.metadata.name.clone().unwrap_or_default();
                let labels = ns.metadata.labels.clone().unwrap_or_default();
                if self.cache.namespaces.get(&name) != Some(&labels) {
                    self.cache.namespaces.insert(name, labels);
                    self.queue.on_event(events::NAMESPACE, now);
                }
            }
            Message::Namespace(Change::Delete(ns)) => {
                self.cache
                    .namespaces
                    .remove(ns.metadata.name.as_deref().unwrap_or_default());
            }
            Message::Namespace(Change::Gone(name)) => {
                self.cache.namespaces.remove(&name);
            }
            Message::Budget(Change::Apply(pdb)) => {
                let key = format!(
                    "{}/{}",
                    pdb.metadata.namespace.as_deref().unwrap_or_default(),
                    pdb.metadata.name.as_deref().unwrap_or_default()
                );
                self.budgets.insert(key, *pdb);
            }
            Message::Budget(Change::Delete(pdb)) => {
                let key = format!(
                    "{}/{}",
                    pdb.metadata.namespace.as_deref().unwrap_or_default(),
                    pdb.metadata.name.as_deref().unwrap_or_default()
                );
                self.budgets.remove(&key);
            }
            Message::Budget(Change::Gone(key)) => {
                self.budgets.remove(&key);
            }
            Message::Namespace(Change::Synced) | Message::Budget(Change::Synced) => {}
            Message::Volume(change) => {
                match change {
                    Change::Apply(volume) => self.cache.volumes.apply_volume(*volume),
                    Change::Delete(volume) => self
                        .cache
                        .volumes
                        .remove_volume(volume.metadata.name.as_deref().unwrap_or_default()),
                    Change::Gone(name) => self.cache.volumes.remove_volume(&name),
                    Change::Synced => self.synced[2] = true,
                }
                self.queue.on_event(events::VOLUME, now);
            }
            Message::Claim(change) => {
                match change {
                    Change::Apply(claim) => self.cache.volumes.apply_claim(*claim),
                    Change::Delete(claim) => self.cache.volumes.remove_claim(&format!(
                        "{}/{}",
                        claim.metadata.namespace.as_deref().unwrap_or_default(),
                        claim.metadata.name.as_deref().unwrap_or_default()
                    )),
                    Change::Gone(key) => self.cache.volumes.remove_claim(&key),
                    Change::Synced => self.synced[3] = true,
                }
                self.queue.on_event(events::VOLUME, now);
            }
            Message::Class(change) => {
                match change {
                    Change::Apply(class) => self.cache.volumes.apply_class(*class),
                    Change::Delete(class) => self
                        .cache
                        .volumes
                        .remove_class(class.metadata.name.as_deref().unwrap_or_default()),
                    Change::Gone(name) => self.cache.volumes.remove_class(&name),
                    Change::Synced => self.synced[4] = true,
                }
                self.queue.on_event(events::VOLUME, now);
            }
            // Upstream registers no events for these: what selects a pod changes its score,
            // never whether it fits, so no pod is moved back to the active queue.
            Message::Service(change) => match change {
                Change::Apply(svc) => self.cache.workloads.apply_service(&svc),
                Change::Delete(svc) => self.cache.workloads.remove_service(&object_key(&*svc)),
                Change::Gone(key) => self.cache.workloads.remove_service(&key),
                Change::Synced => self.synced[WORKLOADS_SYNCED] = true,
            },
            Message::ReplicationController(change) => match change {
                Change::Apply(rc) => self.cache.workloads.apply_replication_controller(&rc),
                Change::Delete(rc) => self
                    .cache
                    .workloads
                    .remove_replication_controller(&object_key(&*rc)),
                Change::Gone(key) => self.cache.workloads.remove_replication_controller(&key),
                Change::Synced => self.synced[WORKLOADS_SYNCED + 1] = true,
            },
            Message::ReplicaSet(change) => match change {
                Change::Apply(rs) => self.cache.workloads.apply_replica_set(&rs),
                Change::Delete(rs) => self.cache.workloads.remove_replica_set(&object_key(&*rs)),
                Change::Gone(key) => self.cache.workloads.remove_replica_set(&key),
                Change::Synced => self.synced[WORKLOADS_SYNCED + 2] = true,
            },
            Message::StatefulSet(change) => match change {
                Change::Apply(sts) => self.cache.workloads.apply_stateful_set(&sts),
                Change::Delete(sts) => self.cache.workloads.remove_stateful_set(&object_key(&*sts)),
                Change::Gone(key) => self.cache.workloads.remove_stateful_set(&key),
                Change::Synced => self.synced[WORKLOADS_SYNCED + 3] = true,
            },
            Message::Bound {
                info,
                node,
                result,
                first_seen,
                state,
            } => self.on_bound(info, &node, result, first_seen, *state, now),
        }
    }

    fn on_pod(&mut self, pod: Pod, now: Instant) {
        // The common case at scale: the binding of a pod this scheduler assumed. Nothing
        // the scheduler accounts changes, so the pod is not compiled again.
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && pod.metadata.deletion_timestamp.is_none()
        {
            let key = crate::types::pod_key(&pod);
            if self.cache.confirm(&key, node) {
                self.queue.on_event(events::POD_ADD, now);
                return;
            }
        }
        let info = Arc::new(PodInfo::new(pod));
        if let Some(node) = info.node_name.clone() {
            self.queue.remove(&info.key);
            if info.is_terminal() {
                if self.cache.remove_pod(&info.key).is_some() {
                    self.queue.on_event(events::POD_DELETE, now);
                }
                return;
            }
            let known = self.cache.node_of(&info.key) == Some(node.as_str());
            let labels_changed = known
                && self
                    .cache
                    .node(&node)
                    .and_then(|n| n.pods.iter().find(|p| p.key == info.key))
                    .is_some_and(|p| p.labels != info.labels);
            if info.nominated_node.is_some()
                || self
                    .cache
                    .nominated
                    .values()
                    .flatten()
                    .any(|p| p.key == info.key)
            {
                self.cache.nominate(&info, None);
            }
            self.cache.add_pod(info, &node, false);
            if !known || labels_changed {
                self.queue.on_event(events::POD_ADD, now);
            }
            return;
        }
        if self.cache.is_assumed(&info.key) {
            // Binding in flight: the informer has not caught up yet.
            return;
        }
        if !self.profiles.contains_key(&info.scheduler_name)
            || info.terminating
            || info.is_terminal()
        {
            self.queue.remove(&info.key);
            return;
        }
        if let Some(node) = &info.nominated_node {
            self.cache.nominate(&info, Some(node));
        }
        self.queue.upsert(info, now);
    }

    fn on_pod_gone(&mut self, key: &str, now: Instant) {
        self.queue.remove(key);
        if let Some(pod) = self.cache.remove_pod(key) {
            self.cache.nominate(&pod, None);
            self.queue.on_event(events::POD_DELETE, now);
        }
        self.cache.nominated.retain(|_, pods| {
            pods.retain(|p| p.key != key);
            !pods.is_empty()
        });
    }

    fn on_bound(
        &mut self,
        info: Arc<PodInfo>,
        node: &str,
        result: Result<(), BindError>,
        first_seen: Instant,
        mut state: CycleState,
        now: Instant,
    ) {
        match result {
            Ok(()) => {
                self.metrics.scheduled(now.duration_since(first_seen));
                self.events.publish(
                    &info.scheduler_name,
                    &info,
                    "Normal",
                    "Scheduled",
                    format!(
                        "Successfully assigned {}/{} to {node}",
                        info.namespace, info.name
                    ),
                );
            }
            Err(err) => {
                let profile = info.scheduler_name.clone();
                self.metrics
                    .attempt(AttemptResult::Error, &profile, Duration::ZERO);
                if let Some(profile) = self.profiles.get(&profile) {
                    profile.unreserve(&mut state, &info, node, &mut self.cache);
                }
                if self.cache.is_assumed(&info.key) {
                    self.cache.remove_pod(&info.key);
                    self.queue.on_event(events::POD_DELETE, now);
                }
                let (gone, message) = match &err {
                    BindError::Binding(e) => (
                        matches!(e, kube::Error::Api(s) if s.code == 404),
                        format!("running Bind plugin \"DefaultBinder\": {e}"),
                    ),
                    BindError::PreBind(plugin, e) => {
                        (false, format!("running PreBind plugin \"{plugin}\": {e}"))
                    }
                };
                tracing::debug!(pod = %info.key, error = %message, "binding failed");
                if !gone && self.cache.node_of(&info.key).is_none() {
                    self.events.failed_scheduling(&info, message);
                    self.queue.retry(info, now);
                }
            }
        }
    }

    /// Schedules the next pod, if one is ready; `false` when none is.
    fn schedule_one(&mut self, now: Instant) -> bool {
        let Some((info, _attempt)) = self.queue.pop(now) else {
            return false;
        };
        let started = std::time::Instant::now();
        let Some(profile) = self.profiles.get(&info.scheduler_name) else {
            self.queue.remove(&info.key);
            return true;
        };
        let mut state = CycleState::default();
        let result = profile.schedule(
            &mut state,
            &info,
            &self.cache,
            &mut self.next_start,
            &mut self.rng,
        );
        match result {
            Ok(placement) => {
                let node = self.cache.nodes[placement.node].name.clone();
                if let Err(failure) = profile.reserve(&mut state, &info, &node, &mut self.cache) {
                    self.metrics.attempt(
                        AttemptResult::Error,
                        &info.scheduler_name,
                        started.elapsed(),
                    );
                    let message = format!(
                        "running Reserve plugin {:?}: {}",
                        failure.plugin,
                        failure.reasons.join(", ")
                    );
                    self.events.failed_scheduling(&info, message);
                    self.queue.retry(info, now);
                    return true;
                }
                self.metrics.attempt(
                    AttemptResult::Scheduled,
                    &info.scheduler_name,
                    started.elapsed(),
                );
                if self
                    .cache
                    .nominated
                    .values()
                    .flatten()
                    .any(|p| p.key == info.key)
                {
                    self.cache.nominate(&info, None);
                }
                self.cache.add_pod(info.clone(), &node, true);
                let first_seen = self
                    .queue
                    .remove(&info.key)
                    .map_or(now, |queued| queued.first_seen);
                let pre_bind = profile.pre_bind(&self.client, &state, &info, &node);
                self.bind(info, node, first_seen, state, pre_bind);
            }
            Err(mut fit) => {
                let mut nominated = None;
                if profile.preemption && fit.num_all_nodes > 0 {
                    let outcome = preemption::preempt(
                        profile,
                        &state,
                        &info,
                        &self.cache,
                        &fit,
                        &self.budgets,
                    );
                    match outcome {
                        Preemption::Nominated { node, victims } => {
                            for victim in victims {
                                self.evict(&victim, &info, &node);
                            }
                            nominated = Some(node);
                        }
                        Preemption::Failed(msg) => fit.post_filter_msg = Some(msg),
                    }
                }
                self.metrics.attempt(
                    AttemptResult::Unschedulable,
                    &info.scheduler_name,
                    started.elapsed(),
                );
                let waiting_for = self.waiting_for(&info.scheduler_name, &fit);
                self.queue.unschedulable(&info.key, waiting_for, now);
                if let Some(node) = &nominated {
                    self.cache.nominate(&info, Some(node));
                }
                self.report_unschedulable(&info, &fit, nominated);
            }
        }
        true
    }

    /// The events that may help a pod the plugins in `fit` rejected.
    fn waiting_for(&self, profile: &str, fit: &FitError) -> u32 {
        let Some(profile) = self.profiles.get(profile) else {
            return events::ALL;
        };
        let mut mask = 0;
        for name in &fit.rejectors {
            mask |= profile
                .filters
                .iter()
                .find(|p| p.name() == *name)
                .map_or(events::ALL, |p| p.events());
        }
        if mask == 0 { events::ALL } else { mask }
    }

    /// Runs the PreBind work, then writes the binding; the outcome comes back to the loop.
    fn bind(
        &self,
        info: Arc<PodInfo>,
        node: String,
        first_seen: Instant,
        state: CycleState,
        pre_bind: Vec<(&'static str, PreBindTask)>,
    ) {
        let client = self.client.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let state = Box::new(state);
            for (plugin, task) in pre_bind {
                if let Err(err) = task.await {
                    let _ = tx.send(Message::Bound {
                        info,
                        node,
                        result: Err(BindError::PreBind(plugin, err)),
                        first_seen,
                        state,
                    });
                    return;
                }
            }
            let result = post_binding(&client, &info, &node)
                .await
                .map_err(BindError::Binding);
            let _ = tx.send(Message::Bound {
                info,
                node,
                result,
                first_seen,
                state,
            });
        });
    }

    /// Deletes a preemption victim, with the event upstream writes.
    fn evict(&self, victim: &Arc<PodInfo>, preemptor: &PodInfo, node: &str) {
        self.events.publish(
            &preemptor.scheduler_name,
            victim,
            "Normal",
            "Preempted",
            format!("Preempted by pod {} on node {node}", preemptor.uid),
        );
        let client = self.client.clone();
        let victim = victim.clone();
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &victim.namespace);
            let params = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(victim.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(err) = api.delete(&victim.name, &params).await {
                tracing::debug!(pod = %victim.key, error = %err, "deleting a preemption victim");
            }
        });
    }

    /// Writes PodScheduled=False (and the nominated node) and a FailedScheduling event,
    /// unless the same message was written last time.
    fn report_unschedulable(
        &mut self,
        info: &Arc<PodInfo>,
        fit: &FitError,
        nominated: Option<String>,
    ) {
        let message = fit.message();
        let Some(queued) = self.queue.get_mut(&info.key) else {
            return;
        };
        if queued.last_message.as_deref() == Some(message.as_str()) && nominated.is_none() {
            return;
        }
        queued.last_message = Some(message.clone());
        self.events.failed_scheduling(info, message.clone());
        let client = self.client.clone();
        let info = info.clone();
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &info.namespace);
            let mut status = json!({
                "conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": null,
                    "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now()),
                }],
            });
            if let Some(node) = nominated {
                status["nominatedNodeName"] = json!(node);
            }
            let patch = json!({"status": status});
            if let Err(err) = api
                .patch_status(
                    &info.name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                tracing::debug!(pod = %info.key, error = %err, "writing PodScheduled");
            }
        });
    }
}
