#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::{pod_json, with_node};

fn pv(name: &str, size: &str, class: &str, node: Option<&str>, extra: Value) -> PersistentVolume {
    let mut v = json!({
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": class, "local": {"path": "/mnt"}},
        "status": {"phase": "Available"},
    });
    if let Some(node) = node {
        v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
    }
    for part in ["metadata", "spec", "status"] {
        for (k, val) in extra
            .get(part)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            v[part][k] = val.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

fn pvc(name: &str, class: &str, extra: Value) -> PersistentVolumeClaim {
    let mut c = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "resourceVersion": "1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": class},
    });
    for part in ["metadata", "spec"] {
        for (k, val) in extra
            .get(part)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            c[part][k] = val.clone();
        }
    }
    serde_json::from_value(c).unwrap()
}

fn class(name: &str, mode: &str, provisioner: &str) -> StorageClass {
    serde_json::from_value(json!({
        "metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode,
    }))
    .unwrap()
}

fn node(name: &str) -> NodeInfo {
    with_node(
        name,
        json!({"metadata": {"labels": {"kubernetes.io/hostname": name}}}),
    )
}

fn pod_with(claims: &[&str]) -> PodInfo {
    let volumes: Vec<Value> = claims
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    pod_json(json!({"volumes": volumes}))
}

fn bound(name: &str, volume: &str) -> PersistentVolumeClaim {
    pvc(
        name,
        "",
        json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
               "spec": {"volumeName": volume}}),
    )
}

struct Cluster {
    volumes: Vec<PersistentVolume>,
    claims: Vec<PersistentVolumeClaim>,
    classes: Vec<StorageClass>,
}

fn snapshot(c: Cluster) -> Snapshot {
    let mut s = Snapshot::new();
    for v in c.volumes {
        s.volumes.apply_volume(v);
    }
    for v in c.claims {
        s.volumes.apply_claim(v);
    }
    for v in c.classes {
        s.volumes.apply_class(v);
    }
    for n in ["node-a", "node-b"] {
        s.upsert_node(
            serde_json::from_value(
                json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}),
            )
            .unwrap(),
        );
    }
    s
}

/// PreFilter's rejection, or each node's filter reasons (`None`: fits).
type Verdicts = Result<Vec<Option<Vec<String>>>, String>;

/// Runs PreFilter, then Filter on both nodes.
fn run(cluster: Cluster, claims: &[&str]) -> Verdicts {
    let s = snapshot(cluster);
    let plugin = VolumeBinding::default();
    let pod = pod_with(claims);
    let mut state = CycleState::default();
    match plugin.pre_filter(&mut state, &pod, &s) {
        Err(f) => return Err(f.reasons.join(", ")),
        Ok(PreFilter::Skip) => return Ok(vec![None, None]),
        Ok(_) => {}
    }
    Ok(["node-a", "node-b"]
        .iter()
        .map(|n| {
            plugin
                .filter(&state, &pod, &node(n))
                .err()
                .map(|f| f.reasons.iter().map(|r| r.to_string()).collect())
        })
        .collect())
}

