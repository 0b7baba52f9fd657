//! A server with the scheduler running against it, and helpers to make nodes and pods and
//! wait for what the scheduler does to them.

// This crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod, PodCondition};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{ListParams, PostParams};
use rkube_apiserver_tests::TestServer;
use rkube_scheduler::{Scheduler, SchedulerConfig};
use serde_json::{Value, json};

/// A server and its scheduler (stopped when dropped).
pub struct Cluster {
    /// The server.
    pub server: TestServer,
    /// An admin client.
    pub client: kube::Client,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.scheduler.abort();
    }
}

/// Starts a server and the scheduler with the default configuration.
pub async fn start() -> Cluster {
    start_with(SchedulerConfig::default()).await
}

/// Starts a server and the scheduler with `config`.
pub async fn start_with(config: SchedulerConfig) -> Cluster {
    let server = rkube_apiserver_tests::start().await;
    let client = server.client.clone();
    let scheduler = tokio::spawn(Scheduler::new(client.clone(), config).unwrap().run());
    Cluster {
        server,
        client,
        scheduler,
    }
}

impl Cluster {
    /// Pods in `default`.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a ready node with this much cpu and memory, these labels and taints.
    pub async fn node(&self, name: &str, cpu: &str, labels: Value, taints: Value) {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {
                "capacity": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .unwrap();
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }

    /// Creates a PriorityClass with this value.
    pub async fn priority_class(&self, name: &str, value: i64) {
        let class: PriorityClass =
            serde_json::from_value(json!({"metadata": {"name": name}, "value": value})).unwrap();
        Api::<PriorityClass>::all(self.client.clone())
            .create(&PostParams::default(), &class)
            .await
            .unwrap();
    }

    /// Creates a pod in `default` requesting `cpu`, with extra spec and metadata fields.
    pub async fn pod(&self, name: &str, cpu: &str, extra_spec: Value, labels: Value) {
        let mut spec = json!({
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}],
        });
        for (k, v) in extra_spec.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    /// The node a pod is bound to, waiting up to 20 s for it.
    pub async fn bound(&self, name: &str) -> String {
        for _ in 0..400 {
            if let Some(pod) = self.pods().get_opt(name).await.unwrap()
                && let Some(node) = pod.spec.and_then(|s| s.node_name)
            {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pod {name} was not bound within 20s");
    }

    /// The node a pod is bound to now, if any.
    pub async fn node_of(&self, name: &str) -> Option<String> {
        self.pods()
            .get(name)
            .await
            .unwrap()
            .spec
            .and_then(|s| s.node_name)
    }

    /// The pod's PodScheduled condition as it is now.
    pub async fn scheduled_condition(&self, name: &str) -> Option<PodCondition> {
        let pod = self.pods().get(name).await.unwrap();
        pod.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")
    }

    /// The PodScheduled=False condition's (reason, message), waiting up to 20 s for one.
    pub async fn unschedulable(&self, name: &str) -> (String, String) {
        for _ in 0..400 {
            let pod = self.pods().get(name).await.unwrap();
            let condition = pod
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False");
            if let Some(c) = condition {
                return (c.reason.unwrap_or_default(), c.message.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pod {name} was not marked unschedulable within 20s");
    }

    /// Events about a pod with this reason, waiting up to 20 s for at least one.
    pub async fn events(&self, pod: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        for _ in 0..400 {
            let events: Vec<Event> = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| {
                    e.involved_object.name.as_deref() == Some(pod)
                        && e.reason.as_deref() == Some(reason)
                })
                .collect();
            if !events.is_empty() {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {reason} event for {pod} within 20s");
    }
}
