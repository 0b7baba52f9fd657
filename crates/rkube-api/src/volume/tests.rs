#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn pv(name: &str, size: &str, modes: &[&str], extra: Value) -> Arc<PersistentVolume> {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": modes, "hostPath": {"path": "/x"}},
        "status": {"phase": "Available"},
    });
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
    Arc::new(serde_json::from_value(v).unwrap())
}

fn pvc(size: &str, modes: &[&str], extra: Value) -> PersistentVolumeClaim {
    let mut c = json!({
        "metadata": {"name": "claim", "namespace": "ns", "uid": "claim-uid"},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}},
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

fn chosen(found: Option<&Arc<PersistentVolume>>) -> Option<&str> {
    found.and_then(|v| v.metadata.name.as_deref())
}

/// What is checked, the claim, the volumes, and the volume that should be chosen.
type Case = (
    &'static str,
    PersistentVolumeClaim,
    Vec<Arc<PersistentVolume>>,
    Option<&'static str>,
);

#[test]
fn the_controller_picks_the_smallest_fitting_volume_of_the_claim_class_and_selector() {
    let rwo = &["ReadWriteOnce"];
    let cases: Vec<Case> = vec![
        (
            "smallest that fits",
            pvc("5Gi", rwo, json!({})),
            vec![
                pv("big", "100Gi", rwo, json!({})),
                pv("small", "1Gi", rwo, json!({})),
                pv("fits", "10Gi", rwo, json!({})),
            ],
            Some("fits"),
        ),
        (
            "none big enough",
            pvc("50Gi", rwo, json!({})),
            vec![pv("a", "10Gi", rwo, json!({}))],
            None,
        ),
        (
            "no class matches only volumes without one",
            pvc("1Gi", rwo, json!({})),
            vec![
                pv(
                    "fast",
                    "1Gi",
                    rwo,
                    json!({"spec": {"storageClassName": "fast"}}),
                ),
                pv("plain", "2Gi", rwo, json!({})),
            ],
            Some("plain"),
        ),
        (
            "class must be equal",
            pvc("1Gi", rwo, json!({"spec": {"storageClassName": "fast"}})),
            vec![
                pv("plain", "1Gi", rwo, json!({})),
                pv(
                    "fast",
                    "2Gi",
                    rwo,
                    json!({"spec": {"storageClassName": "fast"}}),
                ),
            ],
            Some("fast"),
        ),
        (
            "selector on labels",
            pvc(
                "1Gi",
                rwo,
                json!({"spec": {"selector": {"matchLabels": {"tier": "gold"}}}}),
            ),
            vec![
                pv(
                    "bronze",
                    "1Gi",
                    rwo,
                    json!({"metadata": {"labels": {"tier": "bronze"}}}),
                ),
                pv(
                    "gold",
                    "5Gi",
                    rwo,
                    json!({"metadata": {"labels": {"tier": "gold"}}}),
                ),
            ],
            Some("gold"),
        ),
        (
            "access modes must be offered",
            pvc("1Gi", &["ReadWriteMany"], json!({})),
            vec![pv("rwo", "1Gi", rwo, json!({}))],
            None,
        ),
        (
            "fewest extra access modes before size",
            pvc("1Gi", rwo, json!({})),
            vec![
                pv("both", "1Gi", &["ReadWriteOnce", "ReadOnlyMany"], json!({})),
                pv("exact", "9Gi", rwo, json!({})),
            ],
            Some("exact"),
        ),
        (
            "volume mode must agree",
            pvc("1Gi", rwo, json!({"spec": {"volumeMode": "Block"}})),
            vec![pv("fs", "1Gi", rwo, json!({}))],
            None,
        ),
        (
            "claimed or not available volumes are skipped",
            pvc("1Gi", rwo, json!({})),
            vec![
                pv(
                    "taken",
                    "1Gi",
                    rwo,
                    json!({"spec": {"claimRef": {"namespace": "ns", "name": "other"}}}),
                ),
                pv(
                    "released",
                    "1Gi",
                    rwo,
                    json!({"status": {"phase": "Released"}}),
                ),
                pv("free", "3Gi", rwo, json!({})),
            ],
            Some("free"),
        ),
        (
            "a volume pre-bound to the claim wins over a smaller one",
            pvc("1Gi", rwo, json!({})),
            vec![
                pv("small", "1Gi", rwo, json!({})),
                pv(
                    "reserved",
                    "50Gi",
                    rwo,
                    json!({"spec": {"claimRef": {"namespace": "ns", "name": "claim"}}}),
                ),
            ],
            Some("reserved"),
        ),
        (
            "pre-bound to another claim with the same name",
            pvc("1Gi", rwo, json!({})),
            vec![pv(
                "stale",
                "1Gi",
                rwo,
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "claim", "uid": "old"}}}),
            )],
            None,
        ),
    ];
    for (what, claim, volumes, want) in cases {
        let got = find_best_match_for_claim(&claim, &volumes, false).unwrap();
        assert_eq!(chosen(got), want, "{what}");
    }
}