#[test]
fn the_filter_matches_upstream_for_bound_delayed_and_immediate_claims() {
    let wffc = || class("local", "WaitForFirstConsumer", NOT_SUPPORTED_PROVISIONER);
    let conflict = |r: &str| Some(vec![r.to_owned()]);
    let cases: Vec<(&str, Cluster, Vec<&str>, Verdicts)> = vec![
        (
            "no claims: skipped",
            Cluster {
                volumes: vec![],
                claims: vec![],
                classes: vec![],
            },
            vec![],
            Ok(vec![None, None]),
        ),
        (
            "a missing claim",
            Cluster {
                volumes: vec![],
                claims: vec![],
                classes: vec![],
            },
            vec!["data"],
            Err("persistentvolumeclaim \"data\" not found".into()),
        ),
        (
            "an unbound claim of an Immediate (or missing) class",
            Cluster {
                volumes: vec![],
                claims: vec![pvc("data", "", json!({}))],
                classes: vec![],
            },
            vec!["data"],
            Err(ERR_UNBOUND_IMMEDIATE.into()),
        ),
        (
            "a bound claim follows its volume's node affinity",
            Cluster {
                volumes: vec![pv("v", "1Gi", "", Some("node-b"), json!({}))],
                claims: vec![bound("data", "v")],
                classes: vec![],
            },
            vec!["data"],
            Ok(vec![conflict(ERR_NODE_CONFLICT), None]),
        ),
        (
            "a bound claim whose volume is gone",
            Cluster {
                volumes: vec![],
                claims: vec![bound("data", "v")],
                classes: vec![],
            },
            vec!["data"],
            Ok(vec![conflict(ERR_PV_NOT_EXIST), conflict(ERR_PV_NOT_EXIST)]),
        ),
        (
            "a delayed claim goes where an available volume is",
            Cluster {
                volumes: vec![
                    pv("on-b", "5Gi", "local", Some("node-b"), json!({})),
                    pv(
                        "taken-a",
                        "5Gi",
                        "local",
                        Some("node-a"),
                        json!({"spec": {"claimRef": {"namespace": "default", "name": "x", "uid": "x"}}}),
                    ),
                    pv("small-a", "100Mi", "local", Some("node-a"), json!({})),
                ],
                claims: vec![pvc("data", "local", json!({}))],
                classes: vec![wffc()],
            },
            vec!["data"],
            Ok(vec![conflict(ERR_BIND_CONFLICT), None]),
        ),
        (
            "a delayed claim with no volume and no provisioner",
            Cluster {
                volumes: vec![],
                claims: vec![pvc("data", "local", json!({}))],
                classes: vec![wffc()],
            },
            vec!["data"],
            Ok(vec![
                conflict(ERR_BIND_CONFLICT),
                conflict(ERR_BIND_CONFLICT),
            ]),
        ),
        (
            "a delayed claim of a class that provisions fits anywhere",
            Cluster {
                volumes: vec![],
                claims: vec![pvc("data", "csi", json!({}))],
                classes: vec![class("csi", "WaitForFirstConsumer", "example.com/csi")],
            },
            vec!["data"],
            Ok(vec![None, None]),
        ),
        (
            "a claim already given to a node for provisioning stays there",
            Cluster {
                volumes: vec![],
                claims: vec![pvc(
                    "data",
                    "csi",
                    json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "node-a"}}}),
                )],
                classes: vec![class("csi", "WaitForFirstConsumer", "example.com/csi")],
            },
            vec!["data"],
            Ok(vec![None, conflict(ERR_BIND_CONFLICT)]),
        ),
        (
            "two claims cannot share one volume",
            Cluster {
                volumes: vec![pv("only", "5Gi", "local", Some("node-a"), json!({}))],
                claims: vec![
                    pvc("one", "local", json!({})),
                    pvc("two", "local", json!({})),
                ],
                classes: vec![wffc()],
            },
            vec!["one", "two"],
            Ok(vec![
                conflict(ERR_BIND_CONFLICT),
                conflict(ERR_BIND_CONFLICT),
            ]),
        ),
    ];
    for (what, cluster, claims, want) in cases {
        assert_eq!(run(cluster, &claims), want, "{what}");
    }
}

#[test]
fn reserve_assumes_the_volume_so_the_next_pod_cannot_take_it_and_unreserve_gives_it_back() {
    let mut s = snapshot(Cluster {
        volumes: vec![pv("v", "5Gi", "local", Some("node-b"), json!({}))],
        claims: vec![
            pvc("one", "local", json!({})),
            pvc("two", "local", json!({})),
        ],
        classes: vec![class(
            "local",
            "WaitForFirstConsumer",
            NOT_SUPPORTED_PROVISIONER,
        )],
    });
    let plugin = VolumeBinding::default();
    let first = pod_with(&["one"]);
    let mut state = CycleState::default();
    assert!(plugin.pre_filter(&mut state, &first, &s).is_ok());
    plugin
        .reserve(&mut state, &first, "node-b", &mut s)
        .unwrap();
    let assumed = s.volumes.volume("v").unwrap();
    let r = claim_ref(assumed).unwrap();
    assert_eq!(r.name.as_deref(), Some("one"));
    assert_eq!(r.uid.as_deref(), Some("one-uid"));

    let second = pod_with(&["two"]);
    let mut other = CycleState::default();
    assert!(plugin.pre_filter(&mut other, &second, &s).is_ok());
    assert!(plugin.filter(&other, &second, &node("node-b")).is_err());

    plugin.unreserve(&mut state, &first, "node-b", &mut s);
    assert!(claim_ref(s.volumes.volume("v").unwrap()).is_none());
    let mut other = CycleState::default();
    assert!(plugin.pre_filter(&mut other, &second, &s).is_ok());
    assert!(plugin.filter(&other, &second, &node("node-b")).is_ok());
}

