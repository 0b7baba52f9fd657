//! Static pods: manifests in `<data-dir>/agent/pod-manifests` run on this node as pods named
//! `<name>-<node>`, with a mirror pod in the API (annotation `kubernetes.io/config.mirror`,
//! owned by the Node). A changed manifest replaces its pod; a removed one deletes it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

/// The annotation naming where a pod's config came from.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// The hash of a static pod's manifest.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Marks a mirror pod.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// Reads the manifests in `dir`: the pod each describes, keyed by `<ns>/<name>`.
pub fn read_manifests(dir: &Path, node: &str) -> BTreeMap<String, Pod> {
    let mut pods = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return pods;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.display().to_string();
        if name.ends_with('~')
            || path
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let parsed: Result<Pod, String> = if name.ends_with(".json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_norway::from_str(&text).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(pod) => {
                if let Some(pod) = static_pod(pod, node, &text) {
                    let key = format!(
                        "{}/{}",
                        pod.metadata.namespace.as_deref().unwrap_or("default"),
                        pod.metadata.name.as_deref().unwrap_or_default()
                    );
                    pods.insert(key, pod);
                }
            }
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "a static pod manifest that is not a Pod")
            }
        }
    }
    pods
}

fn static_pod(mut pod: Pod, node: &str, text: &str) -> Option<Pod> {
    let base = pod.metadata.name.clone().filter(|n| !n.is_empty())?;
    let hash = crate::pause::sha256(text.as_bytes())
        .trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect::<String>();
    pod.metadata.name = Some(format!("{base}-{node}"));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_SOURCE.to_owned(), "file".to_owned());
    annotations.insert(CONFIG_HASH.to_owned(), hash.clone());
    annotations.insert(CONFIG_MIRROR.to_owned(), hash);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_owned());
    Some(pod)
}

/// Keeps the mirror pods in step with the manifests, every few seconds.
pub async fn run(client: kube::Client, dir: std::path::PathBuf, node: String) {
    let _ = std::fs::create_dir_all(&dir);
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let wanted = read_manifests(&dir, &node);
        let node_uid = nodes.get(&node).await.ok().and_then(|n| n.metadata.uid);
        let all: Api<Pod> = Api::all(client.clone());
        let existing = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mirrors: BTreeMap<String, Pod> = existing
            .into_iter()
            .filter(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.get(CONFIG_SOURCE).map(String::as_str) == Some("file"))
            })
            .map(|p| {
                let key = format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default()
                );
                (key, p)
            })
            .collect();
        for (key, mut pod) in wanted.clone() {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let hash = |p: &Pod| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CONFIG_HASH).cloned())
            };
            match mirrors.get(&key) {
                Some(current) if hash(current) == hash(&pod) => continue,
                Some(current) if current.metadata.deletion_timestamp.is_none() => {
                    let name = current.metadata.name.clone().unwrap_or_default();
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            if let Some(uid) = &node_uid {
                pod.metadata.owner_references = Some(vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Node".to_owned(),
                    name: node.clone(),
                    uid: uid.clone(),
                    controller: Some(true),
                    ..Default::default()
                }]);
            }
            if let Err(e) = api.create(&PostParams::default(), &pod).await {
                tracing::warn!(pod = %key, error = %e, "creating a static pod's mirror pod");
            }
        }
        for (key, pod) in &mirrors {
            if !wanted.contains_key(key) && pod.metadata.deletion_timestamp.is_none() {
                let api: Api<Pod> = Api::namespaced(
                    client.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                );
                let _ = api
                    .delete(
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        &DeleteParams::default(),
                    )
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_pods_named_for_the_node() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        )?;
        std::fs::write(dir.path().join("broken.yaml"), "not: [a pod")?;
        let pods = read_manifests(dir.path(), "n1");
        assert_eq!(pods.keys().collect::<Vec<_>>(), ["default/web-n1"]);
        let pod = &pods["default/web-n1"];
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("n1")
        );
        let a = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get(CONFIG_SOURCE).map(String::as_str), Some("file"));
        assert_eq!(a.get(CONFIG_HASH), a.get(CONFIG_MIRROR));
        Ok(())
    }
}
