//! Serving CustomResourceDefinitions: a loop that follows the definitions in the store,
//! accepts their names (NamesAccepted), serves their resources (Established), records stored
//! versions, and, when a definition is deleted, deletes its custom resources before letting
//! the definition go (upstream's `customresourcecleanup` finalizer, Terminating condition).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use rkube_api::ApiError;
use rkube_api::crd::CLEANUP_FINALIZER;
use rkube_api::registry::{self, ResourceType};
use rkube_store::{ListOptions, WatchEvent, WatchOptions};
use serde_json::{Value, json};

use crate::app::App;
use crate::objects;
use crate::request::{Query, RequestInfo};

const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// Definitions being deleted (their resources refuse creates), and those whose resources
/// are being deleted now.
#[derive(Default)]
pub(crate) struct Definitions {
    terminating: RwLock<HashSet<String>>,
    cleaning: std::sync::Mutex<HashSet<String>>,
}

impl Definitions {
    fn set(&self, name: &str, terminating: bool) {
        let mut set = self.terminating.write().unwrap_or_else(|p| p.into_inner());
        if terminating {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.terminating
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    /// Claims the cleanup of `name`; false if it is already running.
    fn start_cleaning(&self, name: &str) -> bool {
        self.cleaning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned())
    }

    fn done_cleaning(&self, name: &str) {
        self.cleaning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition"
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "lastTransitionTime": now,
           "reason": reason, "message": message})
}

/// Sets a condition, keeping its transition time when the status does not change; returns
/// whether anything changed.
fn set_condition(status: &mut Value, new: Value) -> bool {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return false;
    };
    match list.iter_mut().find(|c| c["type"] == new["type"]) {
        Some(old) => {
            if old["status"] == new["status"]
                && old["reason"] == new["reason"]
                && old["message"] == new["message"]
            {
                return false;
            }
            let mut new = new;
            if old["status"] == new["status"] {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = new;
        }
        None => list.push(new),
    }
    true
}

impl App {
    /// Whether `rt` is a custom resource whose definition is being deleted.
    pub(crate) fn terminating_definition(&self, rt: &ResourceType) -> bool {
        rt.custom
            .as_ref()
            .is_some_and(|c| self.definitions.contains(&c.crd))
    }

