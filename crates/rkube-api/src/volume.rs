//! How PersistentVolumes are matched to claims: the rules the PersistentVolume binder
//! controller and the scheduler's VolumeBinding plugin share (upstream keeps them in
//! `component-helpers/storage/volume`), with upstream's annotations.

use std::collections::{BTreeSet, HashSet};

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::quota::{Milli, parse_quantity};
use crate::selector::LabelSelector;

/// On a claim: the binder finished binding it (the volume points back at it).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a volume or claim: the binder, not the user, set the binding.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a claim: the node the scheduler chose, for a provisioner to create the volume near.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a claim: the provisioner asked to create its volume.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta form of [`ANN_STORAGE_PROVISIONER`], still written alongside it.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// On a volume: the provisioner that created it.
pub const ANN_DYNAMICALLY_PROVISIONED: &str = "pv.kubernetes.io/provisioned-by";
/// The beta storage class annotation, which wins over `storageClassName` when present.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The provisioner of classes that cannot provision (local volumes).
pub const NOT_SUPPORTED_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// Whether `meta` carries the annotation `key`.
pub fn has_annotation(meta: &ObjectMeta, key: &str) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// The annotation `key` of `meta`.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// A claim's storage class (`""` for none), as upstream's `GetPersistentVolumeClaimClass`.
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    if let Some(class) = annotation(&claim.metadata, ANN_BETA_STORAGE_CLASS) {
        return class;
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// A volume's storage class (`""` for none), as upstream's `GetPersistentVolumeClass`.
pub fn volume_class(volume: &PersistentVolume) -> &str {
    if let Some(class) = annotation(&volume.metadata, ANN_BETA_STORAGE_CLASS) {
        return class;
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

fn storage_of(
    list: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Milli {
    list.and_then(|l| l.get("storage"))
        .and_then(|q| parse_quantity(&q.0))
        .map_or(Milli(0), |(m, _)| m)
}

/// The storage a claim requests (0 when it names none).
pub fn claim_request(claim: &PersistentVolumeClaim) -> Milli {
    storage_of(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

/// The storage a volume offers.
pub fn volume_capacity(volume: &PersistentVolume) -> Milli {
    storage_of(volume.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

/// A claim's access modes.
pub fn claim_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

/// A volume's access modes.
pub fn volume_modes(volume: &PersistentVolume) -> &[String] {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

/// Whether the volume offers every access mode the claim asks for.
pub fn access_modes_satisfied(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume_modes(volume);
    claim_modes(claim).iter().all(|m| offered.contains(m))
}

/// Whether claim and volume disagree on `volumeMode` (unset is `Filesystem`).
pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let claim_mode = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let volume_mode = volume
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    claim_mode != volume_mode
}

/// The volume's `spec.claimRef`.
pub fn claim_ref(volume: &PersistentVolume) -> Option<&ObjectReference> {
    volume.spec.as_ref()?.claim_ref.as_ref()
}

/// Whether the volume's claimRef names this claim (and its uid, when the ref has one).
pub fn is_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = claim_ref(volume) else {
        return false;
    };
    r.name == claim.metadata.name
        && r.namespace.as_deref().unwrap_or_default()
            == claim.metadata.namespace.as_deref().unwrap_or_default()
        && r.uid
            .as_deref()
            .is_none_or(|uid| uid.is_empty() || Some(uid) == claim.metadata.uid.as_deref())
}

/// The claimRef a volume bound to `claim` carries.
pub fn reference_to(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The volume as it is once bound to `claim` (upstream's `GetBindVolumeToClaim`): claimRef
/// set, and `bound-by-controller` when the volume was not already pre-bound to the claim.
/// `None` when nothing changes.
pub fn bind_volume_to_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Option<PersistentVolume> {
    let mut bound = volume.clone();
    let mut dirty = false;
    let by_controller = !is_bound_to_claim(volume, claim);
    let current = claim_ref(volume);
    if current.is_none_or(|r| {
        r.name != claim.metadata.name
            || r.namespace != claim.metadata.namespace
            || r.uid != claim.metadata.uid
    }) {
        bound.spec.get_or_insert_default().claim_ref = Some(reference_to(claim));
        dirty = true;
    }
    if by_controller && !has_annotation(&bound.metadata, ANN_BOUND_BY_CONTROLLER) {
        bound
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        dirty = true;
    }
    dirty.then_some(bound)
}

/// A volume's `status.phase`.
pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// A claim's `status.phase`.
pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// A claim's `spec.volumeName` (`""` when unset).
pub fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

/// Whether the binder has finished with the claim: it names a volume and carries
/// `bind-completed`.
pub fn is_fully_bound(claim: &PersistentVolumeClaim) -> bool {
    !volume_name(claim).is_empty() && has_annotation(&claim.metadata, ANN_BIND_COMPLETED)
}

/// Whether binding of the claim waits for a pod to be scheduled: its class exists and says
/// `WaitForFirstConsumer` (upstream's `IsDelayBindingMode`; a missing class binds at once).
pub fn is_delay_binding(class: Option<&StorageClass>) -> bool {
    class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

/// Whether a delayed claim has been handed to provisioning (the scheduler chose a node).
pub fn is_delay_binding_provisioning(claim: &PersistentVolumeClaim) -> bool {
    has_annotation(&claim.metadata, ANN_SELECTED_NODE)
}

/// Why a volume cannot serve a claim that names it (upstream's `checkVolumeSatisfyClaim`).
pub fn check_volume_satisfies_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if claim_request(claim) > volume_capacity(volume) {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_satisfied(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

/// The smallest volume among `volumes` that can serve `claim` (upstream's
/// `FindMatchingVolume`). A volume pre-bound to the claim wins outright (or, on the
/// scheduler's path, `None` if its node affinity does not fit). Otherwise a candidate must be
/// Available, unclaimed, big enough, of the claim's class and volume mode, match the claim's
/// selector, and not be in `excluded`. `node_fits` is the scheduler's node affinity check
/// (`None` on the controller's path, which also leaves delayed claims to the scheduler and
/// leaves access modes to its caller).
pub fn find_matching_volume<'a, V>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a V>,
    node_fits: Option<&dyn Fn(&PersistentVolume) -> bool>,
    excluded: &HashSet<String>,
    delay_binding: bool,
) -> Result<Option<&'a V>, String>
where
    V: AsRef<PersistentVolume> + 'a,
{
    let requested = claim_request(claim);
    let class = claim_class(claim);
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(s) => Some(LabelSelector::from_api(s).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}: {e}",
                claim.metadata.name.as_deref().unwrap_or_default()
            )
        })?),
        None => None,
    };
    let mut smallest: Option<(&'a V, Milli)> = None;
    for item in volumes {
        let volume = item.as_ref();
        let name = volume.metadata.name.as_deref().unwrap_or_default();
        if excluded.contains(name) {
            continue;
        }
        if claim_ref(volume).is_some() && !is_bound_to_claim(volume, claim) {
            continue;
        }
        let capacity = volume_capacity(volume);
        if capacity < requested || volume_mode_mismatch(claim, volume) {
            continue;
        }
        if volume.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let fits_node = node_fits.is_none_or(|fits| fits(volume));
        if is_bound_to_claim(volume, claim) {
            return Ok(fits_node.then_some(item));
        }
        if node_fits.is_none() && delay_binding {
            // The scheduler binds delayed claims once it has chosen a node.
            continue;
        }
        if volume_phase(volume) != "Available" {
            continue;
        }
        let labels = volume.metadata.labels.clone().unwrap_or_default();
        if selector.as_ref().is_some_and(|s| !s.matches(&labels)) {
            continue;
        }
        if volume_class(volume) != class || !fits_node {
            continue;
        }
        if node_fits.is_some() && !access_modes_satisfied(claim, volume) {
            continue;
        }
        if smallest.is_none_or(|(_, size)| size > capacity) {
            smallest = Some((item, capacity));
        }
    }
    Ok(smallest.map(|(v, _)| v))
}

/// The controller's choice of volume for a claim (upstream's `persistentVolumeOrderedIndex
/// .findBestMatchForClaim`): volumes are grouped by their set of access modes; the groups
/// that offer every mode the claim asks for are tried fewest modes first, and the first
/// group with a match gives the smallest matching volume.
pub fn find_best_match_for_claim<'a, V>(
    claim: &PersistentVolumeClaim,
    volumes: &'a [V],
    delay_binding: bool,
) -> Result<Option<&'a V>, String>
where
    V: AsRef<PersistentVolume>,
{
    let wanted = claim_modes(claim);
    let mut groups: Vec<BTreeSet<&str>> = Vec::new();
    for v in volumes {
        let modes: BTreeSet<&str> = volume_modes(v.as_ref())
            .iter()
            .map(String::as_str)
            .collect();
        if !groups.contains(&modes) {
            groups.push(modes);
        }
    }
    groups.retain(|g| wanted.iter().all(|m| g.contains(m.as_str())));
    groups.sort_by_key(|g| g.len());
    let none = HashSet::new();
    for group in groups {
        let members = volumes.iter().filter(|v| {
            let modes: BTreeSet<&str> = volume_modes(v.as_ref())
                .iter()
                .map(String::as_str)
                .collect();
            modes == group
        });
        if let Some(found) = find_matching_volume(claim, members, None, &none, delay_binding)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
