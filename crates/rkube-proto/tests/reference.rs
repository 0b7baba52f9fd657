//! Cross-checks against a reference encoder: prost with k8s-pb's generated types.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};

/// Wraps a message the way upstream's protobuf serializer does.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// The object message inside one of our envelopes, read by the reference decoder.
fn unwrap(body: &[u8]) -> (String, String, Vec<u8>) {
    let unknown = Unknown::decode(&body[4..]).expect("a valid runtime.Unknown");
    let type_meta = unknown.type_meta.expect("typeMeta");
    (
        type_meta.api_version.unwrap_or_default(),
        type_meta.kind.unwrap_or_default(),
        unknown.raw.unwrap_or_default(),
    )
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

#[test]
fn a_namespace_as_kubectl_sends_it_decodes_to_its_json() {
    // Go writes every non-pointer field, so kubectl's body carries empty strings, a zero
    // generation and an empty creationTimestamp.
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("team-a"),
            generate_name: s(""),
            namespace: s(""),
            self_link: s(""),
            uid: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let body = envelope("v1", "Namespace", namespace.encode_to_vec());
    assert_eq!(
        rkube_proto::decode(&body).expect("decodes"),
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            // generation is on the wire as 0; upstream's JSON leaves a zero out.
            "metadata": {"name": "team-a"},
            "spec": {}, "status": {}
        })
    );
}

#[test]
fn a_secret_with_binary_data_decodes_to_base64() {
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("creds"),
            ..Default::default()
        }),
        data: [("key".to_string(), vec![0u8, 1, 2, 0xfe, 0xff])].into(),
        string_data: Default::default(),
        r#type: s("Opaque"),
        immutable: Some(false),
    };
    let body = envelope("v1", "Secret", secret.encode_to_vec());
    let object = rkube_proto::decode(&body).expect("decodes");
    assert_eq!(object["data"], json!({"key": "AAEC/v8="}));
    assert_eq!(object["immutable"], json!(false));
    assert_eq!(object["type"], json!("Opaque"));
}

#[test]
fn a_service_encodes_int_or_string_ports_as_upstream_does() {
    let body = rkube_proto::encode(&json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [
            {"port": 80, "targetPort": 8080},
            {"port": 443, "targetPort": "https"}
        ]}
    }))
    .expect("encodes");
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Service"));
    let service = core::Service::decode(raw.as_slice()).expect("reference decodes");
    let spec = service.spec.expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    let targets: Vec<_> = spec.ports.iter().map(|p| p.target_port.clone()).collect();
    assert_eq!(
        targets,
        vec![
            Some(IntOrString {
                r#type: Some(0),
                int_val: Some(8080),
                str_val: s("")
            }),
            Some(IntOrString {
                r#type: Some(1),
                int_val: Some(0),
                str_val: s("https")
            }),
        ]
    );
}

fn deployment_json() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"b": "2", "a": "1"},
                     "creationTimestamp": "2026-01-02T15:04:05Z"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{
                    "name": "web", "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"memory": "128Mi", "cpu": "1"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": -1},
                    "securityContext": {"runAsUser": -5}
                }],
                "volumes": [{"name": "v", "secret": {"secretName": "s", "defaultMode": 256}}]
            }}
        }
    })
}

#[test]
fn a_deployment_we_encode_is_byte_identical_after_a_reference_round_trip() {
    let body = rkube_proto::encode(&deployment_json()).expect("encodes");
    let (_, _, raw) = unwrap(&body);
    let deployment = apps::Deployment::decode(raw.as_slice()).expect("reference decodes");
    assert_eq!(deployment.encode_to_vec(), raw);

    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.and_then(|t| t.spec).expect("pod spec");
    let container = &pod.containers[0];
    assert_eq!(
        container.resources.as_ref().expect("resources").limits["memory"],
        Quantity { string: s("128Mi") }
    );
    let probe = container.readiness_probe.as_ref().expect("probe");
    assert_eq!(probe.period_seconds, Some(-1));
    let handler = probe.handler.as_ref().expect("inline handler");
    assert_eq!(
        handler.http_get.as_ref().and_then(|h| h.path.as_deref()),
        Some("/")
    );
    let volume = &pod.volumes[0];
    let secret = volume
        .volume_source
        .as_ref()
        .and_then(|v| v.secret.as_ref())
        .expect("inline volume source");
    assert_eq!(secret.default_mode, Some(256));
    let created = deployment.metadata.and_then(|m| m.creation_timestamp);
    assert_eq!(
        created,
        Some(meta::Time {
            seconds: Some(1_767_366_245),
            nanos: None
        })
    );
}

