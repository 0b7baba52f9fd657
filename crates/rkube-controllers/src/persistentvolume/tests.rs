#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

fn merged(mut base: Value, extra: &Value) -> Value {
    for part in ["metadata", "spec", "status"] {
        for (k, v) in extra
            .get(part)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            base[part][k] = v.clone();
        }
    }
    base
}

fn pv(name: &str, size: &str, extra: Value) -> Arc<PersistentVolume> {
    let base = json!({
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/x"}, "persistentVolumeReclaimPolicy": "Retain"},
        "status": {"phase": "Available"},
    });
    Arc::new(serde_json::from_value(merged(base, &extra)).unwrap())
}

fn pvc(extra: Value) -> PersistentVolumeClaim {
    let base = json!({
        "metadata": {"name": "data", "namespace": "ns", "uid": "claim-uid"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    });
    serde_json::from_value(merged(base, &extra)).unwrap()
}

fn class(name: &str, mode: &str, provisioner: &str) -> StorageClass {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
    }))
    .unwrap()
}

fn bound_to(step: &ClaimStep) -> Option<&str> {
    match step {
        ClaimStep::Bind(v) => v.metadata.name.as_deref(),
        _ => None,
    }
}

#[test]
fn unbound_claims_bind_to_the_smallest_match_or_wait_as_upstream_says() {
    let local = class("local", "WaitForFirstConsumer", NOT_SUPPORTED);
    let fast = class("fast", "Immediate", "example.com/csi");
    let volumes = vec![
        pv("large", "10Gi", json!({})),
        pv("small", "2Gi", json!({})),
        pv("tiny", "500Mi", json!({})),
        pv(
            "local-1",
            "1Gi",
            json!({"spec": {"storageClassName": "local"}}),
        ),
    ];
    struct Case {
        what: &'static str,
        claim: PersistentVolumeClaim,
        class: Option<StorageClass>,
        want: ClaimStep,
    }
    let pending = |reason: &'static str, message: &str| {
        ClaimStep::Pending(Some(Note {
            type_: if reason == "VolumeMismatch" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            message: message.into(),
        }))
    };
    let cases = vec![
        Case {
            what: "no class: the smallest volume without a class that fits",
            claim: pvc(json!({})),
            class: None,
            want: ClaimStep::Bind(volumes[1].clone()),
        },
        Case {
            what: "no class and nothing fits",
            claim: pvc(json!({"spec": {"resources": {"requests": {"storage": "1Ti"}}}})),
            class: None,
            want: pending(
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            ),
        },
        Case {
            what: "a WaitForFirstConsumer claim waits for the scheduler",
            claim: pvc(json!({"spec": {"storageClassName": "local"}})),
            class: Some(local.clone()),
            want: pending(
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            ),
        },
        Case {
            what: "a missing class with no volume cannot be provisioned",
            claim: pvc(json!({"spec": {"storageClassName": "gone"}})),
            class: None,
            want: ClaimStep::Event(Note {
                type_: EventType::Warning,
                reason: "ProvisioningFailed",
                message: "storageclass.storage.k8s.io \"gone\" not found".into(),
            }),
        },
        Case {
            what: "an external provisioner is asked",
            claim: pvc(json!({"spec": {"storageClassName": "fast"}})),
            class: Some(fast.clone()),
            want: ClaimStep::Provision("example.com/csi".into()),
        },
        Case {
            what: "a named volume that does not serve the claim",
            claim: pvc(json!({"spec": {"volumeName": "tiny"}})),
            class: None,
            want: pending("VolumeMismatch", "requested PV is too small"),
        },
        Case {
            what: "a named volume that does not exist yet",
            claim: pvc(json!({"spec": {"volumeName": "later"}})),
            class: None,
            want: ClaimStep::Pending(None),
        },
    ];
    for case in cases {
        let got = claim_step(&case.claim, &volumes, case.class.as_ref()).unwrap();
        assert_eq!(got, case.want, "{}", case.what);
    }
    // A named volume that fits is bound even though a smaller one exists.
    let named = pvc(json!({"spec": {"volumeName": "large"}}));
    assert_eq!(
        bound_to(&claim_step(&named, &volumes, None).unwrap()),
        Some("large")
    );
}

const NOT_SUPPORTED: &str = rkube_api::volume::NOT_SUPPORTED_PROVISIONER;