#[test]
fn reserve_marks_claims_to_provision_with_the_selected_node() {
    let mut s = snapshot(Cluster {
        volumes: vec![],
        claims: vec![pvc("data", "csi", json!({}))],
        classes: vec![class("csi", "WaitForFirstConsumer", "example.com/csi")],
    });
    let plugin = VolumeBinding::default();
    let pod = pod_with(&["data"]);
    let mut state = CycleState::default();
    assert!(plugin.pre_filter(&mut state, &pod, &s).is_ok());
    plugin.reserve(&mut state, &pod, "node-a", &mut s).unwrap();
    let claim = s.volumes.claim("default/data").unwrap();
    assert_eq!(
        annotation(&claim.metadata, ANN_SELECTED_NODE),
        Some("node-a")
    );
}

#[test]
fn allowed_topologies_restrict_provisioning() {
    let mut restricted = class("csi", "WaitForFirstConsumer", "example.com/csi");
    restricted.allowed_topologies = Some(
        serde_json::from_value(json!([{"matchLabelExpressions": [
            {"key": "kubernetes.io/hostname", "values": ["node-b"]}]}]))
        .unwrap(),
    );
    let got = run(
        Cluster {
            volumes: vec![],
            claims: vec![pvc("data", "csi", json!({}))],
            classes: vec![restricted],
        },
        &["data"],
    );
    assert_eq!(
        got,
        Ok(vec![Some(vec![ERR_BIND_CONFLICT.to_owned()]), None])
    );
}

#[test]
fn a_generic_ephemeral_volume_uses_the_claim_made_for_its_pod() {
    let pod = pod_json(json!({
        "metadata": {"name": "web", "uid": "web-uid"},
        "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
            "resources": {"requests": {"storage": "1Gi"}}}}}}],
    }));
    assert_eq!(
        pod.volume_claims,
        [crate::types::VolumeClaim {
            name: "web-scratch".into(),
            ephemeral: true
        }]
    );
    // A PersistentVolumeClaim volume's claims are not ephemeral ones.
    assert_eq!(pod.pvc_claims().count(), 0);
    let owned_by = |uid: &str| {
        json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
            "name": "web", "uid": uid, "controller": true}]}})
    };
    let verdict = |claims: Vec<PersistentVolumeClaim>| {
        let s = snapshot(Cluster {
            volumes: vec![pv("local-b", "5Gi", "local", Some("node-b"), json!({}))],
            claims,
            classes: vec![class(
                "local",
                "WaitForFirstConsumer",
                NOT_SUPPORTED_PROVISIONER,
            )],
        });
        let plugin = VolumeBinding::default();
        let mut state = CycleState::default();
        match plugin.pre_filter(&mut state, &pod, &s) {
            Err(f) => Err(f.reasons.join(", ")),
            Ok(_) => Ok(["node-a", "node-b"]
                .iter()
                .map(|n| plugin.filter(&state, &pod, &node(n)).is_ok())
                .collect::<Vec<_>>()),
        }
    };
    assert_eq!(
        verdict(vec![]),
        Err(
            "waiting for ephemeral volume controller to create the persistentvolumeclaim \"web-scratch\""
                .into()
        )
    );
    assert_eq!(
        verdict(vec![pvc("web-scratch", "local", owned_by("someone-else"))]),
        Err(
            "PVC default/web-scratch was not created for pod default/web (pod is not owner)".into()
        )
    );
    // The pod's own claim binds like any other: only node-b has a volume for it.
    assert_eq!(
        verdict(vec![pvc("web-scratch", "local", owned_by("web-uid"))]),
        Ok(vec![false, true])
    );
}
