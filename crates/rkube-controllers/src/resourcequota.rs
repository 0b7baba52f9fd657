//! The resource quota controller: each ResourceQuota's status shows its hard limits
//! (`status.hard`, copied from the spec) and what the namespace uses of each (`status.used`):
//! object counts (`pods`, `services`, `configmaps`, `secrets`, `persistentvolumeclaims`,
//! `replicationcontrollers`, `resourcequotas`, `services.nodeports`,
//! `services.loadbalancers`, `count/<resource>[.<group>]`) and compute resources summed over
//! the pods that have not finished (`requests.cpu`, `requests.memory`, `limits.cpu`,
//! `limits.memory`, `cpu`, `memory`, `requests.storage` over claims). Pod resources honour
//! the quota's scopes (Terminating, NotTerminating, BestEffort, NotBestEffort).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use rkube_api::quota::{Format, Milli, format_quantity, object_usage, parse_quantity};
use serde_json::Value;

use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed};
use crate::informer::{KeyIndex, SharedInformers, in_namespace as in_ns};

/// How often quotas counting resources without an informer (`count/<resource>.<group>`)
/// are recomputed.
const RESYNC: Duration = Duration::from_secs(30);

/// How often every quota is recomputed from scratch (upstream's
/// `--resource-quota-sync-period`), which also catches any drift.
const FULL_RESYNC: Duration = Duration::from_secs(300);

/// What a namespace holds, as the quota arithmetic needs it.
#[derive(Default)]
pub struct NamespaceUsage {
    /// Its pods, as JSON.
    pub pods: Vec<Value>,
    /// Its Services, as JSON.
    pub services: Vec<Value>,
    /// Its claims, as JSON.
    pub claims: Vec<Value>,
    /// Other object counts by resource (`configmaps`, `deployments.apps`, …).
    pub counts: BTreeMap<String, i128>,
}

/// How much of `resource` a namespace uses, or `None` for a resource the controller does not
/// track. Pod resources count only the pods that have not finished and match `scopes`.
pub fn used(resource: &str, usage: &NamespaceUsage, scopes: &[String]) -> Option<Milli> {
    let mut total: Option<i128> = None;
    for (plural, objects) in [
        ("pods", &usage.pods),
        ("services", &usage.services),
        ("persistentvolumeclaims", &usage.claims),
    ] {
        // Whether the resource concerns this kind at all, even with no objects of it.
        if object_usage("", plural, &Value::Null, resource, scopes).is_none() {
            continue;
        }
        let sum: i128 = objects
            .iter()
            .filter_map(|o| object_usage("", plural, o, resource, scopes))
            .map(|m| m.0)
            .sum();
        total = Some(total.unwrap_or(0) + sum);
    }
    if total.is_none() && scopes.is_empty() {
        let name = resource.strip_prefix("count/").unwrap_or(resource);
        total = usage.counts.get(name).map(|n| n * 1000);
    }
    total.map(Milli)
}

/// The status a quota should have: `hard` as its spec says, `used` for each tracked resource,
/// written in the format of its hard limit.
pub fn quota_status(
    quota: &ResourceQuota,
    usage: &NamespaceUsage,
) -> (BTreeMap<String, ApiQuantity>, BTreeMap<String, ApiQuantity>) {
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let scopes = quota
        .spec
        .as_ref()
        .and_then(|s| s.scopes.clone())
        .unwrap_or_default();
    let mut used_map = BTreeMap::new();
    for (name, limit) in &hard {
        let format = parse_quantity(&limit.0).map_or(Format::Decimal, |(_, f)| f);
        if let Some(value) = used(name, usage, &scopes) {
            used_map.insert(name.clone(), ApiQuantity(format_quantity(value, format)));
        }
    }
    (hard, used_map)
}

/// The plural and group a `count/<resource>.<group>` name counts.
fn count_target(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("count/")?;
    Some(rest.split_once('.').unwrap_or((rest, "")))
}

/// The caches the quota controller reads.
pub struct QuotaCaches {
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    pods_by_namespace: KeyIndex<Pod>,
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
    controllers: Store<ReplicationController>,
}

fn as_json<K: serde::Serialize>(objects: Vec<std::sync::Arc<K>>) -> Vec<Value> {
    objects
        .iter()
        .filter_map(|o| serde_json::to_value(o.as_ref()).ok())
        .collect()
}

/// Keeps every ResourceQuota's status true.
pub struct ResourceQuotaController {
    client: kube::Client,
    informers: SharedInformers,
}

fn namespace<K: Resource>(obj: &K) -> Vec<String> {
    vec![obj.meta().namespace.clone().unwrap_or_default()]
}

/// Objects that went away free quota. Creations need no recount: admission charged them
/// already, and a recount from caches that have not seen an object admitted a moment ago
/// would hand its share out twice (upstream recounts on deletions for the same reason).
fn deleted<K: Resource>(change: &Change<K>) -> Vec<String> {
    match change {
        Change::Deleted(obj) => namespace(obj.as_ref()),
        Change::Added(_) | Change::Updated { .. } => Vec::new(),
    }
}

