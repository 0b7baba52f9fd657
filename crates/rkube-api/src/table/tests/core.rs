//! Core-group kinds other than pods.

use serde_json::json;

use super::{ago, headers, meta, row};

#[test]
fn a_cluster_ip_service_shows_ports_and_selector() {
    let object = json!({"metadata": meta("web", 600), "spec": {
        "type": "ClusterIP", "clusterIP": "10.96.0.10",
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        "selector": {"app": "web", "tier": "front"}}});
    let (normal, wide) = headers("", "Service");
    assert_eq!(
        normal,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(wide, ["SELECTOR"]);
    assert_eq!(
        row("", "Service", &object),
        json!([
            "web",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "80/TCP,53/UDP",
            "10m",
            "app=web,tier=front"
        ])
    );
}

#[test]
fn a_node_port_service_shows_node_ports_and_external_ips() {
    let object = json!({"metadata": meta("np", 60), "spec": {
        "type": "NodePort", "clusterIPs": ["10.96.1.1"], "externalIPs": ["1.2.3.4"],
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}});
    assert_eq!(
        row("", "Service", &object),
        json!([
            "np",
            "NodePort",
            "10.96.1.1",
            "1.2.3.4",
            "80:30080/TCP",
            "60s",
            "<none>"
        ])
    );
}

#[test]
fn a_load_balancer_is_pending_until_it_has_an_ingress_point() {
    let mut object = json!({"metadata": meta("lb", 60), "spec": {
        "type": "LoadBalancer", "clusterIPs": ["10.96.2.2"],
        "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}});
    assert_eq!(row("", "Service", &object)[3], json!("<pending>"));
    object["status"] = json!({"loadBalancer": {"ingress": [
        {"hostname": "lb.example.com"}, {"ip": "203.0.113.7"}, {"ip": "203.0.113.7"}]}});
    assert_eq!(
        row("", "Service", &object)[3],
        json!("203.0.113.7,lb.example.com")
    );
    object["spec"]["externalIPs"] = json!(["1.2.3.4"]);
    assert_eq!(
        row("", "Service", &object)[3],
        json!("203.0.113.7,lb.example.com,1.2.3.4")
    );
}

#[test]
fn an_external_name_service_shows_the_name_and_no_cluster_ip() {
    let object = json!({"metadata": meta("ext", 60), "spec": {
        "type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(
        row("", "Service", &object),
        json!([
            "ext",
            "ExternalName",
            "<none>",
            "db.example.com",
            "<none>",
            "60s",
            "<none>"
        ])
    );
}

#[test]
fn endpoints_list_three_addresses_then_how_many_more() {
    let object = json!({"metadata": meta("web", 120), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}],
         "ports": [{"port": 8080}, {"port": 9090}]}]});
    assert_eq!(
        row("", "Endpoints", &object),
        json!([
            "web",
            "10.0.0.1:8080,[fd00::2]:8080,10.0.0.1:9090 + 1 more...",
            "2m"
        ])
    );
    let headless =
        json!({"metadata": meta("db", 120), "subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]});
    assert_eq!(row("", "Endpoints", &headless)[1], json!("10.0.0.9"));
    assert_eq!(row("", "Endpoints", &json!({}))[1], json!("<none>"));
}

#[test]
fn a_node_shows_readiness_roles_version_and_system_info() {
    let object = json!({
        "metadata": {"name": "node-1", "creationTimestamp": ago(3 * 86400 + 5 * 3600),
                     "labels": {"node-role.kubernetes.io/control-plane": "",
                                "node-role.kubernetes.io/": "", "kubernetes.io/role": "infra"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                                 {"type": "Hostname", "address": "node-1"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}}});
    let (normal, wide) = headers("", "Node");
    assert_eq!(normal, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(
        wide,
        [
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    assert_eq!(
        row("", "Node", &object),
        json!([
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,infra",
            "3d5h",
            "v1.33.1",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12",
            "6.1.0",
            "containerd://1.7.0"
        ])
    );
}

#[test]
fn a_node_without_a_ready_condition_is_unknown() {
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    assert_eq!(
        row("", "Node", &json!({})),
        json!([
            "",
            "Unknown",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ])
    );
    assert_eq!(row("", "Node", &not_ready)[1], json!("NotReady"));
}

#[test]
fn a_namespace_shows_its_phase() {
    let object = json!({"metadata": meta("team-a", 86400 * 10), "status": {"phase": "Active"}});
    assert_eq!(
        row("", "Namespace", &object),
        json!(["team-a", "Active", "10d"])
    );
}

#[test]
fn config_maps_count_data_and_binary_data_keys() {
    let object = json!({"metadata": meta("cfg", 5), "data": {"a": "1", "b": "2"},
                        "binaryData": {"c": "AA=="}});
    assert_eq!(row("", "ConfigMap", &object), json!(["cfg", 3, "5s"]));
}

#[test]
fn secrets_show_their_type_and_key_count() {
    let object = json!({"metadata": meta("tls", 5), "type": "kubernetes.io/tls",
                        "data": {"tls.crt": "", "tls.key": ""}, "stringData": {"tls.key": "x", "ca": "y"}});
    assert_eq!(headers("", "Secret").0, ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(
        row("", "Secret", &object),
        json!(["tls", "kubernetes.io/tls", 3, "5s"])
    );
}

#[test]
fn service_accounts_count_their_secrets() {
    let object = json!({"metadata": meta("default", 5), "secrets": [{"name": "t"}]});
    assert_eq!(
        row("", "ServiceAccount", &object),
        json!(["default", 1, "5s"])
    );
}

#[test]
fn a_bound_persistent_volume_shows_its_claim_and_class() {
    let object = json!({"metadata": meta("pv-1", 600), "spec": {
        "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
        "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}});
    let (normal, wide) = headers("", "PersistentVolume");
    assert_eq!(
        normal,
        [
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE"
        ]
    );
    assert_eq!(wide, ["VOLUMEMODE"]);
    assert_eq!(
        row("", "PersistentVolume", &object),
        json!([
            "pv-1",
            "10Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "fast",
            "<unset>",
            "",
            "10m",
            "Filesystem"
        ])
    );
}

#[test]
fn a_claim_shows_capacity_only_once_bound_and_terminating_once_deleted() {
    let pending = json!({"metadata": meta("data", 60), "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "standard"}, "status": {"phase": "Pending"}});
    assert_eq!(
        row("", "PersistentVolumeClaim", &pending),
        json!([
            "data", "Pending", "", "", "", "standard", "<unset>", "60s", "<unset>"
        ])
    );
    let mut bound = pending.clone();
    bound["spec"]["volumeName"] = json!("pv-1");
    bound["spec"]["volumeMode"] = json!("Block");
    bound["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
    bound["metadata"]["deletionTimestamp"] = json!(ago(1));
    bound["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"},
                             "accessModes": ["ReadWriteOncePod", "ReadOnlyMany"]});
    assert_eq!(
        row("", "PersistentVolumeClaim", &bound),
        json!([
            "data",
            "Terminating",
            "pv-1",
            "1Gi",
            "ROX,RWOP",
            "legacy",
            "<unset>",
            "60s",
            "Block"
        ])
    );
}

#[test]
fn a_quota_splits_requests_and_limits_sorted_by_resource() {
    let object = json!({"metadata": meta("compute", 60), "status": {
        "hard": {"requests.cpu": "2", "limits.memory": "4Gi", "pods": "10", "limits.cpu": "4"},
        "used": {"requests.cpu": "0.5", "limits.memory": "1024Mi", "pods": "3"}}});
    assert_eq!(
        row("", "ResourceQuota", &object),
        json!([
            "compute",
            "pods: 3/10, requests.cpu: 500m/2",
            "limits.cpu: 0/4, limits.memory: 1Gi/4Gi",
            "60s"
        ])
    );
}

#[test]
fn a_core_event_shows_last_seen_object_and_source() {
    let object = json!({"metadata": meta("web-0.17a", 600), "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "source": {"component": "kubelet", "host": "node-1"},
        "message": "Back-off restarting failed container\n", "count": 7,
        "firstTimestamp": ago(600), "lastTimestamp": ago(30)});
    let (normal, wide) = headers("", "Event");
    assert_eq!(normal, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert_eq!(wide, ["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"]);
    assert_eq!(
        row("", "Event", &object),
        json!([
            "30s",
            "Warning",
            "BackOff",
            "pod/web-0",
            "spec.containers{app}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "10m",
            7,
            "web-0.17a"
        ])
    );
}

#[test]
fn a_new_style_event_uses_event_time_series_and_reporting_controller() {
    let object = json!({"metadata": meta("ev", 600), "type": "Normal", "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "web-0"}, "note": "assigned",
        "reportingController": "default-scheduler", "eventTime": "2024-05-01T11:50:00.000000Z"});
    assert_eq!(
        row("events.k8s.io", "Event", &object),
        json!([
            "10m",
            "Normal",
            "Scheduled",
            "pod/web-0",
            "",
            "default-scheduler",
            "assigned",
            "10m",
            1,
            "ev"
        ])
    );
    let mut series = object.clone();
    series["series"] = json!({"count": 4, "lastObservedTime": "2024-05-01T11:59:00.000000Z"});
    assert_eq!(row("events.k8s.io", "Event", &series)[0], json!("60s"));
    assert_eq!(row("events.k8s.io", "Event", &series)[8], json!(4));
    let core = json!({"metadata": meta("ev", 1), "involvedObject": {"kind": "Node"}});
    assert_eq!(
        row("", "Event", &core),
        json!([
            "<unknown>",
            "",
            "",
            "node",
            "",
            "",
            "",
            "<unknown>",
            1,
            "ev"
        ])
    );
}
