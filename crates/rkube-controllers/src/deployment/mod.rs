//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets, one
//! per template (named `<deployment>-<pod-template-hash>`), with the RollingUpdate or
//! Recreate strategy; keeps revisions (`deployment.kubernetes.io/revision`) and at most
//! `revisionHistoryLimit` old ReplicaSets; honours pause, minReadySeconds and
//! progressDeadlineSeconds; and reports status and conditions as upstream does. A rollback
//! (`kubectl rollout undo`) is a template change back to an old ReplicaSet's template: that
//! ReplicaSet becomes the new one again and takes the next revision.

pub mod rollout;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use rkube_api::selector::LabelSelector;

use crate::controller_ref::{self, controlled_by_kind, controller_of};
use crate::events::{EventType, Recorder};
use crate::informer::SharedInformers;
use crate::informer::{self, Change, Key, Next, WorkQueue};
use rollout::{DESIRED_REPLICAS, MAX_REPLICAS, OldReplicaSet, POD_TEMPLATE_HASH, REVISION, Sized};

/// Parallel reconciles (upstream's `--concurrent-deployment-syncs`).
const WORKERS: usize = 5;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the API failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Adoption or release failed.
    #[error("{0}")]
    Claim(#[from] controller_ref::Error),
    /// A ReplicaSet name is taken by another template; the collision count was raised.
    #[error("hash collision for ReplicaSet {0}")]
    Collision(String),
}

/// The Deployment controller.
#[derive(Clone)]
pub struct DeploymentController {
    client: kube::Client,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    recorder: Recorder,
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

fn deployment_keys_for_rs(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<Key> {
    let namespace = rs.namespace().unwrap_or_default();
    if let Some(name) = controlled_by_kind::<Deployment>(&rs.metadata) {
        return vec![Key {
            namespace,
            name: name.to_owned(),
        }];
    }
    if controller_of(&rs.metadata).is_some() {
        return Vec::new();
    }
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    informer::in_namespace(deployments, &namespace)
        .iter()
        .filter(|d| selector(d).is_some_and(|s| s.matches(&labels)))
        .map(|d| Key::of(d.as_ref()))
        .collect()
}

fn selector(d: &Deployment) -> Option<LabelSelector> {
    let s = LabelSelector::from_api(&d.spec.as_ref()?.selector).ok()?;
    (!s.is_empty()).then_some(s)
}

impl DeploymentController {
    /// Runs the controller through `client` until dropped.
    pub async fn run(client: impl Into<SharedInformers>) {
        let informers: SharedInformers = client.into();
        let client = informers.client().clone();
        let (deployments, d_changes) = informers.informer::<Deployment>().await;
        let (replicasets, rs_changes) = informers.informer::<ReplicaSet>().await;
        let controller = Self {
            deployments,
            replicasets,
            recorder: Recorder::new(client.clone(), "deployment-controller"),
            client,
        };
        let queue = WorkQueue::default();
        let d_task = {
            let queue = queue.clone();
            d_changes.for_each(move |change| {
                queue.add(Key::of(change.object()));
                std::future::ready(())
            })
        };
        let rs_task = {
            let (queue, deployments) = (queue.clone(), controller.deployments.clone());
            rs_changes.for_each(move |change| {
                let mut keys = Vec::new();
                match change {
                    Change::Added(rs) | Change::Deleted(rs) => {
                        keys = deployment_keys_for_rs(&deployments, &rs);
                    }
                    Change::Updated { old, new } => {
                        keys.extend(deployment_keys_for_rs(&deployments, &new));
                        if old.metadata.labels != new.metadata.labels
                            || controller_of(&old.metadata) != controller_of(&new.metadata)
                        {
                            keys.extend(deployment_keys_for_rs(&deployments, &old));
                        }
                    }
                }
                keys.sort();
                keys.dedup();
                keys.into_iter().for_each(|k| queue.add(k));
                std::future::ready(())
            })
        };
        let workers = {
            let controller = controller.clone();
            async move {
                let _ = controller.deployments.wait_until_ready().await;
                let _ = controller.replicasets.wait_until_ready().await;
                informer::run_workers(queue, "deployment", WORKERS, move |key: Key| {
                    let controller = controller.clone();
                    async move {
                        let again = controller.reconcile(&key).await?;
                        Ok::<_, Error>(again.map_or(Next::Wait, Next::After))
                    }
                })
                .await
            }
        };
        tokio::join!(d_task, rs_task, workers);
    }

    fn rs_api(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// One step of the Deployment at `key` toward its declared state. Returns when to look
    /// again (the progress deadline).
    pub async fn reconcile(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let Some(d) = self.deployments.get(&key.object_ref()) else {
            return Ok(None);
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let Some(selector) = selector(&d) else {
            return Ok(None);
        };
        let candidates: Vec<_> = informer::in_namespace(&self.replicasets, &key.namespace)
            .into_iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let rs_list = controller_ref::claim(
            &self.rs_api(&key.namespace),
            d.as_ref(),
            |rs: &ReplicaSet| {
                selector.matches(rs.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
            },
            candidates,
        )
        .await?;
        let mut sync = Sync {
            c: self,
            d: d.clone(),
            rs: rs_list.iter().map(|rs| rs.as_ref().clone()).collect(),
            new_index: None,
            progress: None,
        };
        sync.find_new();
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || sync.is_scaling_event() {
            sync.sync_revision(false).await?;
            sync.scale().await?;
            if paused {
                sync.cleanup().await?;
            }
        } else if rollout::is_recreate(&d) {
            sync.recreate().await?;
        } else {
            sync.rolling().await?;
        }
        sync.write_status().await
    }
}

/// The state of one reconcile of one Deployment.
struct Sync<'a> {
    c: &'a DeploymentController,
    d: Arc<Deployment>,
    /// Every ReplicaSet the Deployment controls, as last written.
    rs: Vec<ReplicaSet>,
    /// Which of them has the Deployment's template.
    new_index: Option<usize>,
    /// A Progressing reason and message to record (NewReplicaSetCreated, FoundNewReplicaSet).
    progress: Option<(&'static str, String)>,
}

impl Sync<'_> {
    fn template(&self) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        self.d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default()
    }

    fn namespace(&self) -> String {
        self.d.namespace().unwrap_or_default()
    }

    fn find_new(&mut self) {
        let template = self.template();
        self.new_index = self
            .rs
            .iter()
            .enumerate()
            .filter(|(_, rs)| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| rollout::equal_ignoring_hash(t, &template))
            })
            .min_by_key(|(_, rs)| created(rs))
            .map(|(i, _)| i);
    }

    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new_index.map(|i| &self.rs[i])
    }

