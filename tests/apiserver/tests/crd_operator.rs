//! An operator written with kube-runtime's Controller reconciles a custom resource against
//! rkube: it watches the resource (and the ConfigMaps it owns), writes a ConfigMap per
//! object and reports progress in the status subresource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rkube_apiserver_tests::start;
use serde_json::json;

fn backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ops.example.com", "v1", "Backup"),
        "backups",
    )
}

async fn install_definition(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "backups.ops.example.com"},
        "spec": {
            "group": "ops.example.com", "scope": "Namespaced",
            "names": {"plural": "backups", "kind": "Backup"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"schedule": {"type": "string"}}},
                    "status": {"type": "object", "properties": {
                        "observedGeneration": {"type": "integer"}, "configMap": {"type": "string"}}},
                }}}}],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = backup_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    for _ in 0..100 {
        if api.list(&Default::default()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("backups were not served");
}

struct Context {
    client: kube::Client,
}

#[derive(Debug)]
struct ReconcileError(kube::Error);

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ReconcileError {}

impl From<kube::Error> for ReconcileError {
    fn from(err: kube::Error) -> Self {
        Self(err)
    }
}

/// Writes the backup's ConfigMap (owned by it) and records what it did in the status.
async fn reconcile(
    backup: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ns = backup.namespace().unwrap_or_default();
    let name = backup.name_any();
    let schedule = backup.data["spec"]["schedule"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let owner = backup.controller_owner_ref(&backup_resource()).unwrap();
    let map_name = format!("{name}-schedule");
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": map_name, "ownerReferences": [owner]},
        "data": {"schedule": schedule},
    }))
    .unwrap();
    maps.patch(
        &map_name,
        &PatchParams::apply("backup-operator").force(),
        &Patch::Apply(&map),
    )
    .await?;
    let backups: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &backup_resource());
    backups
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": backup.meta().generation,
                "configMap": map_name,
            }})),
        )
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<DynamicObject>, _: &ReconcileError, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn a_kube_runtime_operator_reconciles_a_custom_resource() {
    let t = start().await;
    install_definition(&t.client).await;
    let ar = backup_resource();
    let backups: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), "default", &ar);
    let maps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let controller = Controller::new_with(backups.clone(), watcher::Config::default(), ar.clone())
        .owns(maps.clone(), watcher::Config::default())
        .run(
            reconcile,
            error_policy,
            Arc::new(Context {
                client: t.client.clone(),
            }),
        )
        .for_each(|_| async {});
    let operator = tokio::spawn(controller);

    let backup: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ops.example.com/v1", "kind": "Backup",
        "metadata": {"name": "db"}, "spec": {"schedule": "0 1 * * *"},
    }))
    .unwrap();
    backups
        .create(&PostParams::default(), &backup)
        .await
        .unwrap();

    let wait_for = |want: &'static str, generation: i64| {
        let backups = backups.clone();
        let maps = maps.clone();
        async move {
            for _ in 0..200 {
                let b = backups.get("db").await.unwrap();
                let m = maps.get_opt("db-schedule").await.unwrap();
                let schedule = m
                    .as_ref()
                    .and_then(|m| m.data.as_ref())
                    .and_then(|d| d.get("schedule").cloned());
                if schedule.as_deref() == Some(want)
                    && b.data["status"]["observedGeneration"] == generation
                {
                    return m.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the operator did not reconcile generation {generation}");
        }
    };
    let map = wait_for("0 1 * * *", 1).await;
    let owner = &map.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Backup", "db"));

    // A change to the spec is seen through the watch and reconciled again.
    backups
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": "30 2 * * *"}})),
        )
        .await
        .unwrap();
    wait_for("30 2 * * *", 2).await;
    operator.abort();
}
