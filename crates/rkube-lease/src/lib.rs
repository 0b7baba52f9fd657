//! Leader election over `coordination.k8s.io/v1` Leases, with upstream client-go's semantics,
//! so that of several processes running the same component exactly one acts at a time.
//!
//! A candidate campaigns by trying, every `retry_period`, to write itself into the Lease as
//! `holderIdentity`. It may take the Lease when it does not exist, when it names no holder (the
//! last holder released it), or when the record has not changed for `lease_duration` as
//! measured on the candidate's own clock since it first saw that record (so clock skew between
//! machines does not matter; `renewTime` is informational). Every write is a compare-and-swap
//! on the Lease's resourceVersion, so two candidates never both win.
//!
//! The leader renews every `retry_period`; when no renewal succeeds within `renew_deadline` it
//! stops leading (its work is dropped) and campaigns again. A clean shutdown releases the
//! Lease (empty holder, `leaseDurationSeconds: 1`) so that a successor takes over at its next
//! try instead of waiting for expiry.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Timing of an election; the defaults are upstream's (kube-controller-manager and
/// kube-scheduler `--leader-elect-*` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// How long a candidate waits, after it last saw the record change, before taking the
    /// Lease from a holder that stopped renewing. Default 15 s.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a failed renewal before it stops leading. Must be
    /// shorter than `lease_duration`. Default 10 s.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews. Default 2 s.
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// An identity as upstream components choose it: `<hostname>_<uuid>`.
pub fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// What this candidate last saw of the Lease, and when (on its own clock).
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

struct Inner {
    leases: Api<Lease>,
    name: String,
    identity: String,
    config: LeaderElectionConfig,
    observed: Mutex<Option<Observed>>,
    leading: AtomicBool,
}

/// One candidate in the election for one Lease. Cheap to clone (clones share state).
#[derive(Clone)]
pub struct LeaderElector {
    inner: Arc<Inner>,
}

