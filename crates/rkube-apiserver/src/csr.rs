//! What upstream's CertificateSigningRequest strategy adds on create: the requesting user.
//! Whoever creates a CSR is recorded in `spec.username`, `spec.uid` and `spec.groups`, replacing
//! anything the client sent, so that approvers can trust who asked
//! (`pkg/registry/certificates/certificates/strategy.go`, `PrepareForCreate`).

use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::decode::Incoming;

/// Records `user` as the requestor of a CertificateSigningRequest being created; other kinds
/// are left alone. A body whose `spec` is not an object is left for decoding to refuse.
pub(crate) fn set_requestor(rt: &ResourceType, object: &mut Incoming, user: &UserInfo) {
    if rt.group != "certificates.k8s.io" || rt.kind != "CertificateSigningRequest" {
        return;
    }
    let object = object.object_mut();
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("username".into(), json!(user.name));
    if user.uid.is_empty() {
        spec.remove("uid");
    } else {
        spec.insert("uid".into(), json!(user.uid));
    }
    spec.insert("groups".into(), json!(user.groups));
    // rkube's identities carry no extra attributes; none may be claimed.
    spec.remove("extra");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csrs() -> &'static ResourceType {
        rkube_api::registry::all()
            .by_kind("certificates.k8s.io", "CertificateSigningRequest")
            .unwrap()
    }

    #[test]
    fn the_requestor_replaces_what_the_client_claimed() {
        let mut object = Incoming::Parsed(json!({"spec": {
            "request": "",
            "signerName": "kubernetes.io/kube-apiserver-client",
            "username": "system:node:forged",
            "groups": ["system:masters"],
            "extra": {"x": ["y"]},
        }}));
        set_requestor(csrs(), &mut object, &UserInfo::bootstrapper("rkube"));
        let Incoming::Parsed(object) = object else {
            unreachable!()
        };
        assert_eq!(object["spec"]["username"], "system:bootstrap:rkube");
        assert_eq!(
            object["spec"]["groups"],
            json!([
                "system:bootstrappers",
                "system:bootstrappers:rkube",
                "system:authenticated"
            ])
        );
        assert!(object["spec"].get("extra").is_none());
        assert!(object["spec"].get("uid").is_none());
    }

    #[test]
    fn other_kinds_and_odd_bodies_are_left_alone() {
        let configmaps = rkube_api::registry::all().by_kind("", "ConfigMap").unwrap();
        let mut object = Incoming::Parsed(json!({"spec": {}}));
        set_requestor(configmaps, &mut object, &UserInfo::loopback());
        assert!(matches!(&object, Incoming::Parsed(o) if o == &json!({"spec": {}})));
        let mut odd = Incoming::Parsed(json!({"spec": "x"}));
        set_requestor(csrs(), &mut odd, &UserInfo::loopback());
        assert!(matches!(&odd, Incoming::Parsed(o) if o == &json!({"spec": "x"})));
    }
}
