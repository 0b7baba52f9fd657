//! Persistent volumes, claims and storage classes as the volume plugins need them.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

/// The storage objects the scheduler knows, by name (claims by `namespace/name`).
#[derive(Default)]
pub struct VolumeCache {
    /// Persistent volumes.
    pub volumes: HashMap<String, PersistentVolume>,
    /// Claims.
    pub claims: HashMap<String, PersistentVolumeClaim>,
    /// Storage classes.
    pub classes: HashMap<String, StorageClass>,
}
