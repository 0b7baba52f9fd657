//! The disruption controller: each PodDisruptionBudget's status says how many of its pods are
//! healthy, how many must be, and so how many may be disrupted now, which the eviction
//! subresource charges against. `minAvailable` and `maxUnavailable` take numbers or
//! percentages; percentages, and `maxUnavailable`, count against the scale of the pods'
//! controllers (Deployment, ReplicaSet, ReplicationController, StatefulSet), as upstream does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use rkube_api::selector::LabelSelector;

use crate::endpoints::is_pod_ready;
use crate::events::{EventType, Recorder};
use crate::informer::{AbortOnDrop, Change, Next, WorkQueue, feed, key_of};
use crate::informer::{KeyIndex, SharedInformers};

/// How long an eviction recorded in `disruptedPods` is waited for before it is forgotten.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// An integer or a percentage of `total`; percentages round up, as upstream's
/// `GetScaledValueFromIntOrPercent(…, roundUp=true)`.
pub fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((percent * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// The numbers a budget's status is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget protects (its pods, or the controllers' scale).
    pub expected: i32,
    /// Healthy pods it needs.
    pub desired_healthy: i32,
    /// Healthy pods it has.
    pub current_healthy: i32,
    /// Disruptions allowed now.
    pub disruptions_allowed: i32,
}

/// Works out a budget. `pod_count` is how many pods it selects, `scale` the summed scale of
/// their controllers (`None` when some pod has none, which only percentages and
/// `maxUnavailable` need), `healthy` how many are ready and not already being disrupted.
pub fn compute_budget(
    pdb: &PodDisruptionBudget,
    pod_count: i32,
    scale: Option<i32>,
    healthy: i32,
) -> Result<Budget, String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let need_scale =
        || scale.ok_or_else(|| "found no controllers for some of the budget's pods".to_owned());
    let (expected, desired) = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let expected = need_scale()?;
            let max = scaled(max, expected)?;
            (expected, (expected - max).max(0))
        }
        (None, Some(IntOrString::Int(min))) => (pod_count, *min),
        (None, Some(min)) => {
            let expected = need_scale()?;
            (expected, scaled(min, expected)?)
        }
        // Defaulting gives minAvailable 1 when neither is set.
        (None, None) => (pod_count, 1),
    };
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    Ok(Budget {
        expected,
        desired_healthy: desired,
        current_healthy: healthy,
        disruptions_allowed: allowed,
    })
}

/// The DisruptionAllowed condition for a budget.
pub fn allowed_condition(
    allowed: bool,
    generation: Option<i64>,
    previous: Option<&Condition>,
    now: Timestamp,
) -> Condition {
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let transition = previous
        .filter(|c| c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: transition,
    }
}

/// Keeps every PodDisruptionBudget's status true.
pub struct DisruptionController {
    client: kube::Client,
    informers: SharedInformers,
    recorder: Recorder,
}

