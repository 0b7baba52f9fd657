//! VolumeBinding (upstream's `volumebinding` plugin): a pod's claims decide where it can
//! run. Bound claims need their volume's node affinity to fit the node; unbound claims of a
//! `WaitForFirstConsumer` class need an Available volume that fits the node, or a class that
//! can provision. Reserve assumes the chosen volumes in the cache; PreBind writes them
//! (a volume's claimRef, or a claim's `selected-node` annotation) and waits for the
//! PersistentVolume binder to finish binding before the pod is bound.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::PostParams;
use rkube_api::volume::{
    ANN_SELECTED_NODE, NOT_SUPPORTED_PROVISIONER, annotation, bind_volume_to_claim, claim_class,
    claim_phase, claim_ref, claim_request, find_matching_volume, is_delay_binding, is_fully_bound,
    volume_name,
};

use crate::cache::Snapshot;
use crate::framework::{Code, CycleState, Failure, Plugin, PreBindTask, PreFilter, events};
use crate::types::{NodeInfo, NodeSelectorTermMatcher, PodInfo, VolumeClaim};

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";
/// Some unbound claim has no volume (and cannot get one provisioned) for the node.
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// A bound claim's volume cannot be reached from the node.
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// A bound claim names a volume that does not exist.
pub const ERR_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// Claims that should have been bound by the controller already.
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The plugin; `bind_timeout` is VolumeBindingArgs' `bindTimeoutSeconds` (600 s).
pub struct VolumeBinding {
    /// How long PreBind waits for the binder to complete the bindings.
    pub bind_timeout: Duration,
    /// How often PreBind looks.
    pub poll: Duration,
}

impl Default for VolumeBinding {
    fn default() -> Self {
        VolumeBinding {
            bind_timeout: Duration::from_secs(600),
            poll: Duration::from_millis(200),
        }
    }
}

/// The pod's claims as PreFilter found them.
#[derive(Clone, Default)]
pub struct ClaimsState {
    /// The volumes of bound claims (`None`: the volume does not exist).
    pub bound: Vec<Option<Arc<PersistentVolume>>>,
    /// Unbound claims whose class waits for the first consumer.
    pub delayed: Vec<Arc<PersistentVolumeClaim>>,
    /// The volumes of each delayed claim's class.
    pub volumes_by_class: HashMap<String, Vec<Arc<PersistentVolume>>>,
    /// The delayed claims' classes.
    pub classes: HashMap<String, Arc<StorageClass>>,
    /// What Reserve assumed for the chosen node.
    pub reserved: Option<PodVolumes>,
}

/// What binding the pod's volumes on one node takes.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// Volumes to bind to claims (in Reserve, in the form to write).
    pub static_bindings: Vec<(Arc<PersistentVolume>, Arc<PersistentVolumeClaim>)>,
    /// Claims a provisioner must create volumes for (in Reserve, with the annotation).
    pub dynamic_provisions: Vec<Arc<PersistentVolumeClaim>>,
}

/// Whether a volume can be reached from a node with these labels (upstream's
/// `CheckNodeAffinity`, which sees only the labels: `metadata.name` fields never match).
pub fn volume_fits_node(volume: &PersistentVolume, labels: &BTreeMap<String, String>) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|t| NodeSelectorTermMatcher::new(t).matches(labels, ""))
}

/// Whether a node's labels satisfy a class's `allowedTopologies` (none: every node).
fn topology_allows(class: &StorageClass, labels: &BTreeMap<String, String>) -> bool {
    let terms = class.allowed_topologies.as_deref().unwrap_or_default();
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        let exprs = term.match_label_expressions.as_deref().unwrap_or_default();
        !exprs.is_empty()
            && exprs
                .iter()
                .all(|e| labels.get(&e.key).is_some_and(|v| e.values.contains(v)))
    })
}

