//! VolumeRestrictions (upstream's `volumerestrictions` plugin): a ReadWriteOncePod claim is
//! used by one pod at a time, and the in-tree disks that allow one writer (GCE PD, AWS EBS,
//! RBD, iSCSI) are not mounted twice on a node unless every mount is read-only.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Pod, Volume};
use rkube_api::volume::claim_modes;

use crate::cache::Snapshot;
use crate::framework::{CycleState, Failure, Plugin, PreFilter, events};
use crate::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "VolumeRestrictions";
/// A disk the pod mounts is already mounted by a pod on the node.
pub const ERR_DISK_CONFLICT: &str = "node(s) had no available disk";
/// A ReadWriteOncePod claim of the pod is in use.
pub const ERR_READ_WRITE_ONCE_POD_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// The plugin.
pub struct VolumeRestrictions;

/// The pod's ReadWriteOncePod claims and how many scheduled pods use them.
#[derive(Clone, Default)]
struct RestrictionsState {
    read_write_once_pod: HashSet<String>,
    conflicts: i64,
}

impl RestrictionsState {
    /// How many of the pod's ReadWriteOncePod claims `other` uses.
    fn uses(&self, pod: &PodInfo, other: &PodInfo) -> i64 {
        if other.namespace != pod.namespace || other.key == pod.key {
            return 0;
        }
        other
            .pvc_claims()
            .filter(|c| self.read_write_once_pod.contains(*c))
            .count() as i64
    }
}

/// Whether the volume is of a kind that two pods on one node may not share.
pub(crate) fn needs_check(volume: &Volume) -> bool {
    volume.gce_persistent_disk.is_some()
        || volume.aws_elastic_block_store.is_some()
        || volume.rbd.is_some()
        || volume.iscsi.is_some()
}

fn overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.contains(x))
}

/// Whether `volume` conflicts with a volume of `pod` (upstream's `isVolumeConflict`).
pub fn is_volume_conflict(volume: &Volume, pod: &Pod) -> bool {
    let existing = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
    existing.unwrap_or_default().iter().any(|other| {
        if let (Some(a), Some(b)) = (&volume.gce_persistent_disk, &other.gce_persistent_disk)
            && a.pd_name == b.pd_name
            && !(a.read_only == Some(true) && b.read_only == Some(true))
        {
            return true;
        }
        if let (Some(a), Some(b)) = (
            &volume.aws_elastic_block_store,
            &other.aws_elastic_block_store,
        ) && a.volume_id == b.volume_id
        {
            return true;
        }
        if let (Some(a), Some(b)) = (&volume.iscsi, &other.iscsi)
            && a.iqn == b.iqn
            && !(a.read_only == Some(true) && b.read_only == Some(true))
        {
            return true;
        }
        if let (Some(a), Some(b)) = (&volume.rbd, &other.rbd)
            && overlap(&a.monitors, &b.monitors)
            && a.pool.as_deref().unwrap_or("rbd") == b.pool.as_deref().unwrap_or("rbd")
            && a.image == b.image
            && !(a.read_only == Some(true) && b.read_only == Some(true))
        {
            return true;
        }
        false
    })
}

