use serde_json::json;

use super::*;
use crate::registry;

fn parse(s: &str) -> FieldSelector {
    match FieldSelector::parse(s) {
        Ok(selector) => selector,
        Err(e) => panic!("{s:?}: {e}"),
    }
}

fn bad_request<T: fmt::Debug>(result: Result<T, ApiError>) -> String {
    match result {
        Err(ApiError::BadRequest(message)) => message,
        other => panic!("expected a bad request, got {other:?}"),
    }
}

#[test]
fn valid_selectors_parse_to_upstreams_canonical_string() {
    let cases = [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a=b"),
        ("a!=b", "a!=b"),
        ("b=1,a=2", "a=2,b=1"),
        ("a=", "a="),
        ("=b", "=b"),
        ("a=b,,", "a=b"),
        (",a=b", "a=b"),
        ("a = b", "a = b"),
        ("a!b=c", "a!b=c"),
        ("a=b!c", "a=b!c"),
        ("a=x\\,y", "a=x\\,y"),
        ("a=x\\=y", "a=x\\=y"),
        ("a=x\\\\y", "a=x\\\\y"),
        ("a=ü", "a=ü"),
        (
            "spec.nodeName=node-1,status.phase!=Failed",
            "spec.nodeName=node-1,status.phase!=Failed",
        ),
        // A term with neither field nor value is dropped by upstream's parse.
        ("=", ""),
        ("==", ""),
        ("!=", ""),
        ("=,a=b", "a=b"),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input).to_string(), want, "{input:?}");
    }
}

#[test]
fn escapes_in_values_are_undone() {
    let cases = [
        ("a=x\\,y", "x,y"),
        ("a=x\\=y", "x=y"),
        ("a=x\\\\y", "x\\y"),
        ("a=\\,\\=\\\\", ",=\\"),
        ("a= b ", " b "),
        ("a=", ""),
    ];
    for (input, want) in cases {
        let s = parse(input);
        assert_eq!(s.terms().len(), 1, "{input:?}");
        assert_eq!(s.terms()[0].value(), want, "{input:?}");
    }
    let spaced = parse(" a = b");
    assert_eq!(spaced.terms()[0].field(), " a ");
    assert_eq!(spaced.terms()[0].operator(), FieldOperator::Equals);
}