#[test]
fn delayed_claims_are_left_to_the_scheduler_unless_pre_bound() {
    let rwo = &["ReadWriteOnce"];
    let claim = pvc("1Gi", rwo, json!({}));
    let free = vec![pv("free", "1Gi", rwo, json!({}))];
    assert_eq!(
        chosen(find_best_match_for_claim(&claim, &free, true).unwrap()),
        None
    );
    let reserved = vec![pv(
        "reserved",
        "1Gi",
        rwo,
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "claim", "uid": "claim-uid"}}}),
    )];
    assert_eq!(
        chosen(find_best_match_for_claim(&claim, &reserved, true).unwrap()),
        Some("reserved")
    );
}

#[test]
fn on_the_scheduler_path_node_affinity_and_exclusions_count() {
    let rwo = &["ReadWriteOnce"];
    let claim = pvc("1Gi", rwo, json!({}));
    let volumes = vec![
        pv(
            "on-a",
            "1Gi",
            rwo,
            json!({"metadata": {"labels": {"node": "a"}}}),
        ),
        pv(
            "on-b",
            "2Gi",
            rwo,
            json!({"metadata": {"labels": {"node": "b"}}}),
        ),
    ];
    let on_b = |v: &PersistentVolume| v.metadata.labels.as_ref().unwrap()["node"] == "b";
    let none = HashSet::new();
    let found = find_matching_volume(&claim, &volumes, Some(&on_b), &none, true).unwrap();
    assert_eq!(chosen(found), Some("on-b"));
    let excluded: HashSet<String> = ["on-b".to_owned()].into();
    let found = find_matching_volume(&claim, &volumes, Some(&on_b), &excluded, true).unwrap();
    assert_eq!(chosen(found), None);
}

#[test]
fn binding_a_volume_sets_the_claim_ref_and_marks_who_bound_it() {
    let claim = pvc("1Gi", &["ReadWriteOnce"], json!({}));
    let free = pv("v", "1Gi", &["ReadWriteOnce"], json!({}));
    let bound = bind_volume_to_claim(&free, &claim).unwrap();
    let r = claim_ref(&bound).unwrap();
    assert_eq!(r.uid.as_deref(), Some("claim-uid"));
    assert_eq!(r.kind.as_deref(), Some("PersistentVolumeClaim"));
    assert_eq!(
        annotation(&bound.metadata, ANN_BOUND_BY_CONTROLLER),
        Some("yes")
    );
    assert!(bind_volume_to_claim(&bound, &claim).is_none(), "idempotent");
    // Pre-bound by the user: the uid is filled in, but the controller did not choose it.
    let user = pv(
        "u",
        "1Gi",
        &["ReadWriteOnce"],
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "claim"}}}),
    );
    let bound = bind_volume_to_claim(&user, &claim).unwrap();
    assert!(!has_annotation(&bound.metadata, ANN_BOUND_BY_CONTROLLER));
    assert_eq!(claim_ref(&bound).unwrap().uid.as_deref(), Some("claim-uid"));
}

#[test]
fn a_named_volume_is_checked_against_the_claim() {
    let claim = pvc("5Gi", &["ReadWriteOnce"], json!({}));
    let cases = [
        (
            pv("small", "1Gi", &["ReadWriteOnce"], json!({})),
            Err("requested PV is too small"),
        ),
        (
            pv(
                "classy",
                "5Gi",
                &["ReadWriteOnce"],
                json!({"spec": {"storageClassName": "x"}}),
            ),
            Err("storageClassName does not match"),
        ),
        (
            pv("rox", "5Gi", &["ReadOnlyMany"], json!({})),
            Err("incompatible accessMode"),
        ),
        (pv("ok", "5Gi", &["ReadWriteOnce"], json!({})), Ok(())),
    ];
    for (volume, want) in cases {
        assert_eq!(
            check_volume_satisfies_claim(&volume, &claim),
            want.map_err(str::to_owned)
        );
    }
}
