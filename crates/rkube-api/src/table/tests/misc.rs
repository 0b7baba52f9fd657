//! Networking, discovery, storage, RBAC, certificates, coordination, scheduling, admission.

use serde_json::json;

use super::{ago, headers, meta, row};

const NET: &str = "networking.k8s.io";
const RBAC: &str = "rbac.authorization.k8s.io";
const STORAGE: &str = "storage.k8s.io";
const ADMISSION: &str = "admissionregistration.k8s.io";

#[test]
fn an_ingress_shows_class_hosts_address_and_ports() {
    let object = json!({"metadata": meta("shop", 600), "spec": {
        "ingressClassName": "nginx", "tls": [{"hosts": ["shop.example.com"]}],
        "rules": [{"host": "shop.example.com"}, {}, {"host": "api.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
    assert_eq!(
        headers(NET, "Ingress").0,
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    assert_eq!(
        row(NET, "Ingress", &object),
        json!([
            "shop",
            "nginx",
            "shop.example.com,api.example.com",
            "203.0.113.9",
            "80, 443",
            "10m"
        ])
    );
    let many = json!({"spec": {"rules": [{"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}});
    assert_eq!(
        row(NET, "Ingress", &many),
        json!(["", "<none>", "a,b,c + 2 more...", "", "80", "<unknown>"])
    );
    assert_eq!(
        row(NET, "Ingress", &json!({"spec": {"rules": [{}]}}))[2],
        json!("*")
    );
}

#[test]
fn an_ingress_class_shows_its_controller_and_parameters() {
    let object = json!({"metadata": meta("nginx", 60), "spec": {"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external"}}});
    assert_eq!(
        row(NET, "IngressClass", &object),
        json!([
            "nginx",
            "k8s.io/ingress-nginx",
            "IngressParameters.k8s.example.com/external",
            "60s"
        ])
    );
    let core_params = json!({"spec": {"parameters": {"kind": "ConfigMap", "name": "cfg"}}});
    assert_eq!(
        row(NET, "IngressClass", &core_params)[2],
        json!("ConfigMap/cfg")
    );
    assert_eq!(row(NET, "IngressClass", &json!({}))[2], json!("<none>"));
}

#[test]
fn a_network_policy_shows_its_pod_selector() {
    let object = json!({"metadata": meta("deny", 60), "spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
    let all_pods = json!({"metadata": meta("all", 60), "spec": {"podSelector": {}}});
    assert_eq!(
        row(NET, "NetworkPolicy", &object),
        json!(["deny", "role=db", "60s"])
    );
    assert_eq!(
        row(NET, "NetworkPolicy", &all_pods),
        json!(["all", "<none>", "60s"])
    );
    let bad =
        json!({"spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}}});
    assert_eq!(row(NET, "NetworkPolicy", &bad)[1], json!("<error>"));
}

#[test]
fn an_endpoint_slice_shows_ports_and_addresses() {
    let object = json!({"metadata": meta("web-abc", 60), "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "named"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}, {"addresses": ["10.0.0.3"]},
                      {"addresses": ["10.0.0.4"]}]});
    assert_eq!(
        headers("discovery.k8s.io", "EndpointSlice").0,
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    assert_eq!(
        row("discovery.k8s.io", "EndpointSlice", &object),
        json!([
            "web-abc",
            "IPv4",
            "8080,named,*",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
            "60s"
        ])
    );
    assert_eq!(
        row(
            "discovery.k8s.io",
            "EndpointSlice",
            &json!({"addressType": "IPv6"})
        ),
        json!(["", "IPv6", "<unset>", "<unset>", "<unknown>"])
    );
}

#[test]
fn role_bindings_show_the_role_and_their_subjects_by_kind() {
    let object = json!({"metadata": meta("devs", 60), "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                     {"kind": "User", "name": "bob"},
                     {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}]});
    let (normal, wide) = headers(RBAC, "RoleBinding");
    assert_eq!(normal, ["NAME", "ROLE", "AGE"]);
    assert_eq!(wide, ["USERS", "GROUPS", "SERVICEACCOUNTS"]);
    assert_eq!(
        row(RBAC, "RoleBinding", &object),
        json!([
            "devs",
            "ClusterRole/edit",
            "60s",
            "alice, bob",
            "devs",
            "ci/deployer"
        ])
    );
    assert_eq!(
        row(RBAC, "ClusterRoleBinding", &object),
        json!([
            "devs",
            "ClusterRole/edit",
            "60s",
            "alice, bob",
            "devs",
            "ci/deployer"
        ])
    );
    assert_eq!(headers(RBAC, "ClusterRole").0, ["NAME", "CREATED AT"]);
}

#[test]
fn a_storage_class_marks_the_default_and_fills_in_defaults() {
    let object = json!({"metadata": {"name": "standard", "creationTimestamp": ago(600),
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true});
    assert_eq!(
        headers(STORAGE, "StorageClass").0,
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        row(STORAGE, "StorageClass", &object),
        json!([
            "standard (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            true,
            "10m"
        ])
    );
    let plain =
        json!({"metadata": meta("slow", 60), "provisioner": "x", "reclaimPolicy": "Retain"});
    assert_eq!(
        row(STORAGE, "StorageClass", &plain),
        json!(["slow", "x", "Retain", "Immediate", false, "60s"])
    );
}

#[test]
fn a_csi_driver_shows_its_flags_with_upstream_defaults() {
    let object = json!({"metadata": meta("csi.example.com", 60), "spec": {
        "podInfoOnMount": true, "tokenRequests": [{"audience": "vault"}, {"audience": "aws"}],
        "volumeLifecycleModes": ["Persistent", "Ephemeral"]}});
    assert_eq!(
        row(STORAGE, "CSIDriver", &object),
        json!([
            "csi.example.com",
            true,
            true,
            false,
            "vault,aws",
            false,
            "Persistent,Ephemeral",
            "60s"
        ])
    );
    assert_eq!(
        row(
            STORAGE,
            "CSIDriver",
            &json!({"spec": {"attachRequired": false, "tokenRequests": []}})
        ),
        json!(["", false, false, false, "", false, "<none>", "<unknown>"])
    );
}

#[test]
fn csi_nodes_and_volume_attachments_show_drivers_and_attachment() {
    let node = json!({"metadata": meta("node-1", 60), "spec": {"drivers": [{"name": "a"}, {"name": "b"}]}});
    let attachment = json!({"metadata": meta("csi-123", 60), "spec": {"attacher": "csi.example.com",
        "nodeName": "node-1", "source": {"persistentVolumeName": "pv-1"}}, "status": {"attached": true}});
    assert_eq!(row(STORAGE, "CSINode", &node), json!(["node-1", 2, "60s"]));
    assert_eq!(
        row(STORAGE, "VolumeAttachment", &attachment),
        json!(["csi-123", "csi.example.com", "pv-1", "node-1", true, "60s"])
    );
}

#[test]
fn a_priority_class_shows_value_default_and_preemption() {
    let object = json!({"metadata": meta("high", 60), "value": 1000000, "globalDefault": false,
                        "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        headers("scheduling.k8s.io", "PriorityClass").0,
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    );
    assert_eq!(
        row("scheduling.k8s.io", "PriorityClass", &object),
        json!(["high", 1000000, false, "60s", "PreemptLowerPriority"])
    );
}

#[test]
fn a_lease_shows_its_holder() {
    let object =
        json!({"metadata": meta("kube-scheduler", 60), "spec": {"holderIdentity": "node-1_abc"}});
    assert_eq!(
        row("coordination.k8s.io", "Lease", &object),
        json!(["kube-scheduler", "node-1_abc", "60s"])
    );
}

#[test]
fn a_signing_request_shows_signer_requestor_duration_and_condition() {
    let object = json!({"metadata": meta("csr-1", 60), "spec": {
        "signerName": "kubernetes.io/kube-apiserver-client", "username": "alice",
        "expirationSeconds": 86400},
        "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
    assert_eq!(
        headers("certificates.k8s.io", "CertificateSigningRequest").0,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    assert_eq!(
        row("certificates.k8s.io", "CertificateSigningRequest", &object),
        json!([
            "csr-1",
            "60s",
            "kubernetes.io/kube-apiserver-client",
            "alice",
            "24h",
            "Approved,Issued"
        ])
    );
    let denied = json!({"status": {"conditions": [{"type": "Approved"}, {"type": "Denied"}, {"type": "Failed"}]}});
    assert_eq!(
        row("certificates.k8s.io", "CertificateSigningRequest", &denied),
        json!(["", "<unknown>", "<none>", "", "<none>", "Denied,Failed"])
    );
}

#[test]
fn webhook_configurations_count_their_webhooks() {
    let object = json!({"metadata": meta("hooks", 60), "webhooks": [{"name": "a.example.com"}, {"name": "b.example.com"}]});
    assert_eq!(
        row(ADMISSION, "ValidatingWebhookConfiguration", &object),
        json!(["hooks", 2, "60s"])
    );
    assert_eq!(
        row(ADMISSION, "MutatingWebhookConfiguration", &object),
        json!(["hooks", 2, "60s"])
    );
}

#[test]
fn admission_policies_and_bindings_show_rules_and_params() {
    let policy = json!({"metadata": meta("limits", 60), "spec": {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "validations": [{"expression": "true"}]}});
    assert_eq!(
        row(ADMISSION, "ValidatingAdmissionPolicy", &policy),
        json!(["limits", 1, "v1/ConfigMap", "60s"])
    );
    let named = json!({"metadata": meta("b", 60), "spec": {"policyName": "limits", "paramRef": {"name": "cfg"}}});
    let namespaced = json!({"spec": {"paramRef": {"name": "cfg", "namespace": "team"}}});
    let selected = json!({"spec": {"paramRef": {"selector": {"matchLabels": {"a": "b"},
        "matchExpressions": [{"key": "k", "operator": "In", "values": ["x", "y"]}]}}}});
    assert_eq!(
        row(ADMISSION, "ValidatingAdmissionPolicyBinding", &named),
        json!(["b", "limits", "*/cfg", "60s"])
    );
    assert_eq!(
        row(ADMISSION, "ValidatingAdmissionPolicyBinding", &namespaced)[2],
        json!("team/cfg")
    );
    assert_eq!(
        row(ADMISSION, "ValidatingAdmissionPolicyBinding", &selected)[2],
        json!(
            "&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[x y],},},}"
        )
    );
    assert_eq!(
        row(ADMISSION, "ValidatingAdmissionPolicyBinding", &json!({}))[2],
        json!("<unset>")
    );
}
