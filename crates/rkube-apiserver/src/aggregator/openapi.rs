//! The OpenAPI documents of extension API servers, as upstream's OpenAPI aggregation
//! controllers keep them: each remote APIService's backend is asked, as `system:aggregator`
//! through the proxy's TLS client, for its `/openapi/v2` document (filtered to the paths of
//! its group version, then merged into `/openapi/v2`) and its `/openapi/v3` root and the
//! documents it lists for group versions (listed in, and served from, `/openapi/v3`).
//!
//! An APIService is asked once it is available, again whenever it changes, and every minute
//! after a success; after a failure, after a minute doubling up to an hour, as upstream's
//! rate-limited queue retries. What it answered last stays while it cannot be reached, and
//! goes with the APIService.
//!
//! Upstream proxies a request for a remote group version's v3 document to the backend when it
//! comes; here the copy fetched at the last refresh is served, so the `hash` the root lists
//! names exactly what is served.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::proxy;
use super::remote::Remote;
use super::spec_merge;
use crate::app::App;
use crate::auth::UserInfo;
use crate::openapi_v2::Built;

/// Upstream's `successfulUpdateDelay`: how long a fetched document is trusted.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Upstream's `failedUpdateMaxExpDelay`: the longest wait after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long one download may take (upstream's `specDownloadTimeout`).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest document accepted (upstream sets none; this bounds memory).
const MAX_DOCUMENT: usize = 32 * 1024 * 1024;

/// What one remote APIService's backend publishes.
#[derive(Clone, Default)]
struct Published {
    group: String,
    group_priority: i64,
    version_priority: i64,
    /// Its `/openapi/v2` document, filtered to its group version's paths; `None` when it
    /// serves none.
    v2: Option<Arc<Value>>,
    /// Its v3 documents by group-version path (`apis/<group>/<version>`).
    v3: BTreeMap<String, Arc<Vec<u8>>>,
}

/// The OpenAPI documents of the remote APIServices, by APIService name.
#[derive(Default)]
pub(crate) struct RemoteSpecs {
    by_name: RwLock<BTreeMap<String, Published>>,
    /// Moves whenever a v2 document comes or goes.
    v2_generation: AtomicU64,
    /// The last `/openapi/v2` built with the remote documents: for which local document
    /// generation and which `v2_generation`.
    merged_v2: Mutex<Option<(u64, u64, Arc<Built>)>>,
}

impl RemoteSpecs {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Published>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Published>> {
        self.by_name.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every remote v3 document by group-version path; where two APIServices list the same
    /// path, the first by name.
    pub fn v3_documents(&self) -> BTreeMap<String, Arc<Vec<u8>>> {
        let mut docs = BTreeMap::new();
        for published in self.read().values() {
            for (path, doc) in &published.v3 {
                docs.entry(path.clone()).or_insert_with(|| doc.clone());
            }
        }
        docs
    }

    /// The remote v2 documents in the order upstream merges them (by the group's highest
    /// priority, then the version's, then the name), and the generation they are of.
    pub fn v2_documents(&self) -> (u64, Vec<Arc<Value>>) {
        let by_name = self.read();
        let generation = self.v2_generation.load(Ordering::SeqCst);
        let mut group_priority: HashMap<&str, i64> = HashMap::new();
        for p in by_name.values() {
            let top = group_priority.entry(&p.group).or_insert(p.group_priority);
            *top = (*top).max(p.group_priority);
        }
        let mut ordered: Vec<(&String, &Published)> =
            by_name.iter().filter(|(_, p)| p.v2.is_some()).collect();
        ordered.sort_by(|(a_name, a), (b_name, b)| {
            let (a_priority, b_priority) = if a.group == b.group {
                (a.version_priority, b.version_priority)
            } else {
                (
                    group_priority[a.group.as_str()],
                    group_priority[b.group.as_str()],
                )
            };
            b_priority.cmp(&a_priority).then(a_name.cmp(b_name))
        });
        let docs = ordered
            .into_iter()
            .filter_map(|(_, p)| p.v2.clone())
            .collect();
        (generation, docs)
    }

    /// The merged v2 document cached for `local` and `remote` generations, or one built now
    /// by `build` (and cached).
    pub fn merged_v2(&self, local: u64, remote: u64, build: impl FnOnce() -> Built) -> Arc<Built> {
        let mut merged = self.merged_v2.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((l, r, built)) = merged.as_ref()
            && *l == local
            && *r == remote
        {
            return built.clone();
        }
        let built = Arc::new(build());
        *merged = Some((local, remote, built.clone()));
        built
    }

