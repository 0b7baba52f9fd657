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

use crate::endpoints::is_pod_terminal;
use crate::workqueue::{AbortOnDrop, Change, Next, WorkQueue, feed, informer};

/// How often quotas counting resources without an informer (`count/<resource>.<group>`)
/// are recomputed.
const RESYNC: Duration = Duration::from_secs(30);

/// A quantity in thousandths of its unit, exactly (the precision quota arithmetic keeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Milli(pub i128);

/// How a quantity was written, which decides how sums of it are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Powers of 1024: Ki, Mi, Gi …
    Binary,
    /// Powers of 1000: k, M, G … (and plain numbers).
    Decimal,
}

/// Parses a Kubernetes quantity (`500m`, `1.5`, `2Gi`, `1e3`) into thousandths, rounding up
/// below a thousandth; `None` if it is not one.
pub fn parse_quantity(text: &str) -> Option<(Milli, Format)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let (format, multiplier_num, exp10): (Format, i128, i32) = match suffix {
        "" => (Format::Decimal, 1, 0),
        "n" => (Format::Decimal, 1, -9),
        "u" => (Format::Decimal, 1, -6),
        "m" => (Format::Decimal, 1, -3),
        "k" => (Format::Decimal, 1, 3),
        "M" => (Format::Decimal, 1, 6),
        "G" => (Format::Decimal, 1, 9),
        "T" => (Format::Decimal, 1, 12),
        "P" => (Format::Decimal, 1, 15),
        "E" => (Format::Decimal, 1, 18),
        "Ki" => (Format::Binary, 1 << 10, 0),
        "Mi" => (Format::Binary, 1 << 20, 0),
        "Gi" => (Format::Binary, 1 << 30, 0),
        "Ti" => (Format::Binary, 1 << 40, 0),
        "Pi" => (Format::Binary, 1 << 50, 0),
        "Ei" => (Format::Binary, 1 << 60, 0),
        s if s.starts_with(['e', 'E']) => (Format::Decimal, 1, s[1..].parse().ok()?),
        _ => return None,
    };
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    // mantissa × 10^(exp10 − fraction digits) × multiplier, in thousandths.
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = exp10 - fraction.len() as i32 + 3;
    let scaled = mantissa.checked_mul(multiplier_num)?;
    let value = if scale >= 0 {
        scaled.checked_mul(10i128.checked_pow(scale as u32)?)?
    } else {
        let divisor = 10i128.checked_pow((-scale) as u32)?;
        (scaled + divisor - 1) / divisor
    };
    Some((Milli(if negative { -value } else { value }), format))
}

/// Writes thousandths back as a quantity in `format`: the largest suffix that keeps it exact.
pub fn format_quantity(value: Milli, format: Format) -> String {
    let Milli(m) = value;
    if m == 0 {
        return "0".into();
    }
    if m % 1000 != 0 {
        return format!("{m}m");
    }
    let whole = m / 1000;
    match format {
        Format::Binary => {
            for (suffix, size) in [
                ("Ei", 1i128 << 60),
                ("Pi", 1 << 50),
                ("Ti", 1 << 40),
                ("Gi", 1 << 30),
                ("Mi", 1 << 20),
                ("Ki", 1 << 10),
            ] {
                if whole % size == 0 {
                    return format!("{}{suffix}", whole / size);
                }
            }
            whole.to_string()
        }
        Format::Decimal => {
            for (suffix, size) in [
                ("E", 10i128.pow(18)),
                ("P", 10i128.pow(15)),
                ("T", 10i128.pow(12)),
                ("G", 10i128.pow(9)),
                ("M", 10i128.pow(6)),
                ("k", 1000),
            ] {
                if whole % size == 0 {
                    return format!("{}{suffix}", whole / size);
                }
            }
            whole.to_string()
        }
    }
}

fn quantity_of(list: Option<&BTreeMap<String, ApiQuantity>>, name: &str) -> Milli {
    list.and_then(|l| l.get(name))
        .and_then(|q| parse_quantity(&q.0))
        .map_or(Milli(0), |(m, _)| m)
}

