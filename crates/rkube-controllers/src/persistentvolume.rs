//! The PersistentVolume binder (upstream's `persistentvolume-binder`,
//! `pkg/controller/volume/persistentvolume`): binds each claim to the smallest Available
//! volume that serves it, keeps both objects' phases true, releases volumes whose claim is
//! gone and applies their reclaim policy.
//!
//! Claims of a `WaitForFirstConsumer` class are not bound here until the scheduler has
//! chosen a node: it either pre-binds a volume (sets its claimRef), which this controller
//! then completes, or marks the claim with `volume.kubernetes.io/selected-node` for an
//! external provisioner. rkube has no in-tree provisioner, recycler or deleter, so those
//! paths end as upstream's do when no plugin exists.
//!
//! Watch-driven: volumes, claims and storage classes feed one work queue; the decisions
//! ([`claim_step`], [`volume_step`]) are pure, and every write is a compare-and-swap on the
//! cached object's resourceVersion, retried from a fresh cache on conflict.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use rkube_api::volume::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER,
    ANN_DYNAMICALLY_PROVISIONED, ANN_STORAGE_PROVISIONER, annotation, bind_volume_to_claim,
    check_volume_satisfies_claim, claim_class, claim_ref, find_best_match_for_claim,
    has_annotation, is_bound_to_claim, is_delay_binding, is_delay_binding_provisioning,
    volume_mode_mismatch, volume_name, volume_phase,
};

use crate::events::{EventType, Recorder};
use crate::informer::SharedInformers;
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed};

/// Upstream's resync period: every volume and claim is looked at again this often, so a
/// claim waiting for a volume that appeared while nothing changed on it is not forgotten.
const RESYNC: Duration = Duration::from_secs(15);

/// What the controller reconciles.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A volume, by name.
    Volume(String),
    /// A claim, by namespace and name.
    Claim(String, String),
}

/// An event to write about the object being reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// Upstream's reason.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

fn note(type_: EventType, reason: &'static str, message: impl Into<String>) -> Note {
    Note {
        type_,
        reason,
        message: message.into(),
    }
}

/// What to do with a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimStep {
    /// Bind the claim and this volume to each other, then mark both Bound.
    Bind(Arc<PersistentVolume>),
    /// Keep the claim Pending, with an event to say why.
    Pending(Option<Note>),
    /// Hand the claim to this external provisioner.
    Provision(String),
    /// Only write an event: the claim cannot progress (e.g. its class is missing).
    Event(Note),
    /// The claim lost its volume: phase Lost, with this warning.
    Lost(&'static str),
}

/// Decides what a claim needs (upstream's `syncClaim`): `volumes` are every volume known,
/// `class` the claim's storage class if it exists.
pub fn claim_step(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    class: Option<&StorageClass>,
) -> Result<ClaimStep, String> {
    let named = volume_name(claim);
    let find = |name: &str| {
        volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
    };
    if has_annotation(&claim.metadata, ANN_BIND_COMPLETED) {
        // Bound before: keep it so, or report what it lost.
        if named.is_empty() {
            return Ok(ClaimStep::Lost(
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
            ));
        }
        let Some(volume) = find(named) else {
            return Ok(ClaimStep::Lost(
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            ));
        };
        return Ok(match claim_ref(volume) {
            Some(r) if r.uid.is_some() && r.uid != claim.metadata.uid => ClaimStep::Lost(
                "Two claims are bound to the same volume, this one is bound incorrectly",
            ),
            _ => ClaimStep::Bind(volume.clone()),
        });
    }
    if named.is_empty() {
        let delay = is_delay_binding(class);
        if let Some(volume) = find_best_match_for_claim(claim, volumes, delay)? {
            return Ok(ClaimStep::Bind(volume.clone()));
        }
        if delay && !is_delay_binding_provisioning(claim) {
            return Ok(ClaimStep::Pending(Some(note(
                EventType::Normal,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            ))));
        }
        let class_name = claim_class(claim);
        if class_name.is_empty() {
            return Ok(ClaimStep::Pending(Some(note(
                EventType::Normal,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            ))));
        }
        return Ok(match class {
            None => ClaimStep::Event(note(
                EventType::Warning,
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
            )),
            // In-tree provisioners are named kubernetes.io/…; rkube has none of them.
            Some(c) if c.provisioner.starts_with("kubernetes.io/") => ClaimStep::Event(note(
                EventType::Warning,
                "ProvisioningFailed",
                format!("no volume plugin matched name: {}", c.provisioner),
            )),
            Some(c) => ClaimStep::Provision(c.provisioner.clone()),
        });
    }
    // The user asked for a specific volume.
    let Some(volume) = find(named) else {
        return Ok(ClaimStep::Pending(None));
    };
    if claim_ref(volume).is_none() {
        return Ok(match check_volume_satisfies_claim(volume, claim) {
            Ok(()) => ClaimStep::Bind(volume.clone()),
            Err(why) => ClaimStep::Pending(Some(note(EventType::Warning, "VolumeMismatch", why))),
        });
    }
    if is_bound_to_claim(volume, claim) {
        return Ok(ClaimStep::Bind(volume.clone()));
    }
    if !has_annotation(&claim.metadata, ANN_BOUND_BY_CONTROLLER) {
        // Claimed by someone else; the user may free it later.
        return Ok(ClaimStep::Pending(None));
    }
    Err(format!(
        "invalid binding of claim {:?} to volume {named:?}: volume already claimed by {:?}",
        claim.metadata.name.as_deref().unwrap_or_default(),
        claim_ref(volume)
            .and_then(|r| r.name.as_deref())
            .unwrap_or_default()
    ))
}

