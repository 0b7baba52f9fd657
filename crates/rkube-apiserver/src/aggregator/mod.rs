//! apiregistration.k8s.io: the APIServices that say which server answers each group
//! version. As upstream's autoregister and CRD registration controllers do, every group
//! version this server serves has a local APIService (no service; Available, reason
//! `Local`): the built-in ones labelled `kube-aggregator.kubernetes.io/automanaged: onstart`,
//! those of CustomResourceDefinitions `true` — the latter deleted when their version is no
//! longer served.
//!
//! An APIService with `spec.service` names another server: requests under its group version
//! are proxied there (`proxy`), its Available condition is kept by `available`, and its
//! resources join discovery, its server's OpenAPI documents join `/openapi/v2` and
//! `/openapi/v3` (`openapi`). `authentication` publishes what such a server needs to trust
//! this one.

mod authentication;
mod available;
pub(crate) mod openapi;
pub(crate) mod proxy;
pub(crate) mod remote;
pub(crate) mod spec_merge;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rkube_api::ApiError;
use rkube_api::registry;
use serde_json::{Value, json};

use crate::app::App;
use crate::decode::FieldValidation;
use crate::request::{Query, RequestInfo};

const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";

/// How often the served custom group versions are compared with the last ones registered
/// (an in-memory counter; the store is read only when they changed).
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Upstream's discovery priorities of the built-in groups (group, version), which order
/// `/apis`; a group it does not list gets the lowest built-in one.
pub(crate) fn builtin_priority(group: &str, version: &str) -> (i64, i64) {
    let group_priority = match group {
        "" => return (18000, 1),
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "apiextensions.k8s.io" | "admissionregistration.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        _ => 15000,
    };
    let version_priority = match (group, version) {
        ("autoscaling", "v2") => 30,
        ("flowcontrol.apiserver.k8s.io", "v1") => 21,
        (_, v) if v.contains("alpha") => 1,
        (_, v) if v.contains("beta") => 9,
        _ => 15,
    };
    (group_priority, version_priority)
}

/// The local APIService of one group version.
fn local_api_service(group: &str, version: &str, custom: bool) -> Value {
    // Upstream gives every custom group version the same low priorities.
    let (group_priority, version_priority) = if custom {
        (1000, 100)
    } else {
        builtin_priority(group, version)
    };
    json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": format!("{version}.{group}"),
            "labels": {AUTOMANAGED: if custom { "true" } else { "onstart" }},
        },
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": group_priority,
            "versionPriority": version_priority,
        },
    })
}

/// The group versions served: built in, then custom.
fn served_group_versions() -> BTreeSet<(String, String, bool)> {
    let builtin = registry::all()
        .types()
        .iter()
        .map(|t| (t.group.to_owned(), t.version.to_owned(), false));
    let custom = registry::custom_types()
        .into_iter()
        .map(|t| (t.group.to_owned(), t.version.to_owned(), true));
    builtin.chain(custom).collect()
}

impl App {
    /// Keeps the local APIServices in step with what is served, until the process ends
    /// (the server registers them once before it is ready: see
    /// [`App::register_local_api_services`]).
    pub async fn run_local_api_services(self: Arc<Self>, registered: u64) {
        let mut registered = Some(registered);
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let generation = registry::custom_generation();
            if registered != Some(generation) {
                match self.register_local_api_services(true).await {
                    Ok(()) => registered = Some(generation),
                    Err(err) => tracing::warn!(error = %err, "registering local APIServices"),
                }
            }
        }
    }

    /// Creates the missing local APIServices, marks them Available, and deletes those of
    /// custom group versions no longer served (with `prune`: at start the definitions are
    /// not served yet). Independent writes go together, so they share commits.
    pub async fn register_local_api_services(&self, prune: bool) -> Result<(), ApiError> {
        let rt = self.resource("apiregistration.k8s.io", "APIService")?;
        let served = served_group_versions();
        let names: BTreeSet<String> = served
            .iter()
            .map(|(group, version, _)| format!("{version}.{group}"))
            .collect();
        let creates = served.iter().map(|(group, version, custom)| async move {
            let name = format!("{version}.{group}");
            match self.lookup(rt, None, &name).await {
                Ok(_) => Ok(()),
                Err(ApiError::NotFound { .. }) => {
                    let service = local_api_service(group, version, *custom);
                    let info = RequestInfo::default();
                    match self.create(rt, &info, &Query::default(), service).await {
                        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(err),
            }
        });
        futures::future::try_join_all(creates).await?;
        let statuses = names.iter().map(|name| self.set_local_available(rt, name));
        futures::future::try_join_all(statuses).await?;
        if !prune {
            return Ok(());
        }
        for existing in self.list_current(rt, None).await? {
            let name = existing["metadata"]["name"].as_str().unwrap_or_default();
            let custom = existing["metadata"]["labels"][AUTOMANAGED] == "true";
            let local = !existing["spec"]["service"].is_object();
            if custom && local && !names.contains(name) {
                match self.objects.delete(rt, None, name, None).await {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// Sets a local APIService's Available condition (a no-op when it is set already).
    async fn set_local_available(
        &self,
        rt: &'static registry::ResourceType,
        name: &str,
    ) -> Result<(), ApiError> {
        let now = crate::rest::now_rfc3339();
        let available = json!({
            "type": "Available",
            "status": "True",
            "lastTransitionTime": now,
            "reason": "Local",
            "message": "Local APIServices are always available",
        });
        let result = self
            .guaranteed_update(
                rt,
                None,
                name,
                Some("status"),
                false,
                None,
                FieldValidation::Ignore,
                None,
                |current| {
                    let mut next = current.clone();
                    if next["spec"]["service"].is_object() {
                        return Ok(next);
                    }
                    let conditions = next["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let mut kept: Vec<Value> = conditions
                        .iter()
                        .filter(|c| c["type"] != "Available")
                        .cloned()
                        .collect();
                    match conditions.iter().find(|c| c["type"] == "Available") {
                        Some(c)
                            if c["status"] == "True"
                                && c["reason"] == "Local"
                                && c["message"] == available["message"] =>
                        {
                            return Ok(next);
                        }
                        _ => kept.push(available.clone()),
                    }
                    next["status"]["conditions"] = Value::Array(kept);
                    Ok(next)
                },
            )
            .await;
        match result {
            Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_api_services_are_named_version_dot_group() {
        let core = local_api_service("", "v1", false);
        assert_eq!(core["metadata"]["name"], "v1.");
        assert_eq!(core["spec"]["groupPriorityMinimum"], 18000);
        let apps = local_api_service("apps", "v1", false);
        assert_eq!(apps["metadata"]["name"], "v1.apps");
        assert_eq!(apps["metadata"]["labels"][AUTOMANAGED], "onstart");
        let custom = local_api_service("stable.example.com", "v1", true);
        assert_eq!(
            (
                custom["spec"]["groupPriorityMinimum"].as_i64(),
                custom["spec"]["versionPriority"].as_i64()
            ),
            (Some(1000), Some(100))
        );
        assert_eq!(custom["metadata"]["labels"][AUTOMANAGED], "true");
    }
}
