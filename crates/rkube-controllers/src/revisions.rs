//! ControllerRevisions: the template history of StatefulSets and DaemonSets, which
//! `kubectl rollout history` lists and `kubectl rollout undo` patches back.
//!
//! Each revision's `data` is the strategic merge patch that puts its template back
//! (`{"spec":{"template":{…,"$patch":"replace"}}}`), its name is `<owner>-<hash of data>`,
//! and its `revision` number grows with every change; going back to an old template moves that
//! revision to the top rather than writing a new one, as upstream does.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::workload_pods::{Result, controller_reference, hash_of, is_conflict, is_controlled_by};

/// The revision the pods should be at, and the one most of them were at.
pub(crate) struct History {
    /// The revision matching the current template.
    pub update: ControllerRevision,
    /// The revision named by the owner's status (`currentRevision`), or `update`.
    pub current: ControllerRevision,
}

/// The patch that restores `template`.
pub(crate) fn template_patch(template: &PodTemplateSpec) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(template)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("$patch".to_owned(), json!("replace"));
    }
    Ok(json!({"spec": {"template": value}}))
}

/// Finds or writes the revision of the owner's current template and trims the history to
/// `history_limit` revisions besides the live ones (`current`, `update` and any a pod still
/// carries in `in_use`, by hash label value).
pub(crate) async fn sync<K>(
    client: &kube::Client,
    owner: &K,
    template: &PodTemplateSpec,
    collision_count: i32,
    current_name: Option<&str>,
    history_limit: i32,
    in_use: &HashSet<String>,
) -> Result<History>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    let owner_name = owner.meta().name.clone().unwrap_or_default();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let mut revisions: Vec<ControllerRevision> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| is_controlled_by(&r.metadata, &uid))
        .collect();
    revisions.sort_by_key(|r| r.revision);
    let data = template_patch(template)?;
    let hash = hash_of(&data, collision_count);
    let name = format!("{owner_name}-{hash}");
    let latest = revisions.last().map_or(0, |r| r.revision);
    let update = match revisions
        .iter()
        .position(|r| r.metadata.name.as_deref() == Some(&name))
    {
        Some(i) if revisions[i].revision == latest => revisions[i].clone(),
        Some(i) => {
            // A rollback to an old template: that revision becomes the newest.
            let patch = json!({"revision": latest + 1});
            let moved = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            revisions[i] = moved.clone();
            moved
        }
        None => {
            let mut labels: BTreeMap<String, String> = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert("controller-revision-hash".to_owned(), hash.clone());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![controller_reference(owner)]),
                    ..ObjectMeta::default()
                },
                data: Some(RawExtension(data)),
                revision: latest + 1,
            };
            let created = match api.create(&PostParams::default(), &revision).await {
                Ok(created) => created,
                Err(err) if is_conflict(&err) => api.get(&name).await?,
                Err(err) => return Err(err.into()),
            };
            revisions.push(created.clone());
            created
        }
    };
    let current = current_name
        .and_then(|n| {
            revisions
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(n))
        })
        .cloned()
        .unwrap_or_else(|| update.clone());
    // Trim: the oldest revisions no pod uses, beyond the limit.
    let live = |r: &ControllerRevision| {
        let n = r.name_any();
        n == update.name_any()
            || n == current.name_any()
            || n.strip_prefix(&format!("{owner_name}-"))
                .is_some_and(|h| in_use.contains(h))
            || in_use.contains(&n)
    };
    let mut spare: Vec<&ControllerRevision> = revisions.iter().filter(|r| !live(r)).collect();
    spare.sort_by_key(|r| r.revision);
    let excess = spare
        .len()
        .saturating_sub(usize::try_from(history_limit.max(0)).unwrap_or(0));
    for old in spare.into_iter().take(excess) {
        match api.delete(&old.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(err) if crate::workload_pods::is_not_found(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(History { update, current })
}