#[test]
fn a_volume_the_scheduler_pre_bound_completes_a_delayed_claim() {
    let local = class("local", "WaitForFirstConsumer", NOT_SUPPORTED);
    let claim = pvc(json!({"spec": {"storageClassName": "local"}}));
    let volumes = vec![
        pv(
            "other",
            "1Gi",
            json!({"spec": {"storageClassName": "local"}}),
        ),
        pv(
            "chosen",
            "5Gi",
            json!({"spec": {"storageClassName": "local",
                "claimRef": {"namespace": "ns", "name": "data", "uid": "claim-uid"}}}),
        ),
    ];
    let step = claim_step(&claim, &volumes, Some(&local)).unwrap();
    assert_eq!(bound_to(&step), Some("chosen"));
}

#[test]
fn bound_claims_stay_bound_or_are_lost() {
    let done = json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
                      "spec": {"volumeName": "v"}});
    let claim = pvc(done.clone());
    let mine = pv(
        "v",
        "1Gi",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "claim-uid"}}}),
    );
    assert_eq!(
        bound_to(&claim_step(&claim, std::slice::from_ref(&mine), None).unwrap()),
        Some("v")
    );
    assert_eq!(
        claim_step(&claim, &[], None).unwrap(),
        ClaimStep::Lost("Bound claim has lost its PersistentVolume. Data on the volume is lost!")
    );
    let theirs = pv(
        "v",
        "1Gi",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "someone-else"}}}),
    );
    assert_eq!(
        claim_step(&claim, &[theirs], None).unwrap(),
        ClaimStep::Lost("Two claims are bound to the same volume, this one is bound incorrectly")
    );
}

#[test]
fn volumes_follow_their_claims_and_reclaim_policy() {
    let reference = json!({"namespace": "ns", "name": "data", "uid": "claim-uid"});
    let claimed = |policy: &str, extra_meta: Value| {
        pv(
            "v",
            "1Gi",
            json!({"metadata": extra_meta,
                   "spec": {"claimRef": reference, "persistentVolumeReclaimPolicy": policy},
                   "status": {"phase": "Bound"}}),
        )
    };
    let bound_claim = pvc(json!({"spec": {"volumeName": "v"}}));
    let unbound_claim = pvc(json!({}));
    let elsewhere = pvc(json!({"spec": {"volumeName": "w"}}));
    let same_name = pvc(json!({"metadata": {"uid": "new-uid"}}));
    let by_controller = json!({"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}});
    let failed = |reason: &'static str, message: &str| {
        VolumeStep::Released(Some(Note {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }))
    };
    let cases: Vec<(
        &str,
        Arc<PersistentVolume>,
        Option<&PersistentVolumeClaim>,
        VolumeStep,
    )> = vec![
        (
            "unclaimed",
            pv("v", "1Gi", json!({})),
            None,
            VolumeStep::Phase("Available"),
        ),
        (
            "reserved for a claim not yet bound",
            pv(
                "v",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "data"}}}),
            ),
            None,
            VolumeStep::Phase("Available"),
        ),
        (
            "bound both ways",
            claimed("Retain", json!({})),
            Some(&bound_claim),
            VolumeStep::Phase("Bound"),
        ),
        (
            "claim still to bind",
            claimed("Retain", json!({})),
            Some(&unbound_claim),
            VolumeStep::SyncClaim("ns".into(), "data".into()),
        ),
        (
            "claim gone, Retain",
            claimed("Retain", json!({})),
            None,
            VolumeStep::Released(None),
        ),
        (
            "claim gone, Delete without a deleter",
            claimed("Delete", json!({})),
            None,
            failed(
                "VolumeFailedDelete",
                "error getting deleter volume plugin for volume \"v\": no deletable volume plugin matched",
            ),
        ),
        (
            "claim gone, Delete left to the external provisioner",
            claimed(
                "Delete",
                json!({"annotations": {"pv.kubernetes.io/provisioned-by": "example.com/csi"}}),
            ),
            None,
            VolumeStep::Released(None),
        ),
        (
            "claim gone, Recycle",
            claimed("Recycle", json!({})),
            None,
            failed(
                "VolumeFailedRecycle",
                "No recycler plugin found for the volume!",
            ),
        ),
        (
            "a new claim with the same name is not the old one",
            claimed("Retain", json!({})),
            Some(&same_name),
            VolumeStep::Released(None),
        ),
        (
            "the controller's choice went elsewhere",
            claimed("Retain", by_controller),
            Some(&elsewhere),
            VolumeStep::Unbind,
        ),
        (
            "a user's binding is left alone",
            claimed("Retain", json!({})),
            Some(&elsewhere),
            VolumeStep::Nothing,
        ),
    ];
    for (what, volume, claim, want) in cases {
        assert_eq!(volume_step(&volume, claim), want, "{what}");
    }
    let already_failed = pv(
        "v",
        "1Gi",
        json!({"spec": {"claimRef": reference}, "status": {"phase": "Failed"}}),
    );
    assert_eq!(volume_step(&already_failed, None), VolumeStep::Nothing);
}
