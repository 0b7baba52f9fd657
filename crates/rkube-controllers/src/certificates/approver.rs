//! The CSR approver (`csrapproving`, upstream's `sarApprover`): a kubelet client certificate
//! request (`kubernetes.io/kube-apiserver-client-kubelet`, subject `system:node:<name>` in
//! exactly the `system:nodes` organization, no subject alternative names, the usages a
//! kubelet client asks for) is approved when its requestor may ask for it. Upstream asks a
//! SubjectAccessReview whether the requestor may create `certificatesigningrequests/nodeclient`
//! (any node's, granted to `system:bootstrappers` by the join tooling) or
//! `certificatesigningrequests/selfnodeclient` (its own, renewing: granted to `system:nodes`).
//! rkube has no RBAC yet, so those default grants are written out here, with
//! `system:masters` allowed everything as upstream's superuser group is.
//!
//! A kubelet serving certificate request (`kubernetes.io/kubelet-serving`, which upstream
//! leaves to a person or an add-on approver) is approved when a node asks for its own name
//! (`system:node:<name>` in `system:nodes`, DNS and IP names only, serving usages) or a
//! `system:masters` member asks, so every node's kubelet API serves a certificate of the
//! cluster CA.
//!
//! Anything else is left for a person (`kubectl certificate approve|deny`) or another approver.

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::policy::{validate_kubelet_client, validate_kubelet_serving};
use super::{
    APPROVED, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, Request, approval_state, condition,
    is_issued, run_over_requests, with_condition,
};
use crate::informer::{Next, is_conflict, is_not_found};

/// The message of an approval for a joining node (upstream's wording, SAR included).
pub const NODE_CLIENT_MESSAGE: &str =
    "Auto approving kubelet client certificate after SubjectAccessReview.";
/// The message of an approval for a node renewing its own certificate.
pub const SELF_NODE_CLIENT_MESSAGE: &str =
    "Auto approving self kubelet client certificate after SubjectAccessReview.";

/// The message of an approval of a node's own serving certificate.
pub const SELF_NODE_SERVING_MESSAGE: &str =
    "Auto approving kubelet serving certificate for the requesting node.";

/// What a requestor may ask to have approved (upstream's `certificatesigningrequests/…`
/// subresources checked by SubjectAccessReview).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Permission {
    /// `nodeclient`: a client certificate for any node.
    NodeClient,
    /// `selfnodeclient`: a client certificate for the requestor's own node.
    SelfNodeClient,
}

/// Upstream's default grants of the two permissions, standing in for the review.
fn may(groups: &[String], permission: Permission) -> bool {
    let member = |g: &str| groups.iter().any(|have| have == g);
    member("system:masters")
        || match permission {
            Permission::NodeClient => member("system:bootstrappers"),
            Permission::SelfNodeClient => member("system:nodes"),
        }
}

/// The approval message for `csr` if it is to be approved now; `None` to leave it: already
/// decided or issued, unreadable, not a kubelet client request, or from a requestor who may
/// not have it approved automatically.
pub fn approval(csr: &CertificateSigningRequest) -> Option<&'static str> {
    let (approved, denied) = approval_state(csr);
    if approved || denied || is_issued(csr) {
        return None;
    }
    let request = Request::parse(&csr.spec.request.0).ok()?;
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if csr.spec.signer_name == KUBELET_SERVING {
        validate_kubelet_serving(&request, &usages).ok()?;
        let username = csr.spec.username.as_deref().unwrap_or_default();
        let groups = csr.spec.groups.as_deref().unwrap_or_default();
        let member = |g: &str| groups.iter().any(|have| have == g);
        return ((username == request.common_name && member("system:nodes"))
            || member("system:masters"))
        .then_some(SELF_NODE_SERVING_MESSAGE);
    }
    if csr.spec.signer_name != KUBE_APISERVER_CLIENT_KUBELET {
        return None;
    }
    validate_kubelet_client(&request, &usages).ok()?;
    let username = csr.spec.username.as_deref().unwrap_or_default();
    let groups = csr.spec.groups.as_deref().unwrap_or_default();
    // Upstream tries the self-renewal recognizer first, then the general one.
    if username == request.common_name && may(groups, Permission::SelfNodeClient) {
        return Some(SELF_NODE_CLIENT_MESSAGE);
    }
    if may(groups, Permission::NodeClient) {
        return Some(NODE_CLIENT_MESSAGE);
    }
    None
}

/// Approves kubelet client certificate requests: see the module's documentation.
pub struct CsrApprovingController {
    client: kube::Client,
}

