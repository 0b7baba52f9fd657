//! Discovery (`/api`, `/apis`, each group version) and `/version`, built from the registry
//! and the remote APIServices (whose own group version documents their servers answer).

use std::collections::BTreeMap;
use std::sync::Arc;

use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceType, subresource_kind};
use serde_json::{Value, json};

use crate::aggregator::remote::Remote;
use crate::app::AppConfig;

/// The Kubernetes version rkube speaks.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": format!("{KUBERNETES_VERSION}+rkube"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn resource_entries(rt: &ResourceType) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut main = json!({
        "name": rt.plural,
        "singularName": rt.singular(),
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": rt.verbs,
    });
    if !rt.short_names.is_empty() {
        main["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        main["categories"] = json!(rt.categories);
    }
    entries.push(main);
    for sub in rt.subresources {
        let (kind, group, version, verbs) = subresource_kind(rt, sub);
        let mut entry = json!({
            "name": format!("{}/{sub}", rt.plural),
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if group != rt.group || version != rt.version {
            entry["group"] = json!(group);
            entry["version"] = json!(version);
        }
        entries.push(entry);
    }
    entries
}

/// The media type of aggregated discovery (one document listing every resource).
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asks for aggregated discovery (v2 or v2beta1) before plain JSON.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    for part in accept?.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if params.first() != Some(&"application/json") {
            continue;
        }
        if !params.contains(&"as=APIGroupDiscoveryList") {
            return None;
        }
        if params.contains(&"g=apidiscovery.k8s.io") {
            if params.contains(&"v=v2") {
                return Some("v2");
            }
            if params.contains(&"v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

/// The remote group versions by group, each group's versions by upstream's order (higher
/// versionPriority first), the groups by upstream's order (higher groupPriorityMinimum
/// first, then by name).
fn remote_groups(remotes: &[Arc<Remote>]) -> Vec<(String, i64, Vec<&Remote>)> {
    let mut by_group: BTreeMap<&str, Vec<&Remote>> = BTreeMap::new();
    for remote in remotes {
        by_group
            .entry(remote.group.as_str())
            .or_default()
            .push(remote);
    }
    let mut groups: Vec<(String, i64, Vec<&Remote>)> = by_group
        .into_iter()
        .map(|(group, mut versions)| {
            versions.sort_by(|a, b| {
                b.version_priority
                    .cmp(&a.version_priority)
                    .then_with(|| a.version.cmp(&b.version))
            });
            let priority = versions.iter().map(|v| v.group_priority).max().unwrap_or(0);
            (group.to_owned(), priority, versions)
        })
        .collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// The discovery priority of a group served here: upstream's for built-in groups, that of
/// every custom resource group otherwise.
fn local_priority(group: &str) -> i64 {
    if registry::all().types().iter().any(|t| t.group == group) {
        crate::aggregator::builtin_priority(group, "").0
    } else {
        1000
    }
}

/// Merges entries for remote groups into the local ones: each remote group goes before the
/// first local group it outranks; a remote version of a local group joins that group.
fn merge_groups(
    local: Vec<(&str, Value)>,
    remote: Vec<(String, i64, Value)>,
    join: impl Fn(&mut Value, &Value),
) -> Vec<Value> {
    let mut pending = remote.into_iter().peekable();
    let mut merged = Vec::new();
    let mut joined: Vec<(String, Value)> = Vec::new();
    let local_names: Vec<&str> = local.iter().map(|(name, _)| *name).collect();
    for (name, mut entry) in local {
        while let Some((r_name, r_priority, _)) = pending.peek() {
            let priority = local_priority(name);
            let before =
                *r_priority > priority || (*r_priority == priority && r_name.as_str() < name);
            if !before {
                break;
            }
            if let Some((r_name, _, r_entry)) = pending.next() {
                if local_names.contains(&r_name.as_str()) {
                    joined.push((r_name, r_entry));
                } else {
                    merged.push(r_entry);
                }
            }
        }
        for (_, r_entry) in joined.iter().filter(|(n, _)| n == name) {
            join(&mut entry, r_entry);
        }
        merged.push(entry);
    }
    for (r_name, _, r_entry) in pending {
        match merged
            .iter_mut()
            .find(|e| e["name"] == r_name.as_str() || e["metadata"]["name"] == r_name.as_str())
        {
            Some(entry) => join(entry, &r_entry),
            None => merged.push(r_entry),
        }
    }
    merged
}

/// `/api` or `/apis` as an APIGroupDiscoveryList; `/apis` with the remote groups whose
/// resources are known (Stale while their server is unavailable).
pub fn aggregated(core: bool, version: &str, remotes: &[Arc<Remote>]) -> Value {
    let reg = registry::all();
    let local: Vec<(&str, Value)> = reg
        .groups()
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(|group| {
            let versions: Vec<Value> = reg
                .versions_of(group)
                .into_iter()
                .map(|v| aggregated_version(group, v))
                .collect();
            (
                group,
                json!({
                    "metadata": {"name": group, "creationTimestamp": null},
                    "versions": versions,
                }),
            )
        })
        .collect();
    let remote = if core {
        Vec::new()
    } else {
        remote_groups(remotes)
            .into_iter()
            .filter_map(|(group, priority, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .filter_map(|r| remote_aggregated_version(r))
                    .collect();
                (!versions.is_empty()).then(|| {
                    let entry = json!({
                        "metadata": {"name": group, "creationTimestamp": null},
                        "versions": versions,
                    });
                    (group, priority, entry)
                })
            })
            .collect()
    };
    let items = merge_groups(local, remote, |entry, extra| {
        if let (Some(versions), Some(more)) = (
            entry["versions"].as_array_mut(),
            extra["versions"].as_array(),
        ) {
            versions.extend(more.iter().cloned());
        }
    });
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// One group version in aggregated discovery.
fn aggregated_version(group: &str, v: &str) -> Value {
    let resources: Vec<Value> = registry::all()
        .in_group_version(group, v)
        .map(|rt| {
            let subresources: Vec<Value> = rt
                .subresources
                .iter()
                .map(|sub| {
                    let (kind, g, ver, verbs) = subresource_kind(rt, sub);
                    let mut entry = json!({"subresource": sub, "verbs": verbs});
                    if !kind.is_empty() {
                        entry["responseKind"] = json!({"group": g, "version": ver, "kind": kind});
                    }
                    entry
                })
                .collect();
            let mut entry = json!({
                "resource": rt.plural,
                "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": rt.singular(),
                "verbs": rt.verbs,
            });
            if !rt.short_names.is_empty() {
                entry["shortNames"] = json!(rt.short_names);
            }
            if !rt.categories.is_empty() {
                entry["categories"] = json!(rt.categories);
            }
            if !subresources.is_empty() {
                entry["subresources"] = json!(subresources);
            }
            entry
        })
        .collect();
    json!({"version": v, "resources": resources, "freshness": "Current"})
}

/// A remote group version in aggregated discovery, from the APIResourceList its server
/// answered: subresources (`flunders/status`) go under their resource.
fn remote_aggregated_version(remote: &Remote) -> Option<Value> {
    let list = remote.resources.as_ref()?;
    let listed = list["resources"].as_array()?;
    let mut resources: Vec<Value> = Vec::new();
    for r in listed {
        let Some(name) = r["name"].as_str() else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        let mut entry = json!({
            "resource": name,
            "responseKind": {
                "group": r["group"].as_str().unwrap_or(&remote.group),
                "version": r["version"].as_str().unwrap_or(&remote.version),
                "kind": r["kind"],
            },
            "scope": if r["namespaced"] == true { "Namespaced" } else { "Cluster" },
            "singularResource": r["singularName"].as_str().unwrap_or_default(),
            "verbs": r["verbs"].as_array().cloned().unwrap_or_default(),
        });
        for key in ["shortNames", "categories"] {
            if r[key].as_array().is_some_and(|a| !a.is_empty()) {
                entry[key] = r[key].clone();
            }
        }
        resources.push(entry);
    }
    for r in listed {
        let Some((parent, sub)) = r["name"].as_str().and_then(|n| n.split_once('/')) else {
            continue;
        };
        let Some(entry) = resources.iter_mut().find(|e| e["resource"] == parent) else {
            continue;
        };
        let mut subresource = json!({
            "subresource": sub,
            "verbs": r["verbs"].as_array().cloned().unwrap_or_default(),
        });
        if r["kind"].as_str().is_some_and(|k| !k.is_empty()) {
            subresource["responseKind"] = json!({
                "group": r["group"].as_str().unwrap_or(&remote.group),
                "version": r["version"].as_str().unwrap_or(&remote.version),
                "kind": r["kind"],
            });
        }
        match entry["subresources"].as_array_mut() {
            Some(subs) => subs.push(subresource),
            None => entry["subresources"] = json!([subresource]),
        }
    }
    Some(json!({
        "version": remote.version,
        "resources": resources,
        "freshness": if remote.available { "Current" } else { "Stale" },
    }))
}

/// A remote group's `/apis` entry.
fn remote_group_entry(group: &str, versions: &[&Remote]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|r| json!({"groupVersion": format!("{group}/{}", r.version), "version": r.version}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

fn group_entry(group: &str) -> Value {
    let versions: Vec<Value> = registry::all()
        .versions_of(group)
        .into_iter()
        .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// Answers a discovery path, or 404. `/apis` lists every remote group too (upstream lists
/// them whether or not their server is available); `/apis/<group>` of a group only remote
/// servers serve is answered here. A remote group version's own document is its server's.
pub fn serve(path: &str, config: &AppConfig, remotes: &[Arc<Remote>]) -> Result<Value, ApiError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reg = registry::all();
    match parts.as_slice() {
        ["api"] => Ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": config.advertise_address}],
        })),
        ["apis"] => {
            let local: Vec<(&str, Value)> = reg
                .groups()
                .into_iter()
                .filter(|g| !g.is_empty())
                .map(|g| (g, group_entry(g)))
                .collect();
            let remote = remote_groups(remotes)
                .into_iter()
                .map(|(group, priority, versions)| {
                    let entry = remote_group_entry(&group, &versions);
                    (group, priority, entry)
                })
                .collect();
            let groups = merge_groups(local, remote, |entry, extra| {
                if let (Some(versions), Some(more)) = (
                    entry["versions"].as_array_mut(),
                    extra["versions"].as_array(),
                ) {
                    versions.extend(more.iter().cloned());
                }
            });
            Ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", group] if reg.version_of(group).is_none() => {
            let (_, _, versions) = remote_groups(remotes)
                .into_iter()
                .find(|(g, _, _)| g == group)
                .ok_or(ApiError::NoSuchPath)?;
            let mut entry = remote_group_entry(group, &versions);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            Ok(entry)
        }
        ["apis", group] if reg.version_of(group).is_some() => {
            let mut entry = group_entry(group);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            Ok(entry)
        }
        ["api", "v1"] => Ok(resource_list("", "v1")),
        ["apis", group, version] if reg.in_group_version(group, version).next().is_some() => {
            Ok(resource_list(group, version))
        }
        _ => Err(ApiError::NoSuchPath),
    }
}

fn resource_list(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = registry::all()
        .in_group_version(group, version)
        .flat_map(resource_entries)
        .collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AppConfig {
        AppConfig {
            advertise_address: "127.0.0.1:6443".into(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
            watch_cache: crate::cache::WatchCacheConfig::default(),
            metrics: Vec::new(),
            disable_admission_plugins: Vec::new(),
            kubelet_tls: None,
            cluster_dns: None,
            front_proxy: None,
        }
    }

    #[test]
    fn core_discovery_lists_pods_with_subresources() {
        let v1 = serve("/api/v1", &config(), &[]).unwrap();
        let names: Vec<&str> = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"pods/eviction")
        );
        let pods = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        let eviction = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(
            (eviction["group"].as_str(), eviction["kind"].as_str()),
            (Some("policy"), Some("Eviction"))
        );
    }

    #[test]
    fn aggregated_discovery_is_offered_when_asked_for_first() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(Some(kubectl)), Some("v2"));
        assert_eq!(wants_aggregated(Some("application/json")), None);
        let apis = aggregated(false, "v2", &[]);
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(
            deploy["subresources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["subresource"] == "scale")
                .unwrap()["responseKind"]["kind"],
            "Scale"
        );
        let core = aggregated(true, "v2", &[]);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
    }

    fn remote(group: &str, version: &str, priorities: (i64, i64)) -> Arc<Remote> {
        let object = json!({
            "metadata": {"name": format!("{version}.{group}")},
            "spec": {
                "group": group,
                "version": version,
                "service": {"namespace": "default", "name": "api", "port": 443},
                "groupPriorityMinimum": priorities.0,
                "versionPriority": priorities.1,
            },
            "status": {"conditions": [{"type": "Available", "status": "False"}]},
        });
        let resources = json!({"resources": [
            {"name": "flunders", "singularName": "flunder", "namespaced": true,
             "kind": "Flunder", "verbs": ["get", "list"]},
            {"name": "flunders/status", "singularName": "", "namespaced": true,
             "kind": "Flunder", "verbs": ["get"]},
        ]});
        Arc::new(Remote::from_api_service(&object, None, Some(resources)).unwrap())
    }

    #[test]
    fn remote_groups_are_placed_by_priority_and_their_versions_by_version_priority() {
        let remotes = [
            remote("wardle.example.com", "v1alpha1", (2000, 100)),
            remote("wardle.example.com", "v1beta1", (2000, 200)),
            remote("first.example.com", "v1", (20000, 1)),
            remote("apps", "v2alpha1", (1, 1)),
        ];
        let apis = serve("/apis", &config(), &remotes).unwrap();
        let names = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(names[0], "first.example.com");
        let wardle = names
            .iter()
            .position(|n| *n == "wardle.example.com")
            .unwrap();
        let builtin_after = names[wardle + 1..]
            .iter()
            .filter(|n| registry::all().types().iter().any(|t| t.group == **n))
            .count();
        assert_eq!(builtin_after, 0, "{names:?}");
        let wardle = &apis["groups"][wardle];
        assert_eq!(
            wardle["preferredVersion"]["groupVersion"],
            "wardle.example.com/v1beta1"
        );
        assert_eq!(wardle["versions"][1]["version"], "v1alpha1");
        let apps = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["versions"][0]["version"], "v1");
        assert_eq!(apps["versions"][1]["version"], "v2alpha1");
        let group = serve("/apis/wardle.example.com", &config(), &remotes).unwrap();
        assert_eq!(group["kind"], "APIGroup");

        let aggregated = aggregated(false, "v2", &remotes);
        let item = aggregated["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "wardle.example.com")
            .unwrap();
        let v1beta1 = &item["versions"][0];
        assert_eq!(
            (v1beta1["version"].as_str(), v1beta1["freshness"].as_str()),
            (Some("v1beta1"), Some("Stale"))
        );
        let flunders = &v1beta1["resources"][0];
        assert_eq!(flunders["singularResource"], "flunder");
        assert_eq!(flunders["subresources"][0]["subresource"], "status");
    }

    #[test]
    fn groups_are_listed_with_their_preferred_version() {
        let apis = serve("/apis", &config(), &[]).unwrap();
        let apps = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(serve("/apis/nonexistent.io", &config(), &[]).is_err());
        assert_eq!(
            serve("/apis/apps/v1", &config(), &[]).unwrap()["groupVersion"],
            "apps/v1"
        );
    }
}
