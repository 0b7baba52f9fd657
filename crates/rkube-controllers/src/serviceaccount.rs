//! The service account controller: every active namespace has a `default` ServiceAccount and
//! the `kube-root-ca.crt` ConfigMap holding the cluster CA, as upstream's controllers ensure.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

/// How often namespaces are looked at again.
const RESYNC: Duration = Duration::from_secs(1);

/// The name of the ConfigMap with the cluster CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Ensures the per-namespace service account objects.
#[derive(Clone)]
pub struct ServiceAccountController {
    client: kube::Client,
    ca_cert: String,
}

fn is_missing(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

impl ServiceAccountController {
    /// A controller acting through `client`, publishing `ca_cert` (PEM).
    pub fn new(client: kube::Client, ca_cert: impl Into<String>) -> Self {
        Self {
            client,
            ca_cert: ca_cert.into(),
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        loop {
            match namespaces
                .list(&ListParams::default().fields("status.phase=Active"))
                .await
            {
                Ok(list) => {
                    for ns in list.items {
                        if let Err(err) = self.reconcile(&ns).await {
                            tracing::warn!(error = %err, "service account controller");
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "listing namespaces"),
            }
            tokio::time::sleep(RESYNC).await;
        }
    }

    /// Creates what is missing and restores the CA if it was changed. Idempotent.
    pub async fn reconcile(&self, ns: &Namespace) -> Result<(), kube::Error> {
        let Some(name) = ns.metadata.name.as_deref() else {
            return Ok(());
        };
        if ns.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), name);
        if let Err(err) = accounts.get("default").await {
            if !is_missing(&err) {
                return Err(err);
            }
            let mut account = ServiceAccount::default();
            account.metadata.name = Some("default".into());
            match accounts.create(&PostParams::default(), &account).await {
                Ok(_) => {}
                Err(err) if is_conflict(&err) => {}
                Err(err) => return Err(err),
            }
        }
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), name);
        let data = BTreeMap::from([("ca.crt".to_owned(), self.ca_cert.clone())]);
        match maps.get(ROOT_CA_CONFIGMAP).await {
            Ok(existing) if existing.data.as_ref() == Some(&data) => Ok(()),
            Ok(_) => {
                let patch = serde_json::json!({"data": data});
                maps.patch(
                    ROOT_CA_CONFIGMAP,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(|_| ())
            }
            Err(err) if is_missing(&err) => {
                let mut map = ConfigMap::default();
                map.metadata.name = Some(ROOT_CA_CONFIGMAP.into());
                map.metadata.annotations = Some(BTreeMap::from([(
                    "kubernetes.io/description".to_owned(),
                    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_owned(),
                )]));
                map.data = Some(data);
                match maps.create(&PostParams::default(), &map).await {
                    Ok(_) => Ok(()),
                    Err(err) if is_conflict(&err) => Ok(()),
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }
}