/// A pod's effective requests or limits of `resource` (`which` is `requests` or `limits`):
/// the larger of its containers' sum and its largest init container, plus overhead, as
/// upstream's `PodRequests` and `PodLimits` compute them.
pub fn pod_resource(pod: &Pod, which: &str, resource: &str) -> Milli {
    let Some(spec) = pod.spec.as_ref() else {
        return Milli(0);
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref();
        let list = match which {
            "requests" => r.and_then(|r| r.requests.as_ref()),
            _ => r.and_then(|r| r.limits.as_ref()),
        };
        quantity_of(list, resource)
    };
    let containers: i128 = spec.containers.iter().map(|c| of(c).0).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| of(c).0)
        .max()
        .unwrap_or(0);
    let base = containers.max(init);
    // Overhead adds to requests, and to limits only where a limit is set.
    let overhead = if which == "requests" || base > 0 {
        quantity_of(spec.overhead.as_ref(), resource).0
    } else {
        0
    };
    Milli(base + overhead)
}

/// Whether a pod has no requests or limits at all (the BestEffort QoS class).
pub fn is_best_effort(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .all(|c| {
            c.resources.as_ref().is_none_or(|r| {
                r.requests.as_ref().is_none_or(BTreeMap::is_empty)
                    && r.limits.as_ref().is_none_or(BTreeMap::is_empty)
            })
        })
}

/// Whether `pod` falls under every scope of a quota.
pub fn pod_matches_scopes(pod: &Pod, scopes: &[String]) -> bool {
    let terminating = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some();
    scopes.iter().all(|scope| match scope.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        _ => true,
    })
}

/// What a namespace holds, as the quota arithmetic needs it.
#[derive(Default)]
pub struct NamespaceUsage<'a> {
    /// Its pods.
    pub pods: Vec<&'a Pod>,
    /// Its Services.
    pub services: Vec<&'a Service>,
    /// Its claims.
    pub claims: Vec<&'a PersistentVolumeClaim>,
    /// Object counts by resource name (`configmaps`, `count/deployments.apps`, …).
    pub counts: BTreeMap<String, i128>,
}

/// How much of `resource` a namespace uses, or `None` for a resource the controller does not
/// track. Compute resources count only the pods that have not finished and match `scopes`.
pub fn used(resource: &str, usage: &NamespaceUsage<'_>, scopes: &[String]) -> Option<Milli> {
    let live_pods = || {
        usage
            .pods
            .iter()
            .filter(|p| !is_pod_terminal(p) && pod_matches_scopes(p, scopes))
    };
    let count = |n: usize| Some(Milli(n as i128 * 1000));
    let sum = |which: &str, name: &str| {
        Some(Milli(
            live_pods().map(|p| pod_resource(p, which, name).0).sum(),
        ))
    };
    match resource {
        "pods" | "count/pods" => count(live_pods().count()),
        "services" | "count/services" => count(usage.services.len()),
        "persistentvolumeclaims" | "count/persistentvolumeclaims" => count(usage.claims.len()),
        "services.loadbalancers" => count(
            usage
                .services
                .iter()
                .filter(|s| {
                    s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                })
                .count(),
        ),
        "services.nodeports" => count(
            usage
                .services
                .iter()
                .filter(|s| {
                    matches!(
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()),
                        Some("NodePort" | "LoadBalancer")
                    )
                })
                .flat_map(|s| {
                    s.spec
                        .as_ref()
                        .and_then(|s| s.ports.clone())
                        .unwrap_or_default()
                })
                .filter(|p| p.node_port.is_some())
                .count(),
        ),
        "requests.cpu" | "cpu" => sum("requests", "cpu"),
        "requests.memory" | "memory" => sum("requests", "memory"),
        "limits.cpu" => sum("limits", "cpu"),
        "limits.memory" => sum("limits", "memory"),
        "requests.ephemeral-storage" | "ephemeral-storage" => sum("requests", "ephemeral-storage"),
        "limits.ephemeral-storage" => sum("limits", "ephemeral-storage"),
        "requests.storage" => Some(Milli(
            usage
                .claims
                .iter()
                .map(|c| {
                    quantity_of(
                        c.spec
                            .as_ref()
                            .and_then(|s| s.resources.as_ref())
                            .and_then(|r| r.requests.as_ref()),
                        "storage",
                    )
                    .0
                })
                .sum(),
        )),
        other => {
            let name = other.strip_prefix("count/").unwrap_or(other);
            usage.counts.get(name).map(|n| Milli(n * 1000))
        }
    }
}

