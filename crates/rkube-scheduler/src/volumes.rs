//! Persistent volumes, claims and storage classes as the volume plugins need them, with
//! upstream's assume cache: a volume or claim the scheduler has decided to bind (Reserve) is
//! *assumed* in its new form until the informer brings a newer version of it, so the next
//! pod does not take the same volume; Unreserve restores the informer's version.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use rkube_api::volume::volume_class;

/// The storage objects the scheduler knows, by name (claims by `namespace/name`).
#[derive(Default)]
pub struct VolumeCache {
    volumes: HashMap<String, Arc<PersistentVolume>>,
    claims: HashMap<String, Arc<PersistentVolumeClaim>>,
    classes: HashMap<String, Arc<StorageClass>>,
    assumed_volumes: HashMap<String, Arc<PersistentVolume>>,
    assumed_claims: HashMap<String, Arc<PersistentVolumeClaim>>,
}

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

impl VolumeCache {
    /// The volume with this name (as assumed, if it is).
    pub fn volume(&self, name: &str) -> Option<&Arc<PersistentVolume>> {
        self.assumed_volumes
            .get(name)
            .or_else(|| self.volumes.get(name))
    }

    /// The claim `namespace/name` (as assumed, if it is).
    pub fn claim(&self, key: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.assumed_claims
            .get(key)
            .or_else(|| self.claims.get(key))
    }

    /// The storage class with this name.
    pub fn class(&self, name: &str) -> Option<&Arc<StorageClass>> {
        self.classes.get(name)
    }

    /// Every volume of this storage class (`""`: without a class), as assumed.
    pub fn volumes_of_class(&self, class: &str) -> Vec<Arc<PersistentVolume>> {
        self.volumes
            .keys()
            .filter_map(|name| self.volume(name))
            .filter(|v| volume_class(v) == class)
            .cloned()
            .collect()
    }

    /// Takes a volume from the informer; an assumption about it ends when the informer's
    /// version differs from the one the assumption was made on.
    pub fn apply_volume(&mut self, volume: PersistentVolume) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        if self
            .assumed_volumes
            .get(&name)
            .is_some_and(|a| a.metadata.resource_version != volume.metadata.resource_version)
        {
            self.assumed_volumes.remove(&name);
        }
        self.volumes.insert(name, Arc::new(volume));
    }

    /// Forgets a deleted volume.
    pub fn remove_volume(&mut self, name: &str) {
        self.volumes.remove(name);
        self.assumed_volumes.remove(name);
    }

    /// Takes a claim from the informer (see [`VolumeCache::apply_volume`]).
    pub fn apply_claim(&mut self, claim: PersistentVolumeClaim) {
        let key = claim_key(&claim);
        if self
            .assumed_claims
            .get(&key)
            .is_some_and(|a| a.metadata.resource_version != claim.metadata.resource_version)
        {
            self.assumed_claims.remove(&key);
        }
        self.claims.insert(key, Arc::new(claim));
    }

    /// Forgets a deleted claim.
    pub fn remove_claim(&mut self, key: &str) {
        self.claims.remove(key);
        self.assumed_claims.remove(key);
    }

    /// Takes a storage class from the informer.
    pub fn apply_class(&mut self, class: StorageClass) {
        let name = class.metadata.name.clone().unwrap_or_default();
        self.classes.insert(name, Arc::new(class));
    }

    /// Forgets a deleted storage class.
    pub fn remove_class(&mut self, name: &str) {
        self.classes.remove(name);
    }

    /// Assumes a volume in the form the scheduler is about to write.
    pub fn assume_volume(&mut self, volume: PersistentVolume) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        self.assumed_volumes.insert(name, Arc::new(volume));
    }

    /// Drops the assumption about a volume.
    pub fn restore_volume(&mut self, name: &str) {
        self.assumed_volumes.remove(name);
    }

    /// Assumes a claim in the form the scheduler is about to write.
    pub fn assume_claim(&mut self, claim: PersistentVolumeClaim) {
        self.assumed_claims
            .insert(claim_key(&claim), Arc::new(claim));
    }

    /// Drops the assumption about a claim.
    pub fn restore_claim(&mut self, key: &str) {
        self.assumed_claims.remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pv(rv: &str, claimed: bool) -> PersistentVolume {
        let mut v = json!({"metadata": {"name": "v", "resourceVersion": rv}, "spec": {}});
        if claimed {
            v["spec"]["claimRef"] = json!({"namespace": "ns", "name": "c"});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn an_assumed_volume_holds_until_the_informer_has_a_newer_version() {
        let mut cache = VolumeCache::default();
        cache.apply_volume(pv("1", false));
        cache.assume_volume(pv("1", true));
        assert!(
            cache
                .volume("v")
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .is_some()
        );
        // The same version again (a relist) keeps the assumption.
        cache.apply_volume(pv("1", false));
        assert!(
            cache
                .volume("v")
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .is_some()
        );
        cache.restore_volume("v");
        assert!(
            cache
                .volume("v")
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .is_none()
        );
        cache.assume_volume(pv("1", true));
        cache.apply_volume(pv("2", false));
        assert!(
            cache
                .volume("v")
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .is_none()
        );
    }
}