    /// Marks a definition for deletion: its custom resources go first.
    pub(crate) fn mark_definition_deleted(rt: &ResourceType, marked: &mut Value) -> bool {
        if !is_crd(rt) {
            return false;
        }
        let meta = &mut marked["metadata"];
        let mut finalizers: Vec<Value> = meta["finalizers"].as_array().cloned().unwrap_or_default();
        if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
            finalizers.push(json!(CLEANUP_FINALIZER));
        }
        meta["finalizers"] = json!(finalizers);
        let now = crate::rest::now_rfc3339();
        set_condition(
            &mut marked["status"],
            condition(
                "Terminating",
                "True",
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
                &now,
            ),
        );
        true
    }

    /// Follows the definitions in the store until the process ends.
    pub async fn run_definitions(self: Arc<Self>) {
        loop {
            if let Err(err) = self.follow_definitions().await {
                tracing::warn!(error = %err, "following CustomResourceDefinitions; retrying");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn follow_definitions(self: &Arc<Self>) -> Result<(), rkube_store::Error> {
        let store = self.objects.store().clone();
        let listed = store.list(PREFIX, ListOptions::default()).await?;
        let mut present = HashSet::new();
        for kv in &listed.items {
            if let Ok(crd) = objects::decode(kv) {
                present.insert(
                    crd["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                self.reconcile_definition(crd).await;
            }
        }
        for rt in registry::custom_types() {
            if let Some(c) = &rt.custom
                && !present.contains(&c.crd)
            {
                registry::remove_custom(&c.crd);
            }
        }
        let mut stream = store
            .watch(
                PREFIX,
                WatchOptions {
                    start_revision: listed.revision + 1,
                    progress_notify: None,
                },
            )
            .await?;
        while let Some(event) = stream.next().await {
            match event? {
                WatchEvent::Put { kv, .. } => {
                    if let Ok(crd) = objects::decode(&kv) {
                        self.reconcile_definition(crd).await;
                    }
                }
                WatchEvent::Delete { key, .. } => {
                    let name = key.trim_start_matches(PREFIX);
                    registry::remove_custom(name);
                    self.definitions.set(name, false);
                }
                WatchEvent::Progress { .. } => {}
            }
        }
        Ok(())
    }

    /// Brings one definition's status and serving up to date.
    async fn reconcile_definition(self: &Arc<Self>, crd: Value) {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let deleting = crd["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        let mut updated = crd.clone();
        let now = crate::rest::now_rfc3339();
        let names = &crd["spec"]["names"];
        let conflict = self.name_conflict(&crd);
        let status = &mut updated["status"];
        if !status.is_object() {
            *status = json!({});
        }
        match &conflict {
            Some((reason, message)) => {
                set_condition(
                    status,
                    condition("NamesAccepted", "False", reason, message, &now),
                );
                if status["acceptedNames"].is_null() {
                    status["acceptedNames"] = json!({"plural": "", "kind": ""});
                }
            }
            None => {
                set_condition(
                    status,
                    condition(
                        "NamesAccepted",
                        "True",
                        "NoConflicts",
                        "no conflicts found",
                        &now,
                    ),
                );
                let mut accepted = names.clone();
                if let Some(o) = accepted.as_object_mut() {
                    o.retain(|_, v| !v.is_null());
                }
                status["acceptedNames"] = accepted;
                set_condition(
                    status,
                    condition(
                        "Established",
                        "True",
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                        &now,
                    ),
                );
            }
        }
        if let Some(storage) = crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["storage"].as_bool() == Some(true))
            .and_then(|v| v["name"].as_str())
        {
            let mut stored: Vec<Value> = status["storedVersions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !stored.iter().any(|v| v == storage) {
                stored.push(json!(storage));
                status["storedVersions"] = json!(stored);
            }
        }
        if conflict.is_none() {
            registry::set_custom(&updated);
        }
        self.definitions.set(&name, deleting);
        if updated != crd {
            self.write_definition(&name, &crd, updated.clone()).await;
        }
        if deleting && self.definitions.start_cleaning(&name) {
            let this = self.clone();
            tokio::spawn(async move {
                this.clean_up_definition(updated).await;
                this.definitions.done_cleaning(&name);
            });
        }
    }

    /// A reason and message if another definition already serves this one's plural or kind
    /// in the same group.
    fn name_conflict(&self, crd: &Value) -> Option<(String, String)> {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
        for rt in registry::custom_types() {
            let Some(c) = &rt.custom else { continue };
            if c.crd == name || rt.group != group {
                continue;
            }
            if rt.plural == plural || rt.short_names.contains(&plural) {
                return Some((
                    "PluralConflict".into(),
                    format!("\"{plural}\" is already in use"),
                ));
            }
            if rt.kind == kind {
                return Some((
                    "KindConflict".into(),
                    format!("\"{kind}\" is already in use"),
                ));
            }
        }
        None
    }

    async fn write_definition(&self, name: &str, old: &Value, new: Value) {
        let Ok(rt) = self.resource("apiextensions.k8s.io", "CustomResourceDefinition") else {
            return;
        };
        let Some(rv) = objects::resource_version(old) else {
            return;
        };
        match self.objects.update(rt, None, name, new, rv).await {
            Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => {}
            Err(err) => tracing::warn!(crd = name, error = %err, "updating a definition's status"),
        }
    }

    /// Deletes every custom resource of a definition being deleted, then removes the
    /// cleanup finalizer (the definition goes when no finalizer is left).
    async fn clean_up_definition(&self, crd: Value) {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !crd["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == CLEANUP_FINALIZER))
        {
            return;
        }
        let Some(rt) = registry::custom_types()
            .into_iter()
            .find(|t| t.custom.as_ref().is_some_and(|c| c.crd == name))
        else {
            return;
        };
        loop {
            let prefix = objects::prefix(rt, None);
            let listed = match self
                .objects
                .store()
                .list(&prefix, ListOptions::default())
                .await
            {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(crd = name, error = %err, "listing custom resources to delete");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if listed.items.is_empty() {
                break;
            }
            for kv in &listed.items {
                let Ok(object) = objects::decode(kv) else {
                    continue;
                };
                let info = RequestInfo {
                    namespace: objects::meta_str(&object, "namespace").map(str::to_owned),
                    ..Default::default()
                };
                let object_name = objects::meta_str(&object, "name").unwrap_or_default();
                match self
                    .delete(rt, &info, &Query::default(), object_name, json!({}))
                    .await
                {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(err) => {
                        tracing::warn!(crd = name, error = %err, "deleting a custom resource")
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let Ok(crd_rt) = self.resource("apiextensions.k8s.io", "CustomResourceDefinition") else {
            return;
        };
        for _ in 0..16 {
            let Ok(current) = self.objects.get(crd_rt, None, &name).await else {
                return;
            };
            let rv = objects::resource_version(&current).unwrap_or(0);
            let mut updated = current.clone();
            let finalizers: Vec<Value> = current["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| *f != CLEANUP_FINALIZER)
                .cloned()
                .collect();
            let now = crate::rest::now_rfc3339();
            set_condition(
                &mut updated["status"],
                condition(
                    "Terminating",
                    "True",
                    "InstanceDeletionCompleted",
                    "removed all instances",
                    &now,
                ),
            );
            let result = if finalizers.is_empty() {
                self.objects
                    .delete(crd_rt, None, &name, Some(rv))
                    .await
                    .map(|_| ())
            } else {
                updated["metadata"]["finalizers"] = json!(finalizers);
                self.objects
                    .update(crd_rt, None, &name, updated, rv)
                    .await
                    .map(|_| ())
            };
            match result {
                Ok(()) | Err(ApiError::NotFound { .. }) => return,
                Err(ApiError::Conflict { .. }) => continue,
                Err(err) => {
                    tracing::warn!(crd = name, error = %err, "finishing a definition's deletion");
                    return;
                }
            }
        }
    }
}
