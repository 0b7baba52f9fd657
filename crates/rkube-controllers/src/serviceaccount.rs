//! The service account controller: every active namespace has a `default` ServiceAccount and
//! the `kube-root-ca.crt` ConfigMap holding the cluster CA, as upstream's controllers ensure.
//! It follows namespaces, `default` accounts and the CA ConfigMaps through watches, so a new
//! namespace has its account within moments: ServiceAccount admission waits for it (at most
//! a second or two) when a pod is created right after its namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::informer::SharedInformers;
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed, informer};

/// The name of the ConfigMap with the cluster CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// Ensures the per-namespace service account objects.
#[derive(Clone)]
pub struct ServiceAccountController {
    client: kube::Client,
    informers: SharedInformers,
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
    pub fn new(client: impl Into<SharedInformers>, ca_cert: impl Into<String>) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
            ca_cert: ca_cert.into(),
        }
    }

    /// Runs until the task is dropped: a namespace is reconciled when it appears or changes,
    /// when its `default` account is deleted, and when its CA ConfigMap changes or goes.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (namespaces, namespace_events) = self.informers.informer::<Namespace>().await;
        let (accounts, account_events) = informer(
            Api::<ServiceAccount>::all(self.client.clone()),
            watcher::Config::default().fields("metadata.name=default"),
        );
        let (maps, map_events) = informer(
            Api::<ConfigMap>::all(self.client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}")),
        );
        let namespace_of = |meta: &kube::api::ObjectMeta| meta.namespace.clone().into_iter();
        let _guards = [
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                namespace_events,
                |change: &Change<Namespace>| match change {
                    Change::Added(ns) | Change::Updated { new: ns, .. } => {
                        ns.metadata.name.clone().into_iter().collect()
                    }
                    Change::Deleted(_) => Vec::new(),
                },
            ))),
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                account_events,
                move |change: &Change<ServiceAccount>| match change {
                    Change::Deleted(account) => namespace_of(&account.metadata).collect(),
                    Change::Added(_) | Change::Updated { .. } => Vec::new(),
                },
            ))),
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                map_events,
                move |change: &Change<ConfigMap>| namespace_of(&change.object().metadata).collect(),
            ))),
        ];
        if namespaces.wait_until_ready().await.is_err() {
            return;
        }
        let _ = accounts.wait_until_ready().await;
        let _ = maps.wait_until_ready().await;
        let this = &self;
        let (namespaces, accounts, maps) = (&namespaces, &accounts, &maps);
        queue
            .run("serviceaccount", |name: String| async move {
                let Some(ns) = namespaces.get(&ObjectRef::new(&name)) else {
                    return Ok(Next::Wait);
                };
                // The caches usually show both in place: no request at all.
                let account = accounts.get(&ObjectRef::new("default").within(&name));
                let map = maps.get(&ObjectRef::new(ROOT_CA_CONFIGMAP).within(&name));
                if account.is_some() && map.is_some_and(|m| this.holds_ca(&m)) {
                    return Ok(Next::Wait);
                }
                this.reconcile(&ns).await.map(|()| Next::Wait)
            })
            .await;
    }

    fn ca_data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("ca.crt".to_owned(), self.ca_cert.clone())])
    }

    fn holds_ca(&self, map: &ConfigMap) -> bool {
        map.data.as_ref() == Some(&self.ca_data())
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
        let data = self.ca_data();
        match maps.get(ROOT_CA_CONFIGMAP).await {
            Ok(existing) if self.holds_ca(&existing) => Ok(()),
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