/// A quota needs computing when it is new or its limits changed: its own status updates
/// (the controller's and admission's charges) are not a reason.
fn quota_changed(change: &Change<ResourceQuota>) -> Vec<String> {
    let quota = change.object();
    let hard = quota.spec.as_ref().and_then(|s| s.hard.as_ref());
    let seen = quota.status.as_ref().and_then(|s| s.hard.as_ref());
    if hard != seen {
        namespace(quota)
    } else {
        Vec::new()
    }
}

impl ResourceQuotaController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>, _settings: &crate::Settings) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue: WorkQueue<String> = WorkQueue::new();
        let _c = || watcher::Config::default();
        let (quotas, quota_events) = self.informers.informer::<ResourceQuota>().await;
        let (pods, pod_events) = self.informers.informer::<Pod>().await;
        let (services, service_events) = self.informers.informer::<Service>().await;
        let (claims, claim_events) = self.informers.informer::<PersistentVolumeClaim>().await;
        let (configmaps, cm_events) = self.informers.informer::<ConfigMap>().await;
        let (secrets, secret_events) = self.informers.informer::<Secret>().await;
        let (controllers, rc_events) = self.informers.informer::<ReplicationController>().await;
        let spawn = |f| AbortOnDrop(tokio::spawn(f));
        // Pods free their share when they finish, as well as when they go.
        let mut finished = std::collections::HashSet::new();
        let pod_freed = move |change: &Change<Pod>| match change {
            Change::Deleted(pod) => {
                finished.remove(&pod.metadata.uid);
                namespace(pod.as_ref())
            }
            Change::Added(pod) | Change::Updated { new: pod, .. } => {
                let terminal = matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                );
                if terminal && finished.insert(pod.metadata.uid.clone()) {
                    namespace(pod.as_ref())
                } else {
                    Vec::new()
                }
            }
        };
        let _guards = [
            spawn(Box::pin(feed(queue.clone(), quota_events, quota_changed))
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = ()> + Send>,
                >),
            spawn(Box::pin(feed(queue.clone(), pod_events, pod_freed))),
            spawn(Box::pin(feed(queue.clone(), service_events, deleted))),
            spawn(Box::pin(feed(queue.clone(), claim_events, deleted))),
            spawn(Box::pin(feed(queue.clone(), cm_events, deleted))),
            spawn(Box::pin(feed(queue.clone(), secret_events, deleted))),
            spawn(Box::pin(feed(queue.clone(), rc_events, deleted))),
        ];
        let caches = QuotaCaches {
            quotas,
            pods_by_namespace: crate::podutil::pods_by_namespace(&self.informers).await,
            pods,
            services,
            claims,
            configmaps,
            secrets,
            controllers,
        };
        let ready = [
            caches.quotas.wait_until_ready().await.is_ok(),
            caches.pods.wait_until_ready().await.is_ok(),
            caches.services.wait_until_ready().await.is_ok(),
            caches.claims.wait_until_ready().await.is_ok(),
            caches.configmaps.wait_until_ready().await.is_ok(),
            caches.secrets.wait_until_ready().await.is_ok(),
            caches.controllers.wait_until_ready().await.is_ok(),
        ];
        if ready.contains(&false) {
            return;
        }
        let this = &self;
        let caches = &caches;
        queue
            .run("resourcequota", |ns| async move {
                this.reconcile(caches, &ns).await
            })
            .await;
    }

    /// Recomputes the status of every quota in `ns`.
    pub async fn reconcile(&self, caches: &QuotaCaches, ns: &str) -> Result<Next, kube::Error> {
        let quotas = in_ns(&caches.quotas, ns);
        if quotas.is_empty() {
            return Ok(Next::Wait);
        }
        let mut usage = NamespaceUsage {
            pods: as_json(caches.pods_by_namespace.get(ns)),
            services: as_json(in_ns(&caches.services, ns)),
            claims: as_json(in_ns(&caches.claims, ns)),
            counts: BTreeMap::new(),
        };
        usage.counts.insert(
            "configmaps".into(),
            in_ns(&caches.configmaps, ns).len() as i128,
        );
        usage
            .counts
            .insert("secrets".into(), in_ns(&caches.secrets, ns).len() as i128);
        usage.counts.insert(
            "replicationcontrollers".into(),
            in_ns(&caches.controllers, ns).len() as i128,
        );
        usage
            .counts
            .insert("resourcequotas".into(), quotas.len() as i128);
        // Other kinds are counted with a list, and looked at again now and then.
        let mut resync = false;
        for quota in &quotas {
            for name in quota
                .spec
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                let Some((plural, group)) = count_target(name) else {
                    continue;
                };
                let key = name.trim_start_matches("count/").to_owned();
                if usage.counts.contains_key(&key)
                    || (group.is_empty()
                        && matches!(plural, "pods" | "services" | "persistentvolumeclaims"))
                {
                    continue;
                }
                resync = true;
                if let Some(n) = self.count(ns, plural, group).await {
                    usage.counts.insert(key, n);
                }
            }
        }
        for quota in quotas {
            let (hard, used) = quota_status(&quota, &usage);
            let status = quota.status.clone().unwrap_or_default();
            if status.hard.unwrap_or_default() == hard && status.used.unwrap_or_default() == used {
                continue;
            }
            let mut next = (*quota).clone();
            next.status = Some(k8s_openapi::api::core::v1::ResourceQuotaStatus {
                hard: Some(hard),
                used: Some(used),
            });
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), ns);
            api.replace_status(
                &quota.metadata.name.clone().unwrap_or_default(),
                &PostParams::default(),
                &next,
            )
            .await?;
        }
        Ok(Next::After(if resync { RESYNC } else { FULL_RESYNC }))
    }

    /// How many objects of `plural` in `group` the namespace has, by listing them; `None` if
    /// the resource is not served.
    async fn count(&self, ns: &str, plural: &str, group: &str) -> Option<i128> {
        let base = if group.is_empty() {
            "/api/v1".to_owned()
        } else {
            let discovery: serde_json::Value = self
                .client
                .request(
                    http::Request::get(format!("/apis/{group}"))
                        .body(Vec::new())
                        .ok()?,
                )
                .await
                .ok()?;
            let version = discovery["preferredVersion"]["groupVersion"]
                .as_str()?
                .to_owned();
            format!("/apis/{version}")
        };
        let list: serde_json::Value = self
            .client
            .request(
                http::Request::get(format!("{base}/namespaces/{ns}/{plural}"))
                    .body(Vec::new())
                    .ok()?,
            )
            .await
            .ok()?;
        Some(list["items"].as_array()?.len() as i128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Milli {
        parse_quantity(s).unwrap().0
    }

    fn pod(phase: &str, resources: Value, extra_spec: Value) -> Value {
        let mut spec = json!({"containers": [{"name": "a", "image": "i", "resources": resources}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        json!({"spec": spec, "status": {"phase": phase}})
    }

    #[test]
    fn compute_usage_sums_live_pods_with_init_containers_and_overhead() {
        let a = pod(
            "Running",
            json!({"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}),
            json!({}),
        );
        let b = pod(
            "Pending",
            json!({"requests": {"cpu": "100m"}}),
            json!({"initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "2"}}}], "overhead": {"cpu": "10m"}}),
        );
        let done = pod("Succeeded", json!({"requests": {"cpu": "4"}}), json!({}));
        let usage = NamespaceUsage {
            pods: vec![a, b, done],
            ..Default::default()
        };
        assert_eq!(used("pods", &usage, &[]), Some(Milli(2000)));
        assert_eq!(used("requests.cpu", &usage, &[]), Some(q("2260m")));
        assert_eq!(used("cpu", &usage, &[]), Some(q("2260m")));
        assert_eq!(used("limits.cpu", &usage, &[]), Some(q("1")));
        assert_eq!(used("requests.memory", &usage, &[]), Some(q("64Mi")));
        assert_eq!(used("something.else", &usage, &[]), None);
    }

    #[test]
    fn scoped_quotas_count_only_pods_in_scope() {
        let best_effort = pod("Running", json!({}), json!({}));
        let burstable = pod(
            "Running",
            json!({"requests": {"cpu": "1"}}),
            json!({"activeDeadlineSeconds": 60}),
        );
        let mut usage = NamespaceUsage {
            pods: vec![best_effort, burstable],
            ..Default::default()
        };
        usage.counts.insert("configmaps".into(), 3);
        let scope = |s: &str| vec![s.to_owned()];
        assert_eq!(
            used("pods", &usage, &scope("BestEffort")),
            Some(Milli(1000))
        );
        assert_eq!(
            used("requests.cpu", &usage, &scope("NotBestEffort")),
            Some(q("1"))
        );
        assert_eq!(
            used("pods", &usage, &scope("Terminating")),
            Some(Milli(1000))
        );
        assert_eq!(
            used("requests.cpu", &usage, &scope("NotTerminating")),
            Some(Milli(0))
        );
        assert_eq!(used("configmaps", &usage, &scope("BestEffort")), None);
        assert_eq!(used("configmaps", &usage, &[]), Some(q("3")));
    }

    #[test]
    fn quota_status_copies_hard_and_writes_used_in_the_limits_format() {
        let quota: ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "q"},
            "spec": {"hard": {"requests.memory": "1Gi", "pods": "10", "configmaps": "5",
                "count/deployments.apps": "2", "services.nodeports": "4"}},
        }))
        .unwrap();
        let a = pod(
            "Running",
            json!({"requests": {"memory": "512Mi"}}),
            json!({}),
        );
        let mut usage = NamespaceUsage {
            pods: vec![a],
            ..Default::default()
        };
        usage.counts.insert("configmaps".into(), 2);
        usage.counts.insert("deployments.apps".into(), 1);
        let (hard, used) = quota_status(&quota, &usage);
        assert_eq!(hard.len(), 5);
        assert_eq!(used["requests.memory"].0, "512Mi");
        assert_eq!(used["pods"].0, "1");
        assert_eq!(used["configmaps"].0, "2");
        assert_eq!(used["count/deployments.apps"].0, "1");
        assert_eq!(used["services.nodeports"].0, "0");
    }
}