fn pod_volumes(pod: &PodInfo) -> &[Volume] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events(&self) -> u32 {
        events::POD_DELETE
            | events::NODE_ADD
            | events::NODE_LABEL
            | events::NODE_TAINT
            | events::VOLUME
    }

    fn filters(&self) -> bool {
        true
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<PreFilter, Failure> {
        let check_disks = pod_volumes(pod).iter().any(needs_check);
        let mut data = RestrictionsState::default();
        for name in pod.pvc_claims() {
            let Some(claim) = snapshot.volumes.claim(&format!("{}/{name}", pod.namespace)) else {
                return Err(Failure::unresolvable(
                    NAME,
                    format!("persistentvolumeclaim {name:?} not found"),
                ));
            };
            if claim_modes(claim).iter().any(|m| m == "ReadWriteOncePod") {
                data.read_write_once_pod.insert(name.to_owned());
            }
        }
        if !data.read_write_once_pod.is_empty() {
            // At most one scheduled pod can hold each such claim.
            for claim in &data.read_write_once_pod {
                let used = snapshot.nodes.iter().flat_map(|n| &n.pods).any(|p| {
                    p.namespace == pod.namespace
                        && p.key != pod.key
                        && p.pvc_claims().any(|c| c == claim)
                });
                if used {
                    data.conflicts += 1;
                }
            }
        }
        if !check_disks && data.conflicts == 0 {
            return Ok(PreFilter::Skip);
        }
        state.write(NAME, data);
        Ok(PreFilter::Continue)
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
        for volume in pod_volumes(pod).iter().filter(|v| needs_check(v)) {
            if node.pods.iter().any(|p| is_volume_conflict(volume, &p.pod)) {
                return Err(Failure::unschedulable(NAME, ERR_DISK_CONFLICT));
            }
        }
        if state
            .read::<RestrictionsState>(NAME)
            .is_some_and(|s| s.conflicts > 0)
        {
            return Err(Failure::unschedulable(
                NAME,
                ERR_READ_WRITE_ONCE_POD_CONFLICT,
            ));
        }
        Ok(())
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, _: &NodeInfo) {
        if let Some(data) = state.read_mut::<RestrictionsState>(NAME) {
            data.conflicts += data.uses(pod, added);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, removed: &PodInfo, _: &NodeInfo) {
        if let Some(data) = state.read_mut::<RestrictionsState>(NAME) {
            data.conflicts -= data.uses(pod, removed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::testing::{pod_json, with_node};

    fn snapshot_with_claims(claims: &[(&str, &str)]) -> Snapshot {
        let mut snapshot = Snapshot::new();
        for (name, mode) in claims {
            snapshot.volumes.apply_claim(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"accessModes": [mode]},
                }))
                .unwrap(),
            );
        }
        snapshot
    }

    fn claim_pod(name: &str, claim: &str) -> PodInfo {
        pod_json(json!({
            "metadata": {"name": name},
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
        }))
    }

    #[test]
    fn a_read_write_once_pod_claim_in_use_rejects_every_node_until_its_user_goes() {
        let mut snapshot =
            snapshot_with_claims(&[("solo", "ReadWriteOncePod"), ("shared", "ReadWriteOnce")]);
        snapshot.upsert_node(k8s_openapi::api::core::v1::Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let holder = Arc::new(claim_pod("holder", "solo"));
        snapshot.add_pod(holder.clone(), "n1", false);
        snapshot.add_pod(Arc::new(claim_pod("sharer", "shared")), "n1", false);
        let plugin = VolumeRestrictions;
        let other_node = with_node("n2", json!({}));

        // A claim without ReadWriteOncePod and no disks: nothing to check.
        let mut state = CycleState::default();
        let p = claim_pod("p", "shared");
        assert!(matches!(
            plugin.pre_filter(&mut state, &p, &snapshot),
            Ok(PreFilter::Skip)
        ));

        let mut state = CycleState::default();
        let p = claim_pod("p", "solo");
        assert!(matches!(
            plugin.pre_filter(&mut state, &p, &snapshot),
            Ok(PreFilter::Continue)
        ));
        let err = plugin.filter(&state, &p, &other_node).unwrap_err();
        assert_eq!(err.reasons, vec![ERR_READ_WRITE_ONCE_POD_CONFLICT]);
        assert_eq!(
            err.code,
            crate::framework::Code::Unschedulable,
            "preemption may help"
        );
        // Preemption's what-if without the holder passes.
        let node = snapshot.node("n1").unwrap().clone();
        plugin.remove_pod(&mut state, &p, &holder, &node);
        assert!(plugin.filter(&state, &p, &other_node).is_ok());
        plugin.add_pod(&mut state, &p, &holder, &node);
        assert!(plugin.filter(&state, &p, &other_node).is_err());

        let mut state = CycleState::default();
        let missing = claim_pod("p", "nope");
        let err = plugin
            .pre_filter(&mut state, &missing, &snapshot)
            .err()
            .unwrap();
        assert_eq!(
            err.reasons,
            vec!["persistentvolumeclaim \"nope\" not found"]
        );
    }

    #[test]
    fn single_writer_disks_conflict_unless_all_mounts_are_read_only() {
        let cases = [
            (
                json!({"gcePersistentDisk": {"pdName": "d"}}),
                json!({"gcePersistentDisk": {"pdName": "d"}}),
                true,
            ),
            (
                json!({"gcePersistentDisk": {"pdName": "d", "readOnly": true}}),
                json!({"gcePersistentDisk": {"pdName": "d", "readOnly": true}}),
                false,
            ),
            (
                json!({"gcePersistentDisk": {"pdName": "d"}}),
                json!({"gcePersistentDisk": {"pdName": "e"}}),
                false,
            ),
            (
                json!({"awsElasticBlockStore": {"volumeID": "v", "readOnly": true}}),
                json!({"awsElasticBlockStore": {"volumeID": "v", "readOnly": true}}),
                true,
            ),
            (
                json!({"rbd": {"monitors": ["a", "b"], "image": "i"}}),
                json!({"rbd": {"monitors": ["b"], "image": "i"}}),
                true,
            ),
            (
                json!({"rbd": {"monitors": ["a"], "image": "i"}}),
                json!({"rbd": {"monitors": ["b"], "image": "i"}}),
                false,
            ),
            (
                json!({"iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0}}),
                json!({"iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0}}),
                true,
            ),
        ];
        for (mine, theirs, conflict) in cases {
            let mut a = json!({"name": "v"});
            let mut b = json!({"name": "v"});
            for (k, v) in mine.as_object().unwrap() {
                a[k] = v.clone();
            }
            for (k, v) in theirs.as_object().unwrap() {
                b[k] = v.clone();
            }
            let pod = pod_json(json!({"volumes": [a]}));
            let existing = Arc::new(pod_json(
                json!({"metadata": {"name": "old"}, "volumes": [b]}),
            ));
            let mut node = with_node("n", json!({}));
            node.add_pod(existing);
            let plugin = VolumeRestrictions;
            let mut state = CycleState::default();
            let snapshot = Snapshot::new();
            assert!(plugin.pre_filter(&mut state, &pod, &snapshot).is_ok());
            let result = plugin.filter(&state, &pod, &node);
            assert_eq!(result.is_err(), conflict, "{mine} vs {theirs}");
            if let Err(err) = result {
                assert_eq!(err.reasons, vec![ERR_DISK_CONFLICT]);
            }
        }
    }
}