    /// Old ReplicaSets' indices, oldest first.
    fn old_indices(&self) -> Vec<usize> {
        let mut old: Vec<usize> = (0..self.rs.len())
            .filter(|i| Some(*i) != self.new_index)
            .collect();
        old.sort_by_key(|i| (created(&self.rs[*i]), self.rs[*i].name_any()));
        old
    }

    fn desired(&self) -> i32 {
        rollout::replicas(&self.d)
    }

    fn is_scaling_event(&self) -> bool {
        let desired = self.desired();
        self.rs
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| annotation(rs, DESIRED_REPLICAS).is_some_and(|a| a != desired))
    }

    /// Makes sure the new ReplicaSet (creating it when `create`) carries the next revision,
    /// and the Deployment too.
    async fn sync_revision(&mut self, create: bool) -> Result<(), Error> {
        let max_old = self
            .old_indices()
            .iter()
            .map(|i| rollout::revision(&self.rs[*i]))
            .max()
            .unwrap_or(0);
        let next = max_old + 1;
        match self.new_index {
            Some(i) => {
                let rs = &self.rs[i];
                let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
                let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
                if rollout::revision(rs) < next
                    || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0)
                {
                    let revision = rollout::revision(rs).max(next);
                    let mut annotations = rollout::copied_annotations(&self.d);
                    annotations.insert(REVISION.into(), revision.to_string());
                    let patch = serde_json::json!({
                        "metadata": {"annotations": annotations},
                        "spec": {"minReadySeconds": min_ready.unwrap_or(0)},
                    });
                    let name = rs.name_any();
                    self.rs[i] = self
                        .c
                        .rs_api(&self.namespace())
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
                let has_progressing = self
                    .d
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Progressing"));
                if !has_progressing {
                    self.progress = Some((
                        "FoundNewReplicaSet",
                        format!("Found new replica set {:?}", self.rs[i].name_any()),
                    ));
                }
            }
            None if create => self.create_new(next).await?,
            None => return Ok(()),
        }
        let revision = self
            .new_rs()
            .map(rollout::revision)
            .unwrap_or(next)
            .to_string();
        let current = self.d.annotations().get(REVISION).cloned();
        if current.as_deref() != Some(revision.as_str()) {
            let patch = serde_json::json!({"metadata": {"annotations": {REVISION: revision}}});
            let api: Api<Deployment> = Api::namespaced(self.c.client.clone(), &self.namespace());
            api.patch(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        Ok(())
    }

    async fn create_new(&mut self, revision: i64) -> Result<(), Error> {
        let d = self.d.clone();
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = self.template();
        let hash = rollout::pod_template_hash(&template, collision);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let spec = d.spec.clone().unwrap_or_default();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let desired = self.desired();
        let replicas = if rollout::is_recreate(&d) {
            desired
        } else {
            let total: i32 = self.rs.iter().map(spec_replicas).sum();
            rollout::new_rs_replicas(desired, rollout::max_surge(&d), total, 0)
        };
        let mut annotations = rollout::copied_annotations(&d);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(
            MAX_REPLICAS.into(),
            (desired + rollout::max_surge(&d)).to_string(),
        );
        let name = format!("{}-{hash}", d.name_any());
        let rs = ReplicaSet {
            metadata: metav1::ObjectMeta {
                name: Some(name.clone()),
                namespace: d.namespace(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref::controller_reference(d.as_ref())]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let api = self.c.rs_api(&self.namespace());
        let created = match api.create(&PostParams::default(), &rs).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // The cache may simply lag: the name is ours if it holds our template.
                let existing = api.get(&name).await?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| rollout::equal_ignoring_hash(t, &self.template()));
                if ours && same {
                    self.rs.push(existing);
                    self.new_index = Some(self.rs.len() - 1);
                    return Ok(());
                }
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(collision.unwrap_or(0).saturating_add(1));
                let deployments: Api<Deployment> =
                    Api::namespaced(self.c.client.clone(), &self.namespace());
                deployments
                    .patch_status(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&serde_json::json!({"status": {"collisionCount": status.collision_count}})),
                    )
                    .await?;
                return Err(Error::Collision(name));
            }
            Err(err) => return Err(err.into()),
        };
        if replicas > 0 {
            self.c
                .recorder
                .publish(
                    d.as_ref(),
                    EventType::Normal,
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {name} from 0 to {replicas}"),
                )
                .await;
        }
        self.progress = Some((
            "NewReplicaSetCreated",
            format!("Created new replica set {name:?}"),
        ));
        self.rs.push(created);
        self.new_index = Some(self.rs.len() - 1);
        Ok(())
    }

    /// Sets ReplicaSet `i` to `replicas` with the current size annotations; records the scaling.
    async fn scale_rs(&mut self, i: usize, replicas: i32) -> Result<(), Error> {
        let old = spec_replicas(&self.rs[i]);
        let desired = self.desired().to_string();
        let max = (self.desired() + rollout::max_surge(&self.d)).to_string();
        let annotations_current = annotation(&self.rs[i], DESIRED_REPLICAS).map(|v| v.to_string())
            == Some(desired.clone())
            && annotation(&self.rs[i], MAX_REPLICAS).map(|v| v.to_string()) == Some(max.clone());
        if old == replicas && annotations_current {
            return Ok(());
        }
        let patch = serde_json::json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: desired, MAX_REPLICAS: max}},
            "spec": {"replicas": replicas},
        });
        let name = self.rs[i].name_any();
        self.rs[i] = self
            .c
            .rs_api(&self.namespace())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        if old != replicas {
            let direction = if replicas > old { "up" } else { "down" };
            self.c
                .recorder
                .publish(
                    self.d.as_ref(),
                    EventType::Normal,
                    "ScalingReplicaSet",
                    &format!("Scaled {direction} replica set {name} from {old} to {replicas}"),
                )
                .await;
        }
        Ok(())
    }

    /// Scales to the Deployment's size: the one active ReplicaSet directly, several in proportion.
    async fn scale(&mut self) -> Result<(), Error> {
        let desired = self.desired();
        let active: Vec<usize> = (0..self.rs.len())
            .filter(|i| spec_replicas(&self.rs[*i]) > 0)
            .collect();
        let target = match active.len() {
            0 => self
                .new_index
                .or_else(|| (0..self.rs.len()).max_by_key(|i| created(&self.rs[*i]))),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = target {
            return self.scale_rs(i, desired).await;
        }
        let saturated = self.new_rs().is_some_and(|rs| {
            spec_replicas(rs) == desired
                && annotation(rs, DESIRED_REPLICAS) == Some(desired)
                && available(rs) == desired
        });
        if saturated {
            for i in self.old_indices() {
                self.scale_rs(i, 0).await?;
            }
            return Ok(());
        }
        if rollout::is_recreate(&self.d) {
            return Ok(());
        }
        let total: i32 = active.iter().map(|i| spec_replicas(&self.rs[*i])).sum();
        let allowed = desired + rollout::max_surge(&self.d);
        let mut order = active.clone();
        let newer_first = allowed > total;
        order.sort_by(|a, b| {
            let (ra, rb) = (&self.rs[*a], &self.rs[*b]);
            spec_replicas(rb).cmp(&spec_replicas(ra)).then_with(|| {
                if newer_first {
                    created(rb).cmp(&created(ra))
                } else {
                    created(ra).cmp(&created(rb))
                }
            })
        });
        let sized: Vec<Sized> = order
            .iter()
            .map(|i| Sized {
                replicas: spec_replicas(&self.rs[*i]),
                max_replicas: annotation(&self.rs[*i], MAX_REPLICAS),
            })
            .collect();
        let current_max = self
            .d
            .status
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(total);
        let sizes =
            rollout::proportional(&sized, desired, rollout::max_surge(&self.d), current_max);
        for (i, size) in order.into_iter().zip(sizes) {
            self.scale_rs(i, size).await?;
        }
        Ok(())
    }

    async fn rolling(&mut self) -> Result<(), Error> {
        self.sync_revision(true).await?;
        let Some(new) = self.new_index else {
            return Ok(());
        };
        let desired = self.desired();
        let total: i32 = self.rs.iter().map(spec_replicas).sum();
        let current = spec_replicas(&self.rs[new]);
        let target = rollout::new_rs_replicas(desired, rollout::max_surge(&self.d), total, current);
        if target != current {
            return self.scale_rs(new, target).await;
        }
        let old = self.old_indices();
        let olds: Vec<OldReplicaSet> = old
            .iter()
            .map(|i| OldReplicaSet {
                replicas: spec_replicas(&self.rs[*i]),
                available: available(&self.rs[*i]),
            })
            .collect();
        let sizes = rollout::scale_down_old(
            desired,
            rollout::max_unavailable(&self.d),
            current,
            available(&self.rs[new]),
            &olds,
        );
        let mut scaled = false;
        for (i, size) in old.iter().zip(sizes) {
            if size != spec_replicas(&self.rs[*i]) {
                self.scale_rs(*i, size).await?;
                scaled = true;
            }
        }
        if !scaled && self.complete() {
            self.cleanup().await?;
        }
        Ok(())
    }

    async fn recreate(&mut self) -> Result<(), Error> {
        self.sync_revision(false).await?;
        let mut scaled = false;
        for i in self.old_indices() {
            if spec_replicas(&self.rs[i]) > 0 {
                self.scale_rs(i, 0).await?;
                scaled = true;
            }
        }
        if scaled {
            return Ok(());
        }
        // Old pods must be gone (as their ReplicaSets report) before new ones start.
        let old_running = self.old_indices().iter().any(|i| {
            let rs = &self.rs[*i];
            let status = rs.status.clone().unwrap_or_default();
            status.replicas > 0 || status.observed_generation < rs.metadata.generation
        });
        if old_running {
            return Ok(());
        }
        if self.new_index.is_none() {
            self.sync_revision(true).await?;
        }
        if let Some(new) = self.new_index {
            self.scale_rs(new, self.desired()).await?;
        }
        if self.complete() {
            self.cleanup().await?;
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        let status = self.status(Timestamp::now());
        rollout::is_complete(&self.d, &status)
    }

    /// Deletes the oldest old ReplicaSets beyond revisionHistoryLimit (only empty ones).
    async fn cleanup(&mut self) -> Result<(), Error> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut removable: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|i| {
                let rs = &self.rs[*i];
                let status = rs.status.clone().unwrap_or_default();
                spec_replicas(rs) == 0
                    && status.replicas == 0
                    && status.observed_generation >= rs.metadata.generation
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        let old_count = self.old_indices().len();
        if old_count <= limit {
            return Ok(());
        }
        removable.sort_by_key(|i| (rollout::revision(&self.rs[*i]), created(&self.rs[*i])));
        let api = self.c.rs_api(&self.namespace());
        for i in removable.into_iter().take(old_count - limit) {
            let rs = &self.rs[i];
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&rs.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    fn status(&self, now: Timestamp) -> DeploymentStatus {
        let all: Vec<&ReplicaSet> = self.rs.iter().collect();
        rollout::compute_status(&self.d, &all, self.new_rs(), self.progress.clone(), now)
    }

    async fn write_status(&self) -> Result<Option<Duration>, Error> {
        let now = Timestamp::now();
        let status = self.status(now);
        if Some(&status) != self.d.status.as_ref() {
            let api: Api<Deployment> = Api::namespaced(self.c.client.clone(), &self.namespace());
            let patch = serde_json::json!({"status": status});
            match api
                .patch_status(
                    &self.d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                Err(err) => return Err(err.into()),
            }
        }
        // Look again when the progress deadline would pass.
        let deadline = rollout::progress_deadline(&self.d);
        let progressing = status
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
            .filter(|c| {
                c.status == "True" && c.reason.as_deref() != Some("NewReplicaSetAvailable")
            });
        if let (Some(deadline), Some(cond)) = (deadline, progressing)
            && let Some(updated) = cond.last_update_time.as_ref()
        {
            let at = updated
                .0
                .checked_add(Duration::from_secs(deadline.max(0) as u64))
                .unwrap_or(updated.0);
            let left = now.duration_until(at);
            let wait = Duration::try_from(left).unwrap_or(Duration::ZERO);
            return Ok(Some(wait + Duration::from_secs(1)));
        }
        Ok(None)
    }
}