/// How a term of leadership ended.
enum TermEnd {
    /// The work returned by itself.
    Finished,
    /// A renewal did not succeed within the renew deadline.
    Lost,
    /// The caller asked to stop.
    Shutdown,
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl LeaderElector {
    /// A candidate `identity` for the Lease `namespace/name`, acting through `client`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: impl Into<String>,
        config: LeaderElectionConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                leases: Api::namespaced(client, namespace),
                name: name.to_owned(),
                identity: identity.into(),
                config,
                observed: Mutex::new(None),
                leading: AtomicBool::new(false),
            }),
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// Whether this candidate holds the Lease as far as it knows (it believed so at its last
    /// successful write and has not given up since).
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(Ordering::SeqCst)
    }

    /// One attempt to acquire or renew the Lease. `Ok(true)` when this candidate holds it
    /// afterwards; `Ok(false)` when another valid holder has it or another write won the race.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let inner = &self.inner;
        let mut observed = inner.observed.lock().await;
        let local_now = Instant::now();
        let Some(current) = inner.leases.get_opt(&inner.name).await? else {
            let mut lease = Lease::default();
            lease.metadata.name = Some(inner.name.clone());
            let time = now();
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(inner.identity.clone()),
                lease_duration_seconds: Some(seconds(inner.config.lease_duration)),
                acquire_time: Some(time.clone()),
                renew_time: Some(time),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            });
            return match inner.leases.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    *observed = Some(Observed {
                        spec: created.spec.unwrap_or_default(),
                        at: local_now,
                    });
                    Ok(true)
                }
                Err(err) if is_conflict(&err) => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        if observed.as_ref().is_none_or(|o| o.spec != spec) {
            *observed = Some(Observed {
                spec: spec.clone(),
                at: local_now,
            });
        }
        let seen_at = observed.as_ref().map_or(local_now, |o| o.at);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == inner.identity;
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(inner.config.lease_duration, Duration::from_secs);
        if !holder.is_empty() && !held_by_me && seen_at + duration > local_now {
            return Ok(false);
        }
        let time = now();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = LeaseSpec {
            holder_identity: Some(inner.identity.clone()),
            lease_duration_seconds: Some(seconds(inner.config.lease_duration)),
            acquire_time: if held_by_me {
                spec.acquire_time.clone().or_else(|| Some(time.clone()))
            } else {
                Some(time.clone())
            },
            renew_time: Some(time),
            lease_transitions: Some(if held_by_me {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..spec
        };
        let mut lease = current;
        lease.spec = Some(next);
        match inner
            .leases
            .replace(&inner.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                *observed = Some(Observed {
                    spec: written.spec.unwrap_or_default(),
                    at: local_now,
                });
                Ok(true)
            }
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up if this candidate holds it: no holder and a one-second duration, so a
    /// successor takes it at its next try. The transition count is kept (the successor raises it).
    pub async fn release(&self) -> Result<(), kube::Error> {
        let inner = &self.inner;
        inner.leading.store(false, Ordering::SeqCst);
        let mut observed = inner.observed.lock().await;
        let Some(current) = inner.leases.get_opt(&inner.name).await? else {
            return Ok(());
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(inner.identity.as_str()) {
            return Ok(());
        }
        let time = now();
        let mut lease = current;
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(time.clone()),
            renew_time: Some(time),
            ..spec
        });
        let written = inner
            .leases
            .replace(&inner.name, &PostParams::default(), &lease)
            .await?;
        *observed = Some(Observed {
            spec: written.spec.unwrap_or_default(),
            at: Instant::now(),
        });
        tracing::info!(lease = %inner.name, identity = %inner.identity, "released the lease");
        Ok(())
    }

    /// Campaigns until this candidate holds the Lease.
    async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    self.inner.leading.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(lease = %self.inner.name, error = %err, "acquiring the lease")
                }
            }
            tokio::time::sleep(self.inner.config.retry_period).await;
        }
    }

    /// Renews every retry period; returns when a renewal has not succeeded within the renew
    /// deadline (leadership is lost).
    async fn keep_renewing(&self) {
        let config = self.inner.config;
        loop {
            tokio::time::sleep(config.retry_period).await;
            let deadline = Instant::now() + config.renew_deadline;
            loop {
                let attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await;
                match attempt {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(lease = %self.inner.name, error = %err, "renewing the lease")
                    }
                    Err(_) => {}
                }
                if Instant::now() + config.retry_period >= deadline {
                    self.inner.leading.store(false, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(config.retry_period).await;
            }
        }
    }

    /// Runs `work()` only while this candidate leads, for ever: campaigns, runs a fresh
    /// `work()` once elected, drops it when leadership is lost and campaigns again. If the work
    /// returns by itself, the Lease is released and this returns.
    ///
    /// Dropping the returned future while leading releases the Lease in a background task
    /// (best effort); [`LeaderElector::run_until`] releases it before returning.
    pub async fn run_while_leader<F, Fut>(&self, work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        self.run_until(work, std::future::pending::<()>()).await
    }

    /// As [`LeaderElector::run_while_leader`], until `shutdown` completes: then the work is
    /// dropped and the Lease released (awaited) before this returns.
    pub async fn run_until<F, Fut, S>(&self, mut work: F, shutdown: S)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
        S: Future<Output = ()>,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let inner = &self.inner;
        loop {
            tokio::select! {
                () = self.acquire() => {}
                () = &mut shutdown => return,
            }
            tracing::info!(lease = %inner.name, identity = %inner.identity, "became the leader");
            let mut guard = ReleaseOnDrop(Some(self.clone()));
            let end = {
                let term = work();
                tokio::select! {
                    () = term => TermEnd::Finished,
                    () = self.keep_renewing() => TermEnd::Lost,
                    () = &mut shutdown => TermEnd::Shutdown,
                }
            };
            guard.0 = None;
            match end {
                TermEnd::Lost => {
                    tracing::warn!(lease = %inner.name, identity = %inner.identity, "lost the lease; stopped leading");
                }
                TermEnd::Finished | TermEnd::Shutdown => {
                    if let Err(err) = self.release().await {
                        tracing::warn!(lease = %inner.name, error = %err, "releasing the lease");
                    }
                    return;
                }
            }
        }
    }
}

/// Releases the Lease from a background task if a term is dropped half-way (the caller's
/// future was dropped while leading).
struct ReleaseOnDrop(Option<LeaderElector>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(elector) = self.0.take() {
            elector.inner.leading.store(false, Ordering::SeqCst);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(err) = elector.release().await {
                        tracing::debug!(error = %err, "releasing the lease after a drop");
                    }
                });
            }
        }
    }
}
