//! Checks over the whole table: every kind round-trips a sample that sets every field.

use serde_json::{Map, Value, json};

use crate::descriptor::{Message, Special, Type, message};
use crate::table::KINDS;

/// A value for every field of `msg`, nesting at most `budget` more messages.
fn sample(msg: &'static Message, budget: usize) -> Value {
    match msg.special {
        Special::Time => return json!("2026-01-02T15:04:05Z"),
        Special::MicroTime => return json!("2026-01-02T15:04:05.123456Z"),
        Special::Duration => return json!("1m30s"),
        Special::Quantity => return json!("250m"),
        Special::IntOrString => return json!("http"),
        Special::RawJson => return json!({"a": [1, "b"]}),
        Special::StringList => return json!(["x", "y"]),
        Special::None => {}
    }
    let mut object = Map::new();
    for field in msg.fields {
        let value = match field.ty {
            Type::String => json!("s"),
            Type::Bytes => json!("AQI="),
            Type::Bool => json!(true),
            Type::Int32 => json!(-7),
            Type::Int64 => json!(1_i64 << 40),
            Type::Message(i) => {
                let Some(inner) = message(i) else { continue };
                if budget == 0 && inner.special == Special::None {
                    continue;
                }
                sample(inner, budget.saturating_sub(1))
            }
        };
        if field.inline {
            if let Value::Object(fields) = value {
                object.extend(fields);
            }
        } else if field.map {
            object.insert(field.json.to_string(), json!({"k": value}));
        } else if field.repeated {
            object.insert(field.json.to_string(), json!([value]));
        } else {
            object.insert(field.json.to_string(), value);
        }
    }
    Value::Object(object)
}

#[test]
fn every_kind_round_trips_a_sample_that_sets_every_field() {
    for kind in KINDS {
        let msg = message(kind.message).expect("kind message");
        let mut object = sample(msg, 14);
        let Value::Object(fields) = &mut object else {
            panic!("{} is not an object", kind.kind)
        };
        fields.insert("apiVersion".into(), json!(kind.api_version));
        fields.insert("kind".into(), json!(kind.kind));
        let bytes = crate::encode(&object).expect("encodes");
        let back = crate::decode(&bytes).expect("decodes");
        assert_eq!(back, object, "{} {}", kind.api_version, kind.kind);
    }
}

#[test]
fn every_kind_survives_garbage_and_wrongly_shaped_json() {
    let mut state = 0x1234_5678_9abc_def1_u64;
    for kind in KINDS {
        for len in [1, 7, 64, 300] {
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let mut body =
                crate::encode(&json!({"apiVersion": kind.api_version, "kind": kind.kind}))
                    .expect("encodes an empty object");
            body.extend(&raw);
            let _ = crate::decode(&body);
        }
        for odd in [json!(5), json!("x"), json!([1]), json!({"a": null})] {
            let msg = message(kind.message).expect("kind message");
            let mut object = Map::new();
            for field in msg.fields {
                object.insert(field.json.to_string(), odd.clone());
            }
            object.insert("apiVersion".into(), json!(kind.api_version));
            object.insert("kind".into(), json!(kind.kind));
            let _ = crate::encode(&Value::Object(object));
        }
    }
}

/// What a Go client writes for `kubectl create deployment`: zeros in non-pointer fields are
/// on the wire; upstream's JSON leaves out those Go tags `omitempty` and keeps pointer zeros.
#[test]
fn zeros_of_omitempty_fields_are_left_out_and_pointer_zeros_kept() {
    let sent = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "generation": 0},
        "spec": {
            "replicas": 0, "paused": false, "minReadySeconds": 0,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"generation": 0, "labels": {"app": "d"}},
                "spec": {
                    "hostNetwork": false, "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "i", "stdin": false, "tty": false,
                                    "ports": [{"containerPort": 80, "hostPort": 0}]}],
                },
            },
        },
    });
    let decoded = crate::decode(&crate::encode(&sent).unwrap()).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}],
                    },
                },
            },
        })
    );
}