impl DisruptionController {
    /// A controller acting through `client`.
    pub fn new(client: impl Into<SharedInformers>, _settings: &crate::Settings) -> Self {
        let informers: SharedInformers = client.into();
        Self {
            recorder: Recorder::new(informers.client().clone(), "controllermanager"),
            client: informers.client().clone(),
            informers,
        }
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let queue = WorkQueue::new();
        let (pdbs, pdb_events) = self.informers.informer::<PodDisruptionBudget>().await;
        let (pods, pod_events) = self.informers.informer::<Pod>().await;
        let reader = pdbs.clone();
        let _guards = [
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                pdb_events,
                |change: &Change<PodDisruptionBudget>| vec![key_of(change.object())],
            ))),
            // A pod's change concerns the budgets of its namespace.
            AbortOnDrop(tokio::spawn(feed(
                queue.clone(),
                pod_events,
                move |change: &Change<Pod>| {
                    let ns = change.object().metadata.namespace.clone();
                    reader
                        .state_filter(|pdb| pdb.metadata.namespace == ns)
                        .iter()
                        .map(|pdb| key_of(pdb.as_ref()))
                        .collect()
                },
            ))),
        ];
        if pdbs.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
            return;
        }
        let by_namespace = crate::podutil::pods_by_namespace(&self.informers).await;
        let this = &self;
        let (pdbs, pods) = (&pdbs, &by_namespace);
        queue
            .run("disruption", |key| async move {
                this.reconcile(pdbs, pods, &key).await
            })
            .await;
    }

    /// The summed scale of the controllers of `pods`, each counted once; `None` if a pod has
    /// no controller whose scale is known.
    async fn controllers_scale(
        &self,
        ns: &str,
        pods: &[Arc<Pod>],
    ) -> Result<Option<i32>, kube::Error> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in pods {
            let Some(owner) = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
            else {
                return Ok(None);
            };
            let scale = match (owner.api_version.as_str(), owner.kind.as_str()) {
                ("apps/v1", "ReplicaSet") => {
                    let Some(rs) = Api::<ReplicaSet>::namespaced(self.client.clone(), ns)
                        .get_opt(&owner.name)
                        .await?
                    else {
                        return Ok(None);
                    };
                    let deployment = rs.metadata.owner_references.iter().flatten().find(|o| {
                        o.controller == Some(true)
                            && o.kind == "Deployment"
                            && o.api_version == "apps/v1"
                    });
                    match deployment {
                        Some(d) => {
                            if !seen.insert(d.uid.clone()) {
                                continue;
                            }
                            match Api::<Deployment>::namespaced(self.client.clone(), ns)
                                .get_opt(&d.name)
                                .await?
                            {
                                Some(dep) => dep.spec.and_then(|s| s.replicas).unwrap_or(1),
                                None => return Ok(None),
                            }
                        }
                        None => rs.spec.and_then(|s| s.replicas).unwrap_or(1),
                    }
                }
                ("apps/v1", "StatefulSet") => {
                    match Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                        .get_opt(&owner.name)
                        .await?
                    {
                        Some(s) => s.spec.and_then(|s| s.replicas).unwrap_or(1),
                        None => return Ok(None),
                    }
                }
                ("v1", "ReplicationController") => {
                    match Api::<ReplicationController>::namespaced(self.client.clone(), ns)
                        .get_opt(&owner.name)
                        .await?
                    {
                        Some(rc) => rc.spec.and_then(|s| s.replicas).unwrap_or(1),
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            };
            if !seen.insert(owner.uid.clone()) {
                continue;
            }
            total += scale;
        }
        Ok(Some(total))
    }

    /// Recomputes one budget's status from the pods of its namespace (`pods`, by namespace).
    pub async fn reconcile(
        &self,
        pdbs: &Store<PodDisruptionBudget>,
        pods: &KeyIndex<Pod>,
        key: &(String, String),
    ) -> Result<Next, kube::Error> {
        let Some(pdb) = pdbs.get(&ObjectRef::new(&key.1).within(&key.0)) else {
            return Ok(Next::Wait);
        };
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map_or(Ok(LabelSelector::nothing()), LabelSelector::from_api)
            .unwrap_or_else(|_| LabelSelector::nothing());
        let empty = BTreeMap::new();
        let mut selected = pods.get(&key.0);
        selected.retain(|pod| {
            !selector.matches_nothing()
                && selector.matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
        });
        let now = Timestamp::now();
        // Evictions the API server recorded and that have not happened yet.
        let mut disrupted = pdb
            .status
            .as_ref()
            .and_then(|s| s.disrupted_pods.clone())
            .unwrap_or_default();
        let mut recheck: Option<Duration> = None;
        disrupted.retain(|pod_name, at| {
            let pod = selected
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()));
            let pending = pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none());
            let expires = at.0
                + k8s_openapi::jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
            let keep = pending && expires > now;
            if keep {
                let left = now.duration_until(expires).unsigned_abs();
                recheck = Some(recheck.map_or(left, |r| r.min(left)));
            }
            keep
        });
        let healthy = selected
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && is_pod_ready(p)
                    && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or(""))
            })
            .count() as i32;
        let spec = pdb.spec.clone().unwrap_or_default();
        let needs_scale = spec.max_unavailable.is_some()
            || matches!(spec.min_available, Some(IntOrString::String(_)));
        let scale = if needs_scale {
            self.controllers_scale(&key.0, &selected).await?
        } else {
            None
        };
        let generation = pdb.metadata.generation;
        let previous = pdb
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"))
            .cloned();
        let status = match compute_budget(&pdb, selected.len() as i32, scale, healthy) {
            Ok(budget) => PodDisruptionBudgetStatus {
                current_healthy: budget.current_healthy,
                desired_healthy: budget.desired_healthy,
                expected_pods: budget.expected,
                disruptions_allowed: budget.disruptions_allowed,
                disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                observed_generation: generation,
                conditions: Some(vec![allowed_condition(
                    budget.disruptions_allowed > 0,
                    generation,
                    previous.as_ref(),
                    now,
                )]),
            },
            Err(message) => {
                self.recorder
                    .publish(
                        &*pdb,
                        EventType::Warning,
                        "CalculateExpectedPodCountFailed",
                        &format!("Failed to calculate the number of expected pods: {message}"),
                    )
                    .await;
                // Fail safe: nothing may be disrupted while the budget cannot be worked out.
                let mut condition = allowed_condition(false, generation, previous.as_ref(), now);
                condition.reason = "SyncFailed".into();
                condition.message = message;
                PodDisruptionBudgetStatus {
                    current_healthy: healthy,
                    desired_healthy: 0,
                    expected_pods: 0,
                    disruptions_allowed: 0,
                    disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                    observed_generation: generation,
                    conditions: Some(vec![condition]),
                }
            }
        };
        let current = pdb.status.clone().unwrap_or_default();
        let same = |a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus| {
            let strip = |s: &PodDisruptionBudgetStatus| {
                let mut s = s.clone();
                for c in s.conditions.iter_mut().flatten() {
                    c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
                }
                s
            };
            strip(a) == strip(b)
        };
        if !same(&current, &status) {
            let mut next = (*pdb).clone();
            next.status = Some(status);
            let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &key.0);
            api.replace_status(&key.1, &PostParams::default(), &next)
                .await?;
        }
        Ok(recheck.map_or(Next::Wait, Next::After))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 5), Ok(3));
        assert_eq!(scaled(&IntOrString::String("10%".into()), 10), Ok(1));
        assert_eq!(scaled(&IntOrString::String("0%".into()), 10), Ok(0));
        assert_eq!(scaled(&IntOrString::Int(2), 10), Ok(2));
        assert!(scaled(&IntOrString::String("half".into()), 10).is_err());
    }

    #[test]
    fn min_available_as_a_number_counts_the_selected_pods() {
        let budget = compute_budget(&pdb(json!({"minAvailable": 2})), 3, None, 3).unwrap();
        assert_eq!(
            budget,
            Budget {
                expected: 3,
                desired_healthy: 2,
                current_healthy: 3,
                disruptions_allowed: 1
            }
        );
        let tight = compute_budget(&pdb(json!({"minAvailable": 2})), 3, None, 2).unwrap();
        assert_eq!(tight.disruptions_allowed, 0);
    }

    #[test]
    fn max_unavailable_and_percentages_count_against_the_controllers_scale() {
        let budget = compute_budget(&pdb(json!({"maxUnavailable": 1})), 3, Some(4), 3).unwrap();
        assert_eq!(
            (
                budget.expected,
                budget.desired_healthy,
                budget.disruptions_allowed
            ),
            (4, 3, 0)
        );
        let percent =
            compute_budget(&pdb(json!({"maxUnavailable": "50%"})), 4, Some(4), 4).unwrap();
        assert_eq!(
            (percent.desired_healthy, percent.disruptions_allowed),
            (2, 2)
        );
        let min_percent =
            compute_budget(&pdb(json!({"minAvailable": "50%"})), 3, Some(3), 3).unwrap();
        assert_eq!(
            (min_percent.desired_healthy, min_percent.disruptions_allowed),
            (2, 1)
        );
        assert!(compute_budget(&pdb(json!({"maxUnavailable": 1})), 3, None, 3).is_err());
    }

    #[test]
    fn no_expected_pods_allow_no_disruption() {
        let budget = compute_budget(&pdb(json!({"minAvailable": 0})), 0, None, 0).unwrap();
        assert_eq!(budget.disruptions_allowed, 0);
    }

    #[test]
    fn the_condition_says_whether_disruptions_are_allowed_and_keeps_its_transition_time() {
        let then: Timestamp = "2026-11-22T08:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-11-22T09:00:00Z".parse().unwrap();
        let allowed = allowed_condition(true, Some(1), None, then);
        assert_eq!(
            (allowed.status.as_str(), allowed.reason.as_str()),
            ("True", "SufficientPods")
        );
        let again = allowed_condition(true, Some(2), Some(&allowed), later);
        assert_eq!(again.last_transition_time, Time(then));
        let refused = allowed_condition(false, Some(2), Some(&allowed), later);
        assert_eq!(
            (refused.status.as_str(), refused.reason.as_str()),
            ("False", "InsufficientPods")
        );
        assert_eq!(refused.last_transition_time, Time(later));
    }
}