impl CsrApprovingController {
    /// A controller acting through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let client = self.client.clone();
        let this = &self;
        run_over_requests(client, "csrapproving", |csr| async move {
            this.reconcile(&csr, Timestamp::now()).await
        })
        .await;
    }

    /// Approves `csr` through the `approval` subresource if [`approval`] says so.
    pub async fn reconcile(
        &self,
        csr: &Arc<CertificateSigningRequest>,
        now: Timestamp,
    ) -> Result<Next, kube::Error> {
        let Some(message) = approval(csr) else {
            return Ok(Next::Wait);
        };
        let name = csr.metadata.name.clone().unwrap_or_default();
        let approved = with_condition(csr, condition(APPROVED, "AutoApproved", message, now));
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        // The write carries the resource version read: if the request changed meanwhile,
        // its new version comes through the informer and is judged again.
        match api
            .replace_subresource("approval", &name, &PostParams::default(), &approved)
            .await
        {
            Ok(_) => {
                tracing::info!(csr = name, "{message}");
                Ok(Next::Wait)
            }
            Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(Next::Wait),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{DENIED, KUBE_APISERVER_CLIENT};
    use super::*;

    const KUBELET_USAGES: &[&str] = &["digital signature", "client auth"];
    const BOOTSTRAPPER: &[&str] = &[
        "system:bootstrappers",
        "system:bootstrappers:rkube",
        "system:authenticated",
    ];

    fn node_request(cn: &str, organizations: &[&str]) -> String {
        request_pem(cn, organizations, &[])
    }

    #[test]
    fn a_joining_nodes_request_is_approved() {
        let pem = node_request("system:node:a", &["system:nodes"]);
        let csr = csr(
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            KUBELET_USAGES,
            "system:bootstrap:rkube",
            BOOTSTRAPPER,
        );
        assert_eq!(approval(&csr), Some(NODE_CLIENT_MESSAGE));
        // RSA keys add key encipherment; the order of usages does not matter.
        let rsa = super::super::testing::csr(
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            &["client auth", "key encipherment", "digital signature"],
            "system:bootstrap:rkube",
            BOOTSTRAPPER,
        );
        assert_eq!(approval(&rsa), Some(NODE_CLIENT_MESSAGE));
    }

    #[test]
    fn a_nodes_own_serving_certificate_is_approved_and_nothing_else() {
        const SERVING: &[&str] = &["digital signature", "server auth"];
        let nodes = &["system:nodes", "system:authenticated"];
        let pem = request_pem("system:node:a", &["system:nodes"], &["a", "10.0.0.1"]);
        let own = csr(&pem, KUBELET_SERVING, SERVING, "system:node:a", nodes);
        assert_eq!(approval(&own), Some(SELF_NODE_SERVING_MESSAGE));
        let admin = csr(
            &pem,
            KUBELET_SERVING,
            SERVING,
            "system:apiserver",
            &["system:masters"],
        );
        assert_eq!(approval(&admin), Some(SELF_NODE_SERVING_MESSAGE));
        // Another node's name, a client usage, or no names at all are left alone.
        let other = csr(&pem, KUBELET_SERVING, SERVING, "system:node:b", nodes);
        assert_eq!(approval(&other), None);
        let client_usage = csr(
            &pem,
            KUBELET_SERVING,
            &["digital signature", "client auth"],
            "system:node:a",
            nodes,
        );
        assert_eq!(approval(&client_usage), None);
        let unnamed = request_pem("system:node:a", &["system:nodes"], &[]);
        let unnamed = csr(&unnamed, KUBELET_SERVING, SERVING, "system:node:a", nodes);
        assert_eq!(approval(&unnamed), None);
        let bootstrapper = csr(
            &pem,
            KUBELET_SERVING,
            SERVING,
            "system:bootstrap:x",
            BOOTSTRAPPER,
        );
        assert_eq!(approval(&bootstrapper), None);
    }

    #[test]
    fn a_node_renewing_its_own_certificate_is_approved() {
        let pem = node_request("system:node:a", &["system:nodes"]);
        let groups = &["system:nodes", "system:authenticated"];
        let own = csr(
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            KUBELET_USAGES,
            "system:node:a",
            groups,
        );
        assert_eq!(approval(&own), Some(SELF_NODE_CLIENT_MESSAGE));
        // Another node's certificate is not its to ask for.
        let other = csr(
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            KUBELET_USAGES,
            "system:node:b",
            groups,
        );
        assert_eq!(approval(&other), None);
    }

    #[test]
    fn requests_outside_the_kubelet_client_shape_are_left_alone() {
        let cases = [
            (
                node_request("system:node:a", &["system:masters"]),
                KUBELET_USAGES,
            ),
            (
                node_request("system:node:a", &["system:nodes", "system:masters"]),
                KUBELET_USAGES,
            ),
            (node_request("system:node:a", &[]), KUBELET_USAGES),
            (node_request("jane", &["system:nodes"]), KUBELET_USAGES),
            (
                request_pem("system:node:a", &["system:nodes"], &["a.example"]),
                KUBELET_USAGES,
            ),
            (
                node_request("system:node:a", &["system:nodes"]),
                &["digital signature", "client auth", "server auth"][..],
            ),
            (
                node_request("system:node:a", &["system:nodes"]),
                &["digital signature"][..],
            ),
        ];
        for (pem, usages) in cases {
            let csr = csr(
                &pem,
                KUBE_APISERVER_CLIENT_KUBELET,
                usages,
                "system:bootstrap:rkube",
                BOOTSTRAPPER,
            );
            assert_eq!(approval(&csr), None, "{usages:?} {pem}");
        }
    }

    #[test]
    fn other_signers_requestors_and_decided_requests_are_left_alone() {
        let pem = node_request("system:node:a", &["system:nodes"]);
        let for_signer = |signer: &str, user: &str, groups: &[&str]| {
            csr(&pem, signer, KUBELET_USAGES, user, groups)
        };
        assert_eq!(
            approval(&for_signer(
                KUBE_APISERVER_CLIENT,
                "system:bootstrap:rkube",
                BOOTSTRAPPER
            )),
            None
        );
        assert_eq!(
            approval(&for_signer(
                KUBE_APISERVER_CLIENT_KUBELET,
                "jane",
                &["dev", "system:authenticated"]
            )),
            None
        );
        let fresh = for_signer(
            KUBE_APISERVER_CLIENT_KUBELET,
            "system:bootstrap:rkube",
            BOOTSTRAPPER,
        );
        assert_eq!(approval(&with(fresh.clone(), DENIED)), None);
        assert_eq!(approval(&with(fresh.clone(), APPROVED)), None);
        let mut garbled = fresh;
        garbled.spec.request = k8s_openapi::ByteString(b"garbage".to_vec());
        assert_eq!(approval(&garbled), None);
    }
}