    /// Keeps what the APIServices named in `names` published, and forgets the rest.
    fn retain(&self, names: &BTreeMap<String, Arc<Remote>>) {
        let mut by_name = self.write();
        let had_v2 = by_name.values().filter(|p| p.v2.is_some()).count();
        by_name.retain(|name, _| names.contains_key(name));
        if by_name.values().filter(|p| p.v2.is_some()).count() != had_v2 {
            self.v2_generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Stores what `remote` answered: each document fetched, or the last one where the
    /// fetch failed.
    fn store(
        &self,
        remote: &Remote,
        v2: Option<Option<Value>>,
        v3: Option<BTreeMap<String, Arc<Vec<u8>>>>,
    ) {
        let mut by_name = self.write();
        let entry = by_name.entry(remote.name.clone()).or_default();
        entry.group = remote.group.clone();
        entry.group_priority = remote.group_priority;
        entry.version_priority = remote.version_priority;
        if let Some(v2) = v2 {
            let changed = entry.v2.as_deref() != v2.as_ref();
            entry.v2 = v2.map(Arc::new);
            if changed {
                self.v2_generation.fetch_add(1, Ordering::SeqCst);
            }
        }
        if let Some(v3) = v3 {
            entry.v3 = v3;
        }
    }
}

/// When one APIService is next asked.
struct Schedule {
    /// What it was last asked as: the APIService's spec as the proxy reads it.
    fingerprint: String,
    next: Instant,
    failures: u32,
}

/// What leads to the backend and orders its document; a change means asking again.
fn fingerprint(remote: &Remote) -> String {
    format!(
        "{}|{}|{}|{}/{}:{}|{}|{}|{}",
        remote.name,
        remote.group,
        remote.version,
        remote.namespace,
        remote.service,
        remote.port,
        remote.group_priority,
        remote.version_priority,
        remote.tls.is_ok(),
    )
}

/// The wait after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    REFRESH_EVERY.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Whether an OpenAPI v3 root's path names a group version (`apis/<group>/<version>`).
fn is_group_version_path(path: &str) -> bool {
    let mut parts = path.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("apis"), Some(g), Some(v), None) if !g.is_empty() && !v.is_empty()
    )
}

/// Upstream's `system:aggregator`: a user name and nothing else.
fn aggregator_user() -> UserInfo {
    UserInfo {
        name: "system:aggregator".to_owned(),
        uid: String::new(),
        groups: Vec::new(),
        extra: BTreeMap::new(),
    }
}

impl App {
    /// Keeps the remote APIServices' OpenAPI documents current, until the process ends.
    pub(crate) async fn run_remote_openapi(self: Arc<Self>) {
        let mut schedules: HashMap<String, Schedule> = HashMap::new();
        loop {
            let table: BTreeMap<String, Arc<Remote>> = self
                .remotes
                .all()
                .into_iter()
                .map(|r| (r.name.clone(), r))
                .collect();
            self.remotes.openapi.retain(&table);
            schedules.retain(|name, _| table.contains_key(name));
            let now = Instant::now();
            let due: Vec<Arc<Remote>> = table
                .values()
                .filter(|r| r.available)
                .filter(|r| match schedules.get(&r.name) {
                    Some(s) => s.fingerprint != fingerprint(r) || now >= s.next,
                    None => true,
                })
                .cloned()
                .collect();
            let refreshes = due.iter().map(|remote| self.refresh_openapi(remote));
            for (remote, ok) in due.iter().zip(futures::future::join_all(refreshes).await) {
                let failures = match (ok, schedules.get(&remote.name)) {
                    (true, _) => 0,
                    (false, Some(s)) if s.fingerprint == fingerprint(remote) => s.failures + 1,
                    (false, _) => 1,
                };
                let wait = if failures == 0 {
                    REFRESH_EVERY
                } else {
                    backoff(failures)
                };
                schedules.insert(
                    remote.name.clone(),
                    Schedule {
                        fingerprint: fingerprint(remote),
                        next: Instant::now() + wait,
                        failures,
                    },
                );
            }
            let next = schedules.values().map(|s| s.next).min();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = self.remotes.changed() => {}
            }
        }
    }

    /// Fetches `remote`'s documents; whether every fetch succeeded.
    async fn refresh_openapi(&self, remote: &Remote) -> bool {
        let v2 = self.fetch_v2(remote).await;
        let v3 = self.fetch_v3(remote).await;
        for err in [v2.as_ref().err(), v3.as_ref().err()].into_iter().flatten() {
            tracing::warn!(apiservice = %remote.name, error = %err, "loading OpenAPI spec");
        }
        let ok = v2.is_ok() && v3.is_ok();
        self.remotes.openapi.store(remote, v2.ok(), v3.ok());
        ok
    }

    /// GETs `path` from the backend as `system:aggregator`: the body of a 200, `None` for a
    /// 404 (a server without that document, which upstream skips quietly).
    async fn download(&self, remote: &Remote, path: &str) -> Result<Option<bytes::Bytes>, String> {
        let user = aggregator_user();
        let (status, body) =
            proxy::get_limited(self, remote, path, &user, DOWNLOAD_TIMEOUT, MAX_DOCUMENT).await?;
        match status {
            200 => Ok(Some(body)),
            404 => Ok(None),
            other => Err(format!(
                "failed to retrieve openAPI spec from {}, http error: {other}",
                remote.url(path)
            )),
        }
    }

