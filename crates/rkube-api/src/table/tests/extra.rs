//! Kinds upstream prints that rkube does not serve yet.

use serde_json::json;

use super::{ago, meta, row};
use crate::table::{cells, columns};

const FLOW: &str = "flowcontrol.apiserver.k8s.io";

#[test]
fn flow_schemas_and_priority_levels_show_their_configuration() {
    let schema = json!({"metadata": meta("system-nodes", 60), "spec": {
        "priorityLevelConfiguration": {"name": "system"}, "matchingPrecedence": 500,
        "distinguisherMethod": {"type": "ByUser"}},
        "status": {"conditions": [{"type": "Dangling", "status": "False"}]}});
    assert_eq!(
        row(FLOW, "FlowSchema", &schema),
        json!(["system-nodes", "system", 500, "ByUser", "60s", "False"])
    );
    assert_eq!(
        row(FLOW, "FlowSchema", &json!({})),
        json!(["", "", 0, "<none>", "<unknown>", "?"])
    );
    let limited = json!({"metadata": meta("workload-low", 60), "spec": {"type": "Limited", "limited": {
        "nominalConcurrencyShares": 100,
        "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
    let exempt = json!({"metadata": meta("exempt", 60), "spec": {"type": "Exempt"}});
    assert_eq!(
        row(FLOW, "PriorityLevelConfiguration", &limited),
        json!(["workload-low", "Limited", 100, 128, 6, 50, "60s"])
    );
    assert_eq!(
        row(FLOW, "PriorityLevelConfiguration", &exempt),
        json!([
            "exempt", "Exempt", "<none>", "<none>", "<none>", "<none>", "60s"
        ])
    );
}

#[test]
fn dra_kinds_show_claim_state_and_slice_pools() {
    let mut claim = json!({"metadata": meta("gpu", 60), "status": {
        "allocation": {}, "reservedFor": [{"resource": "pods", "name": "p"}]}});
    assert_eq!(
        row("resource.k8s.io", "ResourceClaim", &claim),
        json!(["gpu", "allocated,reserved", "60s"])
    );
    claim["metadata"]["deletionTimestamp"] = json!(ago(1));
    claim["status"] = json!({});
    assert_eq!(
        row("resource.k8s.io", "ResourceClaim", &claim)[1],
        json!("deleted")
    );
    assert_eq!(
        row("resource.k8s.io", "ResourceClaim", &json!({}))[1],
        json!("pending")
    );
    let slice = json!({"metadata": meta("node-1-gpu", 60), "spec": {
        "nodeName": "node-1", "driver": "gpu.example.com", "pool": {"name": "node-1"}}});
    assert_eq!(
        row("resource.k8s.io", "ResourceSlice", &slice),
        json!(["node-1-gpu", "node-1", "gpu.example.com", "node-1", "60s"])
    );
    assert_eq!(
        row(
            "resource.k8s.io",
            "DeviceClass",
            &json!({"metadata": meta("gpu", 60)})
        ),
        json!(["gpu", "60s"])
    );
}

#[test]
fn networking_storage_and_node_extras_print_like_upstream() {
    let cidr = json!({"metadata": meta("kubernetes", 60), "spec": {"cidrs": ["10.96.0.0/12", "fd00::/108"]}});
    assert_eq!(
        row("networking.k8s.io", "ServiceCIDR", &cidr),
        json!(["kubernetes", "10.96.0.0/12,fd00::/108", "60s"])
    );
    let ip = json!({"metadata": meta("10.96.0.1", 60), "spec": {"parentRef": {
        "group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
    // Upstream sends the age as a third cell with no column of its own.
    assert_eq!(columns("networking.k8s.io", "IPAddress").len(), 2);
    assert_eq!(
        cells("networking.k8s.io", "IPAddress", &ip, super::now()),
        vec![
            json!("10.96.0.1"),
            json!("services/default/kubernetes"),
            json!("60s")
        ]
    );
    let capacity =
        json!({"metadata": meta("csisc-1", 60), "storageClassName": "fast", "capacity": "2048Mi"});
    assert_eq!(
        row("storage.k8s.io", "CSIStorageCapacity", &capacity),
        json!(["csisc-1", "fast", "2Gi"])
    );
    assert_eq!(
        row("storage.k8s.io", "CSIStorageCapacity", &json!({}))[2],
        json!("<unset>")
    );
    let vac = json!({"metadata": {"name": "gold", "creationTimestamp": ago(60), "annotations": {
        "volumeattributesclass.alpha.kubernetes.io/is-default-class": "true"}}, "driverName": "csi.example.com"});
    assert_eq!(
        row("storage.k8s.io", "VolumeAttributesClass", &vac),
        json!(["gold (default)", "csi.example.com", "60s"])
    );
    let runtime = json!({"metadata": meta("gvisor", 60), "handler": "runsc"});
    assert_eq!(
        row("node.k8s.io", "RuntimeClass", &runtime),
        json!(["gvisor", "runsc", "60s"])
    );
}

#[test]
fn apiserver_internal_kinds_print_like_upstream() {
    let version = json!({"metadata": meta("apps.deployments", 60), "status": {"storageVersions": [
        {"apiServerID": "a", "encodingVersion": "apps/v1"}, {"apiServerID": "b", "encodingVersion": "apps/v1"}]}});
    assert_eq!(
        row("internal.apiserver.k8s.io", "StorageVersion", &version),
        json!(["apps.deployments", "<unset>", "a=apps/v1,b=apps/v1", "60s"])
    );
    let migration = json!({"metadata": meta("m", 60), "spec": {"resource": {
        "group": "apps", "version": "v1", "resource": "deployments"}}});
    assert_eq!(
        row(
            "storagemigration.k8s.io",
            "StorageVersionMigration",
            &migration
        ),
        json!(["m", "deployments.v1.apps"])
    );
    let candidate = json!({"metadata": meta("kcm-1", 60), "spec": {
        "leaseName": "kube-controller-manager", "binaryVersion": "1.33.0", "emulationVersion": "1.33"}});
    assert_eq!(
        row("coordination.k8s.io", "LeaseCandidate", &candidate),
        json!(["kcm-1", "kube-controller-manager", "1.33.0", "1.33", "60s"])
    );
    assert_eq!(
        row(
            "certificates.k8s.io",
            "ClusterTrustBundle",
            &json!({"metadata": meta("b", 1)})
        ),
        json!(["b", "<none>"])
    );
    let component = json!({"metadata": {"name": "etcd-0"}, "conditions": [
        {"type": "Healthy", "status": "True", "message": "ok"}]});
    assert_eq!(
        row("", "ComponentStatus", &component),
        json!(["etcd-0", "Healthy", "ok", ""])
    );
}