#[test]
fn a_deployment_from_the_reference_encoder_decodes_to_the_same_json() {
    let body = rkube_proto::encode(&deployment_json()).expect("encodes");
    let (_, _, raw) = unwrap(&body);
    let deployment = apps::Deployment::decode(raw.as_slice()).expect("reference decodes");
    let again = envelope("apps/v1", "Deployment", deployment.encode_to_vec());
    assert_eq!(
        rkube_proto::decode(&again).expect("decodes"),
        deployment_json()
    );
}

#[test]
fn times_read_only_what_upstream_reads() {
    // Time drops nanoseconds; MicroTime keeps microseconds.
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(meta::ObjectMeta {
            name: s("n1"),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_767_366_245),
                nanos: Some(999_999_999),
            }),
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_767_366_245),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let body = envelope("coordination.k8s.io/v1", "Lease", lease.encode_to_vec());
    let object = rkube_proto::decode(&body).expect("decodes");
    assert_eq!(
        object["metadata"]["creationTimestamp"],
        json!("2026-01-02T15:04:05Z")
    );
    assert_eq!(
        object["spec"]["renewTime"],
        json!("2026-01-02T15:04:05.123456Z")
    );
}

#[test]
fn a_watch_event_frames_the_envelope_of_its_object() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let frame = rkube_proto::encode_watch_event("ADDED", &pod).expect("encodes");
    let len = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, frame.len() - 4);
    let event = meta::WatchEvent::decode(&frame[4..]).expect("reference decodes");
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let raw = event.object.and_then(|o| o.raw).expect("raw object");
    assert_eq!(raw, rkube_proto::encode(&pod).expect("encodes"));
    assert_eq!(rkube_proto::decode(&raw).expect("decodes"), pod);
}

#[test]
fn a_raw_extension_holding_an_envelope_decodes_to_the_embedded_object() {
    let inner = rkube_proto::encode(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"k": "v"}}))
    .expect("encodes");
    let revision = apps::ControllerRevision {
        metadata: Some(meta::ObjectMeta {
            name: s("r"),
            ..Default::default()
        }),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(inner) }),
        revision: Some(2),
    };
    let body = envelope("apps/v1", "ControllerRevision", revision.encode_to_vec());
    assert_eq!(
        rkube_proto::decode(&body).expect("decodes")["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"k": "v"}})
    );
}

#[test]
fn packed_repeated_integers_are_read_too() {
    // PodFailurePolicyOnExitCodesRequirement: operator is field 2, values (int32) field 3,
    // here packed into one length-delimited run.
    let mut on_exit = vec![0x12, 2, b'I', b'n', 0x1a, 3, 1, 2, 42];
    let mut rule = vec![0x0a, 7, b'F', b'a', b'i', b'l', b'J', b'o', b'b', 0x12];
    rule.push(on_exit.len() as u8);
    rule.append(&mut on_exit);
    let mut policy = vec![0x0a, rule.len() as u8];
    policy.extend(rule);
    // JobSpec.podFailurePolicy is field 11.
    let mut spec = vec![0x5a, policy.len() as u8];
    spec.extend(policy);
    let mut job = vec![0x12, spec.len() as u8];
    job.extend(spec);
    let object = rkube_proto::decode(&envelope("batch/v1", "Job", job)).expect("decodes");
    assert_eq!(
        object["spec"]["podFailurePolicy"]["rules"][0],
        json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 2, 42]}})
    );
}