/// The status a quota should have: `hard` as its spec says, `used` for each tracked resource,
/// written in the format of its hard limit.
pub fn quota_status(
    quota: &ResourceQuota,
    usage: &NamespaceUsage<'_>,
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
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
    controllers: Store<ReplicationController>,
}

fn in_ns<K>(store: &Store<K>, ns: &str) -> Vec<std::sync::Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state_filter(|o| o.meta().namespace.as_deref() == Some(ns))
}

/// Keeps every ResourceQuota's status true.
pub struct ResourceQuotaController {
    client: kube::Client,
}

fn namespace_of<K: Resource>(change: Change<'_, K>) -> Vec<String> {
    vec![change.object().meta().namespace.clone().unwrap_or_default()]
}

impl ResourceQuotaController {
    /// A controller acting through `client`.
    pub fn new(client: kube::Client, _settings: &crate::Settings) -> Self {
        Self { client }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue: WorkQueue<String> = WorkQueue::new();
        let c = || watcher::Config::default();
        let (quotas, quota_events) = informer(Api::<ResourceQuota>::all(self.client.clone()), c());
        let (pods, pod_events) = informer(Api::<Pod>::all(self.client.clone()), c());
        let (services, service_events) = informer(Api::<Service>::all(self.client.clone()), c());
        let (claims, claim_events) =
            informer(Api::<PersistentVolumeClaim>::all(self.client.clone()), c());
        let (configmaps, cm_events) = informer(Api::<ConfigMap>::all(self.client.clone()), c());
        let (secrets, secret_events) = informer(Api::<Secret>::all(self.client.clone()), c());
        let (controllers, rc_events) =
            informer(Api::<ReplicationController>::all(self.client.clone()), c());
        let spawn = |f| AbortOnDrop(tokio::spawn(f));
        let _guards = [
            spawn(Box::pin(feed(queue.clone(), quota_events, namespace_of))
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = ()> + Send>,
                >),
            spawn(Box::pin(feed(queue.clone(), pod_events, namespace_of))),
            spawn(Box::pin(feed(queue.clone(), service_events, namespace_of))),
            spawn(Box::pin(feed(queue.clone(), claim_events, namespace_of))),
            spawn(Box::pin(feed(queue.clone(), cm_events, namespace_of))),
            spawn(Box::pin(feed(queue.clone(), secret_events, namespace_of))),
            spawn(Box::pin(feed(queue.clone(), rc_events, namespace_of))),
        ];
        let caches = QuotaCaches {
            quotas,
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
        let pods = in_ns(&caches.pods, ns);
        let services = in_ns(&caches.services, ns);
        let claims = in_ns(&caches.claims, ns);
        let mut usage = NamespaceUsage {
            pods: pods.iter().map(|p| p.as_ref()).collect(),
            services: services.iter().map(|s| s.as_ref()).collect(),
            claims: claims.iter().map(|c| c.as_ref()).collect(),
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
        Ok(if resync {
            Next::After(RESYNC)
        } else {
            Next::Wait
        })
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

    #[test]
    fn quantities_parse_to_thousandths_and_print_in_their_format() {
        assert_eq!(q("500m"), Milli(500));
        assert_eq!(q("1.5"), Milli(1500));
        assert_eq!(q("2"), Milli(2000));
        assert_eq!(q("1Ki"), Milli(1024 * 1000));
        assert_eq!(q("1e3"), Milli(1_000_000));
        assert_eq!(q("1k"), Milli(1_000_000));
        assert_eq!(q("1n"), Milli(1), "rounded up to a thousandth");
        assert!(parse_quantity("lots").is_none());
        assert_eq!(format_quantity(q("1536Mi"), Format::Binary), "1536Mi");
        assert_eq!(format_quantity(q("2Gi"), Format::Binary), "2Gi");
        assert_eq!(format_quantity(q("1500m"), Format::Decimal), "1500m");
        assert_eq!(format_quantity(q("3"), Format::Decimal), "3");
        assert_eq!(format_quantity(q("3000"), Format::Decimal), "3k");
        assert_eq!(format_quantity(Milli(0), Format::Binary), "0");
    }

    fn pod(
        name: &str,
        phase: &str,
        resources: serde_json::Value,
        extra_spec: serde_json::Value,
    ) -> Pod {
        let mut spec = json!({"containers": [{"name": "a", "image": "i", "resources": resources}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "q"},
            "spec": spec,
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn compute_usage_sums_live_pods_with_init_containers_and_overhead() {
        let a = pod(
            "a",
            "Running",
            json!({"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}),
            json!({}),
        );
        let b = pod(
            "b",
            "Pending",
            json!({"requests": {"cpu": "100m"}}),
            json!({"initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"cpu": "2"}}}], "overhead": {"cpu": "10m"}}),
        );
        let done = pod(
            "c",
            "Succeeded",
            json!({"requests": {"cpu": "4"}}),
            json!({}),
        );
        let usage = NamespaceUsage {
            pods: vec![&a, &b, &done],
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
    fn scopes_select_pods_by_deadline_and_qos() {
        let best_effort = pod("a", "Running", json!({}), json!({}));
        let burstable = pod(
            "b",
            "Running",
            json!({"requests": {"cpu": "1"}}),
            json!({"activeDeadlineSeconds": 60}),
        );
        let usage = NamespaceUsage {
            pods: vec![&best_effort, &burstable],
            ..Default::default()
        };
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
    }

    #[test]
    fn service_counts_include_node_ports_and_load_balancers() {
        let svc = |t: &str, ports: serde_json::Value| -> Service {
            serde_json::from_value(
                json!({"metadata": {"name": "s"}, "spec": {"type": t, "ports": ports}}),
            )
            .unwrap()
        };
        let a = svc("ClusterIP", json!([{"port": 80}]));
        let b = svc(
            "NodePort",
            json!([{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 30002}]),
        );
        let c = svc("LoadBalancer", json!([{"port": 80, "nodePort": 30003}]));
        let usage = NamespaceUsage {
            services: vec![&a, &b, &c],
            ..Default::default()
        };
        assert_eq!(used("services", &usage, &[]), Some(Milli(3000)));
        assert_eq!(used("services.nodeports", &usage, &[]), Some(Milli(3000)));
        assert_eq!(
            used("services.loadbalancers", &usage, &[]),
            Some(Milli(1000))
        );
    }

    #[test]
    fn quota_status_copies_hard_and_writes_used_in_the_limits_format() {
        let quota: ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "q"},
            "spec": {"hard": {"requests.memory": "1Gi", "pods": "10", "configmaps": "5", "count/deployments.apps": "2"}},
        }))
        .unwrap();
        let a = pod(
            "a",
            "Running",
            json!({"requests": {"memory": "512Mi"}}),
            json!({}),
        );
        let mut usage = NamespaceUsage {
            pods: vec![&a],
            ..Default::default()
        };
        usage.counts.insert("configmaps".into(), 2);
        usage.counts.insert("deployments.apps".into(), 1);
        let (hard, used) = quota_status(&quota, &usage);
        assert_eq!(hard.len(), 4);
        assert_eq!(used["requests.memory"].0, "512Mi");
        assert_eq!(used["pods"].0, "1");
        assert_eq!(used["configmaps"].0, "2");
        assert_eq!(used["count/deployments.apps"].0, "1");
    }
}