    /// The backend's `/openapi/v2`, filtered to the paths under its group version.
    async fn fetch_v2(&self, remote: &Remote) -> Result<Option<Value>, String> {
        let Some(body) = self.download(remote, "/openapi/v2").await? else {
            return Ok(None);
        };
        let mut doc: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if !doc.is_object() {
            return Err("the OpenAPI v2 document is not an object".to_owned());
        }
        let prefix = format!("/apis/{}/{}/", remote.group, remote.version);
        spec_merge::filter_by_paths(&mut doc, &[prefix.as_str()]);
        Ok(Some(doc))
    }

    /// The group-version documents the backend's `/openapi/v3` root lists.
    async fn fetch_v3(&self, remote: &Remote) -> Result<BTreeMap<String, Arc<Vec<u8>>>, String> {
        let mut docs = BTreeMap::new();
        let Some(body) = self.download(remote, "/openapi/v3").await? else {
            return Ok(docs);
        };
        let root: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        for (path, entry) in root["paths"].as_object().into_iter().flatten() {
            if !is_group_version_path(path) {
                continue;
            }
            let url = entry["serverRelativeURL"]
                .as_str()
                .filter(|u| u.starts_with('/'))
                .map_or_else(|| format!("/openapi/v3/{path}"), str::to_owned);
            let Some(doc) = self.download(remote, &url).await? else {
                continue;
            };
            // Served as JSON: what is not JSON is not kept.
            serde_json::from_slice::<Value>(&doc).map_err(|e| format!("{url}: {e}"))?;
            docs.insert(path.clone(), Arc::new(doc.to_vec()));
        }
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remote(name: &str, group: &str, group_priority: i64, version_priority: i64) -> Remote {
        let (version, _) = name.split_once('.').unwrap();
        let object = json!({
            "metadata": {"name": name},
            "spec": {
                "group": group, "version": version,
                "service": {"namespace": "default", "name": "api"},
                "groupPriorityMinimum": group_priority, "versionPriority": version_priority,
            },
        });
        Remote::from_api_service(&object, None, None).unwrap()
    }

    #[test]
    fn remote_documents_merge_in_upstreams_priority_order() {
        let specs = RemoteSpecs::default();
        let doc = |title: &str| Some(Some(json!({"info": {"title": title}})));
        specs.store(
            &remote("v1.b.example.com", "b.example.com", 100, 10),
            doc("b1"),
            None,
        );
        specs.store(
            &remote("v2.b.example.com", "b.example.com", 100, 20),
            doc("b2"),
            None,
        );
        specs.store(
            &remote("v1.a.example.com", "a.example.com", 50, 10),
            doc("a1"),
            None,
        );
        specs.store(
            &remote("v1.c.example.com", "c.example.com", 10, 10),
            Some(None),
            None,
        );
        let (generation, docs) = specs.v2_documents();
        let titles: Vec<&str> = docs
            .iter()
            .map(|d| d["info"]["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["b2", "b1", "a1"]);
        specs.store(
            &remote("v1.a.example.com", "a.example.com", 50, 10),
            doc("a1"),
            None,
        );
        assert_eq!(specs.v2_documents().0, generation);
        specs.retain(&BTreeMap::new());
        let (after, docs) = specs.v2_documents();
        assert!(docs.is_empty() && after != generation);
    }

    #[test]
    fn a_failed_fetch_keeps_the_last_document() {
        let specs = RemoteSpecs::default();
        let wardle = remote(
            "v1alpha1.wardle.example.com",
            "wardle.example.com",
            2000,
            200,
        );
        let v3 = BTreeMap::from([(
            "apis/wardle.example.com/v1alpha1".to_owned(),
            Arc::new(b"{}".to_vec()),
        )]);
        specs.store(&wardle, Some(Some(json!({}))), Some(v3));
        specs.store(&wardle, None, None);
        assert_eq!(specs.v2_documents().1.len(), 1);
        assert!(
            specs
                .v3_documents()
                .contains_key("apis/wardle.example.com/v1alpha1")
        );
    }

    #[test]
    fn failures_back_off_from_a_minute_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(7), Duration::from_secs(3600));
        assert_eq!(backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn only_group_version_paths_of_a_v3_root_are_taken() {
        assert!(is_group_version_path("apis/wardle.example.com/v1alpha1"));
        for path in [
            "api",
            "apis",
            "version",
            "apis/wardle.example.com",
            "api/v1/x",
        ] {
            assert!(!is_group_version_path(path), "{path}");
        }
    }
}
