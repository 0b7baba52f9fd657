//! Bad input gives an error, never a panic.

use rkube_proto::{ProtoError, decode, encode, knows};
use serde_json::json;

/// magic + runtime.Unknown{typeMeta{apiVersion, kind}, raw}.
fn body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = vec![0x0a, api_version.len() as u8];
    type_meta.extend(api_version.as_bytes());
    type_meta.push(0x12);
    type_meta.push(kind.len() as u8);
    type_meta.extend(kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    out.push(0x0a);
    out.push(type_meta.len() as u8);
    out.extend(type_meta);
    out.push(0x12);
    put_varint(&mut out, raw.len() as u64);
    out.extend(raw);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[test]
fn a_body_without_the_magic_prefix_is_rejected() {
    for bad in [&b""[..], b"k8s", b"{\"kind\":\"Pod\"}", b"k8s\x01\x0a\x00"] {
        assert!(matches!(decode(bad), Err(ProtoError::BadMagic)), "{bad:?}");
    }
}

#[test]
fn a_hand_built_namespace_decodes() {
    // Namespace{metadata: ObjectMeta{name: "a"}}
    let raw = [0x0a, 0x03, 0x0a, 0x01, b'a'];
    assert_eq!(
        decode(&body("v1", "Namespace", &raw)).expect("decodes"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
    );
}

#[test]
fn unknown_field_numbers_are_skipped() {
    // Field 99 as a varint, a fixed64, a fixed32 and a length-delimited value, around name.
    let mut meta = vec![0x98, 0x06, 0x07];
    meta.extend([0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    meta.extend([0x0a, 0x01, b'a']);
    meta.extend([0x9d, 0x06, 1, 2, 3, 4]);
    meta.extend([0x9a, 0x06, 0x02, 0xff, 0xff]);
    let mut raw = vec![0x0a, meta.len() as u8];
    raw.extend(meta);
    let object = decode(&body("v1", "Namespace", &raw)).expect("decodes");
    assert_eq!(object["metadata"], json!({"name": "a"}));
}

#[test]
fn a_truncated_varint_is_malformed() {
    let raw = [0x0a, 0x03, 0x38, 0x80, 0x80];
    let err = decode(&body("v1", "Namespace", &raw)).expect_err("truncated");
    assert!(matches!(err, ProtoError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("metadata"), "{err}");
}

#[test]
fn an_overlong_varint_is_malformed() {
    let mut raw = vec![0x0a, 12, 0x38];
    raw.extend([0xff; 11]);
    let err = decode(&body("v1", "Namespace", &raw)).expect_err("overlong");
    assert!(matches!(err, ProtoError::Malformed { .. }), "{err}");
}

#[test]
fn a_length_beyond_the_buffer_is_malformed() {
    let raw = [0x0a, 0x05, 0x0a, 0x01];
    let err = decode(&body("v1", "Namespace", &raw)).expect_err("too long");
    assert!(matches!(err, ProtoError::Malformed { .. }), "{err}");
    let mut huge = vec![0x0a];
    put_varint(&mut huge, u64::MAX);
    let err = decode(&body("v1", "Namespace", &huge)).expect_err("huge");
    assert!(matches!(err, ProtoError::Malformed { .. }), "{err}");
}

#[test]
fn a_wrong_wire_type_names_the_field() {
    // ObjectMeta.name sent as a varint.
    let raw = [0x0a, 0x02, 0x08, 0x01];
    let err = decode(&body("v1", "Namespace", &raw)).expect_err("wrong wire type");
    assert!(err.to_string().contains("metadata.name"), "{err}");
}

#[test]
fn groups_are_rejected() {
    let raw = [0x0a, 0x02, 0x0b, 0x0c];
    assert!(decode(&body("v1", "Namespace", &raw)).is_err());
}

#[test]
fn compressed_or_unknown_kinds_are_refused() {
    let mut gz = body("v1", "Namespace", &[]);
    gz.extend([0x1a, 0x04]);
    gz.extend(b"gzip");
    assert!(matches!(decode(&gz), Err(ProtoError::ContentEncoding(e)) if e == "gzip"));
    assert!(matches!(
        decode(&body("example.com/v1", "Widget", &[])),
        Err(ProtoError::UnknownKind { .. })
    ));
    assert!(matches!(decode(b"k8s\0"), Err(ProtoError::MissingTypeMeta)));
}

#[test]
fn deeply_nested_envelopes_stop_at_the_depth_limit() {
    // ControllerRevision.data (field 2) is a RawExtension whose raw may itself be an envelope.
    let mut inner = body("v1", "Namespace", &[]);
    for _ in 0..200 {
        let mut extension = vec![0x0a];
        put_varint(&mut extension, inner.len() as u64);
        extension.extend(&inner);
        let mut revision = vec![0x12];
        put_varint(&mut revision, extension.len() as u64);
        revision.extend(extension);
        inner = body("apps/v1", "ControllerRevision", &revision);
    }
    let err = decode(&inner).expect_err("too deep");
    assert!(matches!(err, ProtoError::TooDeep), "{err}");
}

#[test]
fn invalid_embedded_json_is_an_error() {
    // ControllerRevision.data.raw = "{not json"
    let mut extension = vec![0x0a, 9];
    extension.extend(b"{not json");
    let mut raw = vec![0x12, extension.len() as u8];
    raw.extend(extension);
    let err = decode(&body("apps/v1", "ControllerRevision", &raw)).expect_err("bad json");
    assert!(
        matches!(err, ProtoError::EmbeddedJson { ref path, .. } if path == "data"),
        "{err}"
    );
}

#[test]
fn every_truncation_and_byte_flip_of_a_real_body_returns_without_panicking() {
    let good = encode(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"a": "b"}, "creationTimestamp": "2026-01-02T15:04:05Z"},
        "spec": {"replicas": 2, "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                 "template": {"spec": {"containers": [{"name": "c", "image": "i",
                     "resources": {"limits": {"cpu": "1"}}, "ports": [{"containerPort": 80}]}]}}}
    }))
    .expect("encodes");
    for cut in 0..good.len() {
        let _ = decode(&good[..cut]);
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..good.len() {
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bad = good.clone();
            bad[i] = state as u8;
            let _ = decode(&bad);
        }
    }
}