fn claim_name(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Whether the pod's volumes can be bound on this node, and how (upstream's
/// `FindPodVolumes`); the failure carries upstream's reasons.
pub fn find_pod_volumes(
    state: &ClaimsState,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<PodVolumes, Failure> {
    let mut result = PodVolumes::default();
    let (mut bound_fit, mut bound_found, mut unbound_fit) = (true, true, true);
    for volume in &state.bound {
        match volume {
            None => {
                bound_found = false;
                break;
            }
            Some(v) if !volume_fits_node(v, labels) => {
                bound_fit = false;
                break;
            }
            Some(_) => {}
        }
    }
    let mut to_match = Vec::new();
    let mut to_provision = Vec::new();
    let mut elsewhere = false;
    for claim in &state.delayed {
        match annotation(&claim.metadata, ANN_SELECTED_NODE) {
            Some(selected) if selected != node_name => elsewhere = true,
            Some(_) => to_provision.push(claim.clone()),
            None => to_match.push(claim.clone()),
        }
    }
    if elsewhere {
        unbound_fit = false;
    } else {
        // Smallest requests first, so each takes the smallest volume that fits it.
        to_match.sort_by_key(|c| claim_request(c));
        let mut chosen = HashSet::new();
        let fits = |v: &PersistentVolume| volume_fits_node(v, labels);
        for claim in to_match {
            let candidates = state
                .volumes_by_class
                .get(claim_class(&claim))
                .map_or(&[][..], Vec::as_slice);
            match find_matching_volume(&claim, candidates, Some(&fits), &chosen, true)
                .map_err(|e| Failure::unresolvable(NAME, e))?
            {
                Some(volume) => {
                    chosen.insert(volume.metadata.name.clone().unwrap_or_default());
                    result.static_bindings.push((volume.clone(), claim));
                }
                None => {
                    unbound_fit = false;
                    to_provision.push(claim);
                }
            }
        }
        if !to_provision.is_empty() {
            unbound_fit = true;
            for claim in to_provision {
                let class_name = claim_class(&claim);
                if class_name.is_empty() {
                    return Err(Failure::unresolvable(
                        NAME,
                        format!("no class for claim {:?}", claim_name(&claim)),
                    ));
                }
                let Some(class) = state.classes.get(class_name) else {
                    return Err(Failure::unresolvable(
                        NAME,
                        format!("failed to find storage class {class_name:?}"),
                    ));
                };
                let provisioner = class.provisioner.as_str();
                if provisioner.is_empty()
                    || provisioner == NOT_SUPPORTED_PROVISIONER
                    || !topology_allows(class, labels)
                {
                    unbound_fit = false;
                    result.dynamic_provisions.clear();
                    break;
                }
                result.dynamic_provisions.push(claim);
            }
        }
    }
    let mut reasons = Vec::new();
    if !bound_fit {
        reasons.push(ERR_NODE_CONFLICT.into());
    }
    if !unbound_fit {
        reasons.push(ERR_BIND_CONFLICT.into());
    }
    if !bound_found {
        reasons.push(ERR_PV_NOT_EXIST.into());
    }
    if reasons.is_empty() {
        Ok(result)
    } else {
        Err(Failure {
            code: Code::Unresolvable,
            reasons,
            plugin: NAME,
        })
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events(&self) -> u32 {
        events::NODE_ADD | events::NODE_LABEL | events::NODE_TAINT | events::VOLUME
    }

    fn filters(&self) -> bool {
        true
    }

    fn reserves(&self) -> bool {
        true
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        if pod.volume_claims.is_empty() {
            return Ok(PreFilter::Skip);
        }
        let cache = &snapshot.volumes;
        let mut claims = Vec::with_capacity(pod.volume_claims.len());
        for VolumeClaim { name, ephemeral } in &pod.volume_claims {
            let Some(claim) = cache.claim(&format!("{}/{name}", pod.namespace)) else {
                // Normal for an ephemeral volume just after its pod is created.
                let message = if *ephemeral {
                    format!(
                        "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                    )
                } else {
                    format!("persistentvolumeclaim {name:?} not found")
                };
                return Err(Failure::unresolvable(NAME, message));
            };
            if claim_phase(claim) == "Lost" {
                return Err(Failure::unresolvable(
                    NAME,
                    format!(
                        "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                        volume_name(claim)
                    ),
                ));
            }
            if claim.metadata.deletion_timestamp.is_some() {
                return Err(Failure::unresolvable(
                    NAME,
                    format!("persistentvolumeclaim {name:?} is being deleted"),
                ));
            }
            // An ephemeral volume's claim must be the pod's own (its controller owner), not
            // a claim that happens to have the same name.
            let owned = claim
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == pod.uid);
            if *ephemeral && !owned {
                return Err(Failure::unresolvable(
                    NAME,
                    format!(
                        "PVC {}/{name} was not created for pod {}/{} (pod is not owner)",
                        pod.namespace, pod.namespace, pod.name
                    ),
                ));
            }
            claims.push(claim.clone());
        }
        let mut data = ClaimsState::default();
        let mut immediate = false;
        for claim in claims {
            if is_fully_bound(&claim) {
                data.bound.push(cache.volume(volume_name(&claim)).cloned());
                continue;
            }
            let class_name = claim_class(&claim).to_owned();
            let class = (!class_name.is_empty())
                .then(|| cache.class(&class_name))
                .flatten();
            if is_delay_binding(class.map(AsRef::as_ref)) && volume_name(&claim).is_empty() {
                if let Some(class) = class {
                    data.classes.insert(class_name.clone(), class.clone());
                }
                data.volumes_by_class
                    .entry(class_name.clone())
                    .or_insert_with(|| cache.volumes_of_class(&class_name));
                data.delayed.push(claim);
            } else {
                immediate = true;
            }
        }
        if immediate {
            return Err(Failure::unresolvable(NAME, ERR_UNBOUND_IMMEDIATE));
        }
        state.write(NAME, data);
        Ok(PreFilter::Continue)
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        let Some(data) = state.read::<ClaimsState>(NAME) else {
            return Ok(());
        };
        find_pod_volumes(data, &node.name, &node.labels).map(|_| ())
    }

    fn reserve(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        node: &str,
        snapshot: &mut Snapshot,
    ) -> Result<(), Failure> {
        let Some(data) = state.read::<ClaimsState>(NAME) else {
            return Ok(());
        };
        if data.delayed.is_empty() {
            return Ok(());
        }
        let labels = snapshot
            .node(node)
            .map(|n| n.labels.clone())
            .unwrap_or_default();
        let found = find_pod_volumes(data, node, &labels)?;
        let mut reserved = PodVolumes::default();
        for (volume, claim) in found.static_bindings {
            let volume = match bind_volume_to_claim(&volume, &claim) {
                Some(bound) => {
                    snapshot.volumes.assume_volume(bound.clone());
                    Arc::new(bound)
                }
                None => volume,
            };
            reserved.static_bindings.push((volume, claim));
        }
        for claim in found.dynamic_provisions {
            let mut annotated = (*claim).clone();
            annotated
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(ANN_SELECTED_NODE.into(), node.into());
            snapshot.volumes.assume_claim(annotated.clone());
            reserved.dynamic_provisions.push(Arc::new(annotated));
        }
        if let Some(data) = state.read_mut::<ClaimsState>(NAME) {
            data.reserved = Some(reserved);
        }
        Ok(())
    }

    fn unreserve(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        _node: &str,
        snapshot: &mut Snapshot,
    ) {
        let Some(reserved) = state
            .read_mut::<ClaimsState>(NAME)
            .and_then(|d| d.reserved.take())
        else {
            return;
        };
        for (volume, _) in &reserved.static_bindings {
            snapshot
                .volumes
                .restore_volume(volume.metadata.name.as_deref().unwrap_or_default());
        }
        for claim in &reserved.dynamic_provisions {
            snapshot.volumes.restore_claim(&claim_name(claim));
        }
    }

    fn pre_bind(
        &self,
        client: &kube::Client,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        node: &str,
    ) -> Option<PreBindTask> {
        let reserved = state.read::<ClaimsState>(NAME)?.reserved.clone()?;
        if reserved.static_bindings.is_empty() && reserved.dynamic_provisions.is_empty() {
            return None;
        }
        let (client, pod, node) = (client.clone(), pod.clone(), node.to_owned());
        let (timeout, poll) = (self.bind_timeout, self.poll);
        Some(Box::pin(async move {
            bind_pod_volumes(&client, &pod, &node, &reserved, timeout, poll).await
        }))
    }
}

/// Writes the reserved bindings and waits until the binder has completed them (upstream's
/// `BindPodVolumes`); fails when the pod or a binding is undone, or after `timeout`.
async fn bind_pod_volumes(
    client: &kube::Client,
    pod: &PodInfo,
    node: &str,
    reserved: &PodVolumes,
    timeout: Duration,
    poll: Duration,
) -> Result<(), String> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &pod.namespace);
    let pp = PostParams::default();
    for (volume, _) in &reserved.static_bindings {
        let name = volume.metadata.name.as_deref().unwrap_or_default();
        volumes
            .replace(name, &pp, volume)
            .await
            .map_err(|e| e.to_string())?;
    }
    for claim in &reserved.dynamic_provisions {
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        claims
            .replace(name, &pp, claim)
            .await
            .map_err(|e| e.to_string())?;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if bindings_done(client, pod, node, reserved).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() + poll > deadline {
            return Err("binding volumes: timed out waiting for the condition".into());
        }
        tokio::time::sleep(poll).await;
    }
}

/// Whether every binding the pod waits for is complete (upstream's `checkBindings`).
async fn bindings_done(
    client: &kube::Client,
    pod: &PodInfo,
    node: &str,
    reserved: &PodVolumes,
) -> Result<bool, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    match pods.get_opt(&pod.name).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err("pod does not exist any more".into()),
        Err(err) => return Err(err.to_string()),
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &pod.namespace);
    for (volume, claim) in &reserved.static_bindings {
        let name = volume.metadata.name.as_deref().unwrap_or_default();
        let current = volumes
            .get(name)
            .await
            .map_err(|e| format!("failed to check binding: {e}"))?;
        if claim_ref(&current).is_none_or(|r| r.uid.as_deref().unwrap_or_default().is_empty()) {
            return Err(format!("ClaimRef got reset for pv {name:?}"));
        }
        let claim_name = claim.metadata.name.as_deref().unwrap_or_default();
        let current = claims
            .get(claim_name)
            .await
            .map_err(|e| format!("failed to check binding: {e}"))?;
        if !is_fully_bound(&current) {
            return Ok(false);
        }
    }
    for claim in &reserved.dynamic_provisions {
        let claim_name = claim.metadata.name.as_deref().unwrap_or_default();
        let current = claims
            .get(claim_name)
            .await
            .map_err(|e| format!("failed to check provisioning pvc: {e}"))?;
        if annotation(&current.metadata, ANN_SELECTED_NODE) != Some(node) {
            return Err(format!("provisioning failed for PVC {claim_name:?}"));
        }
        if !is_fully_bound(&current) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
#[path = "volumebinding_tests.rs"]
mod tests;