#[test]
fn bad_syntax_is_rejected_with_upstreams_message() {
    let cases = [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        (" ", "invalid selector: ' '; can't understand ' '"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        // Terms are sorted before they are parsed, so the first bad one in sorted order is named.
        ("z,a", "invalid selector: 'z,a'; can't understand 'a'"),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a==b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a=!=b",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a\\=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a=b\\x",
            "invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "a=b\\",
            "invalid field selector: invalid escape sequence: \\",
        ),
        (
            "a=b,c=d\\",
            "invalid field selector: invalid escape sequence: \\",
        ),
        // An escaped comma does not split, so the `=` after it is bare.
        (
            "a=b\\,c=d",
            "invalid field selector: unescaped character in value: 61",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(bad_request(FieldSelector::parse(input)), want, "{input:?}");
    }
}

#[test]
fn unsupported_field_labels_are_rejected_with_each_kinds_message() {
    let cases = [
        (
            "",
            "Pod",
            "spec.foo=x",
            "field label not supported: spec.foo",
        ),
        ("", "Pod", "z=1,y=2", "field label not supported: y"),
        (
            "",
            "Pod",
            "spec.nodeName =x",
            "field label not supported: spec.nodeName ",
        ),
        (
            "",
            "Node",
            "metadata.namespace=x",
            "field label not supported: metadata.namespace",
        ),
        ("", "Namespace", "name=x", "field label not supported: name"),
        (
            "",
            "Event",
            "regarding.kind=Pod",
            "field label not supported: regarding.kind",
        ),
        ("", "Secret", "data=x", "field label not supported: data"),
        (
            "",
            "Service",
            "spec.ports=x",
            "field label not supported: spec.ports",
        ),
        (
            "",
            "ReplicationController",
            "spec.replicas=1",
            "field label not supported: spec.replicas",
        ),
        (
            "events.k8s.io",
            "Event",
            "involvedObject.kind=Pod",
            "field label not supported: involvedObject.kind",
        ),
        (
            "batch",
            "Job",
            "status.active=1",
            "field label \"status.active\" not supported for Job",
        ),
        (
            "certificates.k8s.io",
            "CertificateSigningRequest",
            "metadata.namespace=x",
            "field label not supported: metadata.namespace",
        ),
        (
            "",
            "ConfigMap",
            "data.key=x",
            "\"data.key\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        ),
        (
            "apps",
            "ReplicaSet",
            "status.replicas=1",
            "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        ),
        (
            "apps",
            "Deployment",
            "=x",
            "\"\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        ),
        (
            "batch",
            "CronJob",
            "status.successful=1",
            "\"status.successful\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        ),
    ];
    for (group, kind, selector, want) in cases {
        let s = parse(selector);
        assert_eq!(
            bad_request(s.check_supported(group, kind)),
            want,
            "{kind} {selector:?}"
        );
    }
}

#[test]
fn supported_field_labels_are_accepted() {
    let cases = [
        (
            "",
            "Pod",
            "metadata.name=a,metadata.namespace=b,spec.nodeName=n,spec.restartPolicy=Always",
        ),
        (
            "",
            "Pod",
            "spec.schedulerName=s,spec.serviceAccountName=sa,spec.hostNetwork=true",
        ),
        (
            "",
            "Pod",
            "status.phase=Running,status.podIP=10.0.0.1,status.podIPs=x,status.nominatedNodeName=n",
        ),
        ("", "Pod", "spec.host=n"),
        ("", "Node", "metadata.name=n,spec.unschedulable=false"),
        ("", "Namespace", "metadata.name=n,status.phase=Active"),
        (
            "",
            "Secret",
            "type=Opaque,metadata.name=s,metadata.namespace=ns",
        ),
        ("", "Service", "spec.clusterIP=None,spec.type=ClusterIP"),
        ("", "ReplicationController", "status.replicas=0"),
        (
            "",
            "Event",
            "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.namespace=ns",
        ),
        (
            "",
            "Event",
            "involvedObject.uid=u,involvedObject.apiVersion=v1,involvedObject.resourceVersion=1",
        ),
        (
            "",
            "Event",
            "involvedObject.fieldPath=f,reason=r,reportingComponent=c,source=s,type=Normal",
        ),
        (
            "events.k8s.io",
            "Event",
            "regarding.kind=Pod,regarding.name=p,reportingController=c",
        ),
        (
            "events.k8s.io",
            "Event",
            "reason=r,type=Warning,source=s,metadata.namespace=ns",
        ),
        ("batch", "Job", "status.successful=1,metadata.name=j"),
        (
            "certificates.k8s.io",
            "CertificateSigningRequest",
            "spec.signerName=kubernetes.io/kubelet-serving",
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "metadata.namespace=x",
        ),
        ("", "Widget", "metadata.name=x"),
    ];
    for (group, kind, selector) in cases {
        let s = parse(selector);
        if let Err(e) = s.check_supported(group, kind) {
            panic!("{kind} {selector:?}: {e}");
        }
    }
}

#[test]
fn every_served_kind_takes_metadata_name_and_most_take_metadata_namespace() {
    let name = parse("metadata.name=x");
    let namespace = parse("metadata.namespace=x");
    for t in registry::all().types() {
        assert!(name.check_supported(t.group, t.kind).is_ok(), "{}", t.kind);
        // Only kinds whose own conversion leaves it out reject it, even when cluster-scoped.
        let rejects = matches!(t.kind, "Node" | "Namespace" | "CertificateSigningRequest");
        assert_eq!(
            namespace.check_supported(t.group, t.kind).is_err(),
            rejects,
            "{}",
            t.kind
        );
    }
}

#[test]
fn converting_for_a_kind_renames_legacy_and_versioned_labels() {
    let pods = parse("spec.host=n1")
        .for_kind("", "Pod")
        .expect("supported");
    assert_eq!(pods.to_string(), "spec.nodeName=n1");
    assert_eq!(pods.required_value("spec.nodeName"), Some("n1"));
    let events = parse("regarding.name=p,reportingController=kubelet")
        .for_kind("events.k8s.io", "Event")
        .expect("supported");
    assert_eq!(
        events.to_string(),
        "involvedObject.name=p,reportingComponent=kubelet"
    );
}

#[test]
fn pods_match_on_upstreams_pod_field_set() {
    let pod = json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}]}
    });
    let cases = [
        ("metadata.name=web,metadata.namespace=default", true),
        ("spec.nodeName=n1", true),
        ("spec.host=n1", true),
        ("spec.nodeName=n2", false),
        ("spec.nodeName!=n2", true),
        (
            "spec.restartPolicy=Always,spec.schedulerName=default-scheduler",
            true,
        ),
        ("spec.serviceAccountName=default", true),
        ("spec.hostNetwork=false", true),
        ("spec.hostNetwork=true", false),
        ("status.phase=Running", true),
        ("status.phase!=Running", false),
        ("status.podIP=10.0.0.7", true),
        // Accepted upstream but never in the pod field set: it reads as empty.
        ("status.podIPs=10.0.0.7", false),
        ("status.podIPs=", true),
        ("status.nominatedNodeName=", true),
        ("status.phase=Running,spec.nodeName=n2", false),
        ("", true),
    ];
    for (selector, want) in cases {
        assert_eq!(
            parse(selector).matches("", "Pod", &pod),
            want,
            "{selector:?}"
        );
    }
    let host = json!({"spec": {"hostNetwork": true}, "status": {"podIP": "10.0.0.9"}});
    assert!(parse("spec.hostNetwork=true,spec.nodeName=").matches("", "Pod", &host));
    assert!(parse("status.podIP=10.0.0.9").matches("", "Pod", &host));
}