/// What to do with a volume.
#[derive(Clone, Debug, PartialEq)]
pub enum VolumeStep {
    /// Set this phase (if it is not already).
    Phase(&'static str),
    /// Its claim is gone: Released, or Failed with this event when the reclaim policy
    /// cannot be carried out.
    Released(Option<Note>),
    /// The claim still has to be bound to it: reconcile the claim.
    SyncClaim(String, String),
    /// The controller bound it to a claim that went elsewhere: free it again.
    Unbind,
    /// Only write this event.
    Event(Note),
    /// Nothing.
    Nothing,
}

/// What the reclaim policy of a released volume comes to without volume plugins: Retain
/// keeps it Released; Recycle and Delete fail as upstream's do when no plugin matches,
/// except a Delete left to the external provisioner that created the volume.
pub fn reclaim(volume: &PersistentVolume) -> Option<Note> {
    let policy = volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    match policy {
        "Recycle" => Some(note(
            EventType::Warning,
            "VolumeFailedRecycle",
            "No recycler plugin found for the volume!",
        )),
        "Delete" => {
            let external = annotation(&volume.metadata, ANN_DYNAMICALLY_PROVISIONED)
                .is_some_and(|p| !p.starts_with("kubernetes.io/"));
            (!external).then(|| {
                note(
                    EventType::Warning,
                    "VolumeFailedDelete",
                    format!(
                        "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
                        volume.metadata.name.as_deref().unwrap_or_default()
                    ),
                )
            })
        }
        _ => None,
    }
}

/// Decides what a volume needs (upstream's `syncVolume`); `claim` is the claim its
/// claimRef names, if that exists.
pub fn volume_step(volume: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> VolumeStep {
    let Some(r) = claim_ref(volume) else {
        return VolumeStep::Phase("Available");
    };
    if r.uid.as_deref().unwrap_or_default().is_empty() {
        // Reserved for a claim that has not been bound yet; the claim's sync binds it.
        return VolumeStep::Phase("Available");
    }
    let claim = claim.filter(|c| c.metadata.uid == r.uid);
    let Some(claim) = claim else {
        if volume_phase(volume) == "Failed" {
            return VolumeStep::Nothing;
        }
        return VolumeStep::Released(reclaim(volume));
    };
    let bound_to = volume_name(claim);
    if bound_to.is_empty() {
        if volume_mode_mismatch(claim, volume) {
            return VolumeStep::Event(note(
                EventType::Warning,
                "VolumeMismatch",
                format!(
                    "Cannot bind PersistentVolume to requested PersistentVolumeClaim {:?} due to incompatible volumeMode.",
                    claim.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
        }
        return VolumeStep::SyncClaim(
            claim.metadata.namespace.clone().unwrap_or_default(),
            claim.metadata.name.clone().unwrap_or_default(),
        );
    }
    if Some(bound_to) == volume.metadata.name.as_deref() {
        return VolumeStep::Phase("Bound");
    }
    // The claim is bound to another volume.
    let provisioned = has_annotation(&volume.metadata, ANN_DYNAMICALLY_PROVISIONED);
    let delete = volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        == Some("Delete");
    if provisioned && delete {
        return VolumeStep::Released(reclaim(volume));
    }
    if has_annotation(&volume.metadata, ANN_BOUND_BY_CONTROLLER) {
        VolumeStep::Unbind
    } else {
        VolumeStep::Nothing
    }
}

/// Keeps volumes and claims bound; see the module docs.
pub struct PersistentVolumeController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
}

/// The caches a reconcile reads.
struct Caches {
    volumes: Store<PersistentVolume>,
    claims: Store<PersistentVolumeClaim>,
    classes: Store<StorageClass>,
}

fn unbound_claims(claims: &Store<PersistentVolumeClaim>, class: Option<&str>) -> Vec<Key> {
    claims
        .state_filter(|c| {
            !has_annotation(&c.metadata, ANN_BIND_COMPLETED)
                && class.is_none_or(|name| claim_class(c) == name)
        })
        .iter()
        .map(|c| claim_key(c))
        .collect()
}

fn claim_key(claim: &PersistentVolumeClaim) -> Key {
    Key::Claim(
        claim.metadata.namespace.clone().unwrap_or_default(),
        claim.metadata.name.clone().unwrap_or_default(),
    )
}

impl PersistentVolumeController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "persistentvolume-controller"),
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (volumes, volume_events) = self.informers.informer::<PersistentVolume>().await;
        let (claims, claim_events) = self.informers.informer::<PersistentVolumeClaim>().await;
        let (classes, class_events) = self.informers.informer::<StorageClass>().await;
        let (claims_for_volumes, volumes_for_claims, claims_for_classes) =
            (claims.clone(), volumes.clone(), claims.clone());
        let resync = {
            let (queue, volumes, claims) = (queue.clone(), volumes.clone(), claims.clone());
            async move {
                loop {
                    tokio::time::sleep(RESYNC).await;
                    for v in volumes.state() {
                        queue.add(Key::Volume(v.metadata.name.clone().unwrap_or_default()));
                    }
                    for c in claims.state() {
                        queue.add(claim_key(&c));
                    }
                }
            }
        };
        let _guards = [
            // A volume's change concerns its claim; a volume that may now be free may
            // serve any claim still waiting (upstream waits for its resync instead).
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                volume_events,
                move |change: &Change<PersistentVolume>| {
                    let volume = change.object();
                    let mut keys = vec![Key::Volume(
                        volume.metadata.name.clone().unwrap_or_default(),
                    )];
                    if let Some(r) = claim_ref(volume) {
                        keys.push(Key::Claim(
                            r.namespace.clone().unwrap_or_default(),
                            r.name.clone().unwrap_or_default(),
                        ));
                    }
                    if matches!(change, Change::Added(_) | Change::Updated { .. }) {
                        keys.extend(unbound_claims(&claims_for_volumes, None));
                    }
                    keys
                },
            ))),
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                claim_events,
                move |change: &Change<PersistentVolumeClaim>| {
                    let claim = change.object();
                    let mut keys = vec![claim_key(claim)];
                    let named = volume_name(claim);
                    if !named.is_empty() {
                        keys.push(Key::Volume(named.to_owned()));
                    }
                    if let Change::Deleted(_) = change {
                        // Volumes still pointing at the claim are released.
                        keys.extend(
                            volumes_for_claims
                                .state_filter(|v| {
                                    claim_ref(v).is_some_and(|r| {
                                        r.name == claim.metadata.name
                                            && r.namespace == claim.metadata.namespace
                                    })
                                })
                                .iter()
                                .map(|v| Key::Volume(v.metadata.name.clone().unwrap_or_default())),
                        );
                    }
                    keys
                },
            ))),
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                class_events,
                move |change: &Change<StorageClass>| {
                    let name = change.object().metadata.name.clone().unwrap_or_default();
                    unbound_claims(&claims_for_classes, Some(&name))
                },
            ))),
            AbortOnDrop(tokio::spawn(resync)),
        ];
        if volumes.wait_until_ready().await.is_err()
            || claims.wait_until_ready().await.is_err()
            || classes.wait_until_ready().await.is_err()
        {
            return;
        }
        let caches = Caches {
            volumes,
            claims,
            classes,
        };
        let requeue = queue.clone();
        let (this, caches, requeue) = (&self, &caches, &requeue);
        queue
            .run("persistentvolume-binder", |key| async move {
                match key {
                    Key::Claim(ns, name) => this.sync_claim(caches, &ns, &name).await,
                    Key::Volume(name) => this.sync_volume(caches, requeue, &name).await,
                }
            })
            .await;
    }

    async fn sync_claim(&self, caches: &Caches, ns: &str, name: &str) -> Result<Next, Error> {
        let Some(claim) = caches.claims.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(Next::Wait);
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Wait);
        }
        let class_name = claim_class(&claim);
        let class = (!class_name.is_empty())
            .then(|| caches.classes.get(&ObjectRef::new(class_name)))
            .flatten();
        let volumes = caches.volumes.state();
        let step = claim_step(&claim, &volumes, class.as_deref()).map_err(Error::Binding)?;
        match step {
            ClaimStep::Bind(volume) => self.bind(&volume, &claim).await?,
            ClaimStep::Pending(note) => {
                if let Some(note) = note {
                    self.publish(&*claim, &note).await;
                }
                self.claim_status(&claim, "Pending", None).await?;
            }
            ClaimStep::Provision(provisioner) => self.provision(&claim, &provisioner).await?,
            ClaimStep::Event(note) => self.publish(&*claim, &note).await,
            ClaimStep::Lost(message) => {
                self.publish(&*claim, &note(EventType::Warning, "ClaimLost", message))
                    .await;
                self.claim_status(&claim, "Lost", None).await?;
            }
        }
        Ok(Next::Wait)
    }

    async fn sync_volume(
        &self,
        caches: &Caches,
        queue: &WorkQueue<Key>,
        name: &str,
    ) -> Result<Next, Error> {
        let Some(volume) = caches.volumes.get(&ObjectRef::new(name)) else {
            return Ok(Next::Wait);
        };
        let mut claim = None;
        if let Some(r) = claim_ref(&volume) {
            let (ns, claim_name) = (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            );
            claim = caches
                .claims
                .get(&ObjectRef::new(&claim_name).within(&ns))
                .map(|c| (*c).clone());
            if claim.is_none() && r.uid.is_some() {
                // Not in the cache: make sure it is really gone before releasing the
                // volume, as upstream does (the cache may lag behind a new claim).
                claim = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &ns)
                    .get_opt(&claim_name)
                    .await?;
            }
        }
        match volume_step(&volume, claim.as_ref()) {
            VolumeStep::Phase(phase) => self.volume_phase(&volume, phase, None).await?,
            VolumeStep::Released(None) => self.volume_phase(&volume, "Released", None).await?,
            VolumeStep::Released(Some(note)) => {
                self.volume_phase(&volume, "Failed", Some(&note)).await?
            }
            VolumeStep::SyncClaim(ns, name) => queue.add(Key::Claim(ns, name)),
            VolumeStep::Unbind => self.unbind(&volume).await?,
            VolumeStep::Event(note) => self.publish(&*volume, &note).await,
            VolumeStep::Nothing => {}
        }
        Ok(Next::Wait)
    }

    async fn publish<K>(&self, obj: &K, note: &Note)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.recorder
            .publish(obj, note.type_, note.reason, &note.message)
            .await;
    }

    /// Binds both ways, as upstream's `bind`: the volume's claimRef, the volume Bound, the
    /// claim's volumeName and annotations, the claim Bound with the volume's capacity and
    /// access modes. Each write is skipped when already true.
    async fn bind(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), Error> {
        let pp = PostParams::default();
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let name = volume.metadata.name.clone().unwrap_or_default();
        let mut volume = volume.clone();
        if let Some(updated) = bind_volume_to_claim(&volume, claim) {
            volume = volumes.replace(&name, &pp, &updated).await?;
        }
        if volume_phase(&volume) != "Bound" {
            let mut updated = volume.clone();
            updated.status.get_or_insert_default().phase = Some("Bound".into());
            volume = volumes.replace_status(&name, &pp, &updated).await?;
        }
        let ns = claim.metadata.namespace.clone().unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let mut updated = claim.clone();
        let mut dirty = false;
        if volume_name(claim) != name {
            updated.spec.get_or_insert_default().volume_name = Some(name.clone());
            let annotations = updated.metadata.annotations.get_or_insert_default();
            annotations
                .entry(ANN_BOUND_BY_CONTROLLER.into())
                .or_insert_with(|| "yes".into());
            dirty = true;
        }
        if !has_annotation(&updated.metadata, ANN_BIND_COMPLETED) {
            updated
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(ANN_BIND_COMPLETED.into(), "yes".into());
            dirty = true;
        }
        let claim = if dirty {
            claims.replace(&claim_name, &pp, &updated).await?
        } else {
            claim.clone()
        };
        self.claim_status(&claim, "Bound", Some(&volume)).await
    }

    /// Sets a claim's phase; a Bound claim shows its volume's access modes and capacity,
    /// others none.
    async fn claim_status(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<(), Error> {
        let mut updated = claim.clone();
        let status = updated.status.get_or_insert_default();
        status.phase = Some(phase.into());
        match volume {
            Some(v) => {
                let spec = v.spec.clone().unwrap_or_default();
                status.access_modes = spec.access_modes;
                status.capacity = spec.capacity;
            }
            None => {
                status.access_modes = None;
                status.capacity = None;
            }
        }
        if updated.status == claim.status {
            return Ok(());
        }
        let name = claim.metadata.name.clone().unwrap_or_default();
        Api::<PersistentVolumeClaim>::namespaced(
            self.client.clone(),
            claim.metadata.namespace.as_deref().unwrap_or_default(),
        )
        .replace_status(&name, &PostParams::default(), &updated)
        .await?;
        Ok(())
    }

    /// Sets a volume's phase, writing `note` as an event when it changes.
    async fn volume_phase(
        &self,
        volume: &PersistentVolume,
        phase: &str,
        note: Option<&Note>,
    ) -> Result<(), Error> {
        if volume_phase(volume) == phase {
            return Ok(());
        }
        let mut updated = volume.clone();
        let status = updated.status.get_or_insert_default();
        status.phase = Some(phase.into());
        status.message = note.map(|n| n.message.clone());
        status.reason = None;
        let name = volume.metadata.name.clone().unwrap_or_default();
        Api::<PersistentVolume>::all(self.client.clone())
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
        if let Some(note) = note {
            self.publish(volume, note).await;
        }
        Ok(())
    }

    /// Frees a volume the controller had bound (upstream's `unbindVolume`): the claimRef
    /// goes, or only its uid when the user pre-bound it; then it is Available.
    async fn unbind(&self, volume: &PersistentVolume) -> Result<(), Error> {
        let mut updated = volume.clone();
        if let Some(annotations) = updated.metadata.annotations.as_mut()
            && annotations.remove(ANN_BOUND_BY_CONTROLLER).is_some()
        {
            updated.spec.get_or_insert_default().claim_ref = None;
        } else if let Some(r) = updated.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            r.uid = None;
        }
        let name = volume.metadata.name.clone().unwrap_or_default();
        let written = Api::<PersistentVolume>::all(self.client.clone())
            .replace(&name, &PostParams::default(), &updated)
            .await?;
        self.volume_phase(&written, "Available", None).await
    }

    /// Hands a claim to an external provisioner: the provisioner annotations and
    /// upstream's ExternalProvisioning event.
    async fn provision(
        &self,
        claim: &PersistentVolumeClaim,
        provisioner: &str,
    ) -> Result<(), Error> {
        if annotation(&claim.metadata, ANN_STORAGE_PROVISIONER) != Some(provisioner) {
            let mut updated = claim.clone();
            let annotations = updated.metadata.annotations.get_or_insert_default();
            annotations.insert(ANN_STORAGE_PROVISIONER.into(), provisioner.into());
            annotations.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner.into());
            Api::<PersistentVolumeClaim>::namespaced(
                self.client.clone(),
                claim.metadata.namespace.as_deref().unwrap_or_default(),
            )
            .replace(
                claim.metadata.name.as_deref().unwrap_or_default(),
                &PostParams::default(),
                &updated,
            )
            .await?;
        }
        let message = format!(
            "Waiting for a volume to be created either by the external provisioner '{provisioner}' \
             or manually by the system administrator. If volume creation is delayed, please \
             verify that the provisioner is running and correctly registered."
        );
        self.publish(
            claim,
            &note(EventType::Normal, "ExternalProvisioning", message),
        )
        .await;
        Ok(())
    }
}

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed (a 409 means the cache was stale).
    #[error("persistent volume binder: {0}")]
    Api(#[from] kube::Error),
    /// The objects are bound in a way the controller cannot repair.
    #[error("{0}")]
    Binding(String),
}

#[cfg(test)]
mod tests;