#[test]
fn random_bytes_after_a_valid_header_return_without_panicking() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for kind in ["Pod", "Node", "Service", "Event"] {
        for len in 0..400 {
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode(&body("v1", kind, &raw));
        }
    }
}

#[test]
fn json_of_the_wrong_shape_is_an_error_that_names_the_field() {
    let cases = [
        (json!({"kind": "Pod"}), "apiVersion"),
        (json!({"apiVersion": "v1", "kind": "Widget"}), "Widget"),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "3"}}),
            "spec.replicas",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1.5}}),
            "spec.replicas",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3_000_000_000_u64}}),
            "out of range",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": 7}]}}),
            "spec.containers[0].name",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}}),
            "data.k",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}}),
            "metadata.creationTimestamp",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": ["a"]}}),
            "metadata.labels",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"targetPort": true}]}}),
            "spec.ports[0].targetPort",
        ),
    ];
    for (object, needle) in cases {
        let err = encode(&object).expect_err("invalid");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
}

#[test]
fn unknown_json_keys_and_nulls_are_ignored_when_encoding() {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "bogus": 1, "namespace": null}, "data": {"k": "v"}, "extra": [1]});
    assert_eq!(
        decode(&encode(&object).expect("encodes")).expect("decodes"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"k": "v"}})
    );
}

#[test]
fn every_kind_the_server_serves_is_known_with_its_list() {
    let kinds = [
        (
            "v1",
            "Namespace Pod Service Endpoints ConfigMap Secret ServiceAccount Node Event \
          PersistentVolume PersistentVolumeClaim ResourceQuota LimitRange ReplicationController \
          PodTemplate",
        ),
        (
            "apps/v1",
            "Deployment ReplicaSet StatefulSet DaemonSet ControllerRevision",
        ),
        ("batch/v1", "Job CronJob"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "Ingress IngressClass NetworkPolicy"),
        (
            "rbac.authorization.k8s.io/v1",
            "Role RoleBinding ClusterRole ClusterRoleBinding",
        ),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ];
    for (api_version, names) in kinds {
        for kind in names.split_whitespace() {
            assert!(knows(api_version, kind), "{api_version} {kind}");
            assert!(
                knows(api_version, &format!("{kind}List")),
                "{api_version} {kind}List"
            );
        }
    }
    let single = [
        ("v1", "Binding"),
        ("autoscaling/v1", "Scale"),
        ("policy/v1", "Eviction"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"),
        ("authentication.k8s.io/v1", "TokenReview"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("meta.k8s.io/v1", "PartialObjectMetadataList"),
    ];
    for (api_version, kind) in single {
        assert!(knows(api_version, kind), "{api_version} {kind}");
    }
}

#[test]
fn known_kinds_are_reported() {
    assert!(knows("v1", "Pod"));
    assert!(knows("apps/v1", "DeploymentList"));
    assert!(knows("policy/v1", "Eviction"));
    assert!(knows("authentication.k8s.io/v1", "TokenRequest"));
    assert!(knows("apps/v1", "DeleteOptions"));
    assert!(knows("v1", "Status"));
    assert!(!knows("example.com/v1", "Widget"));
    assert!(!knows("v1", "Deployment"));
}