#[test]
fn other_kinds_match_on_their_field_sets() {
    let cases = [
        (
            "",
            "Node",
            json!({"metadata": {"name": "n1"}}),
            "spec.unschedulable=false",
            true,
        ),
        (
            "",
            "Node",
            json!({"spec": {"unschedulable": true}}),
            "spec.unschedulable=true",
            true,
        ),
        (
            "",
            "Namespace",
            json!({"status": {"phase": "Terminating"}}),
            "status.phase=Terminating",
            true,
        ),
        (
            "",
            "Secret",
            json!({"type": "kubernetes.io/tls"}),
            "type=kubernetes.io/tls",
            true,
        ),
        ("", "Secret", json!({}), "type=", true),
        (
            "",
            "Service",
            json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}}),
            "spec.type=NodePort,spec.clusterIP=10.96.0.10",
            true,
        ),
        (
            "",
            "ReplicationController",
            json!({"status": {}}),
            "status.replicas=0",
            true,
        ),
        (
            "",
            "ReplicationController",
            json!({"status": {"replicas": 3}}),
            "status.replicas=3",
            true,
        ),
        (
            "batch",
            "Job",
            json!({"status": {"succeeded": 1}}),
            "status.successful=1",
            true,
        ),
        ("batch", "Job", json!({}), "status.successful=0", true),
        (
            "certificates.k8s.io",
            "CertificateSigningRequest",
            json!({"spec": {"signerName": "kubernetes.io/kube-apiserver-client"}}),
            "spec.signerName=kubernetes.io/kube-apiserver-client",
            true,
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cm", "namespace": "ns"}}),
            "metadata.name=cm,metadata.namespace=ns",
            true,
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cm"}}),
            "metadata.name!=cm",
            false,
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "admin"}}),
            "metadata.namespace=",
            true,
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "admin"}}),
            "metadata.namespace=x",
            false,
        ),
    ];
    for (group, kind, object, selector, want) in cases {
        assert_eq!(
            parse(selector).matches(group, kind, &object),
            want,
            "{kind} {selector:?}"
        );
    }
}

#[test]
fn events_match_in_either_wire_form() {
    let core = json!({
        "metadata": {"name": "e1", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns", "uid": "u1",
                           "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
        "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"
    });
    let modern = json!({
        "metadata": {"name": "e1", "namespace": "ns"},
        "regarding": {"kind": "Pod", "name": "web", "namespace": "ns"},
        "reason": "Started", "type": "Normal", "reportingController": "kubelet",
        "deprecatedSource": {"component": "old-kubelet"}
    });
    let cases = [
        (
            "",
            "Event",
            &core,
            "involvedObject.kind=Pod,involvedObject.name=web",
            true,
        ),
        (
            "",
            "Event",
            &core,
            "involvedObject.uid=u1,involvedObject.apiVersion=v1",
            true,
        ),
        (
            "",
            "Event",
            &core,
            "involvedObject.resourceVersion=7,involvedObject.fieldPath=spec.containers{c}",
            true,
        ),
        (
            "",
            "Event",
            &core,
            "reason=Started,type=Normal,reportingComponent=kubelet",
            true,
        ),
        // No source component: upstream falls back to the reporting controller.
        ("", "Event", &core, "source=kubelet", true),
        (
            "events.k8s.io",
            "Event",
            &modern,
            "regarding.kind=Pod,regarding.name=web",
            true,
        ),
        (
            "events.k8s.io",
            "Event",
            &modern,
            "involvedObject.namespace=ns",
            true,
        ),
        (
            "events.k8s.io",
            "Event",
            &modern,
            "reportingController=kubelet",
            true,
        ),
        (
            "events.k8s.io",
            "Event",
            &modern,
            "source=old-kubelet",
            true,
        ),
        (
            "events.k8s.io",
            "Event",
            &modern,
            "regarding.name=db",
            false,
        ),
        ("", "Event", &modern, "involvedObject.name=web", true),
    ];
    for (group, kind, object, selector, want) in cases {
        assert_eq!(
            parse(selector).matches(group, kind, object),
            want,
            "{group} {selector:?}"
        );
    }
}

#[test]
fn a_required_value_comes_only_from_an_equality_term() {
    let s = parse("spec.nodeName=n1,status.phase!=Failed");
    assert_eq!(s.required_value("spec.nodeName"), Some("n1"));
    assert_eq!(s.required_value("status.phase"), None);
    assert_eq!(s.required_value("metadata.name"), None);
    assert_eq!(
        parse("spec.nodeName==").required_value("spec.nodeName"),
        Some("")
    );
    assert_eq!(
        FieldSelector::everything().required_value("spec.nodeName"),
        None
    );
}

#[test]
fn everything_is_empty_and_matches_all() {
    assert!(FieldSelector::everything().is_empty());
    assert!(parse("").is_empty());
    assert!(parse("=").is_empty());
    assert!(!parse("a=b").is_empty());
    assert!(FieldSelector::everything().matches("", "Pod", &json!(null)));
    assert_eq!(FieldSelector::everything().to_string(), "");
    assert!(
        FieldSelector::everything()
            .check_supported("", "Node")
            .is_ok()
    );
}
