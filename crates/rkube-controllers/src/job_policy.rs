//! The Job controller's pure decisions: the backoff between failed pods, completion index
//! sets as `status.completedIndexes` spells them, and which podFailurePolicy rule a failed
//! pod matches.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::PodFailurePolicy;
use k8s_openapi::api::core::v1::Pod;

/// The first delay before a failed pod is replaced, as upstream's `DefaultJobPodFailureBackOff`.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest delay, as upstream's `MaxJobPodFailureBackOff`.
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// The delay before a replacement after `failures` consecutive failures: none before the
/// first, then 10 s doubling each time, capped at 6 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16);
    BACKOFF_BASE.saturating_mul(1u32 << shift).min(BACKOFF_MAX)
}

/// `0-2,4,6-7`: sorted indexes, consecutive runs as ranges.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((first, last)) if i == last + 1 => Some((first, i)),
            Some(done) => {
                parts.push(range_text(done));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(done) = run {
        parts.push(range_text(done));
    }
    parts.join(",")
}

fn range_text((first, last): (i32, i32)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The indexes `format_indexes` wrote; malformed parts are skipped.
pub fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// What a podFailurePolicy rule says about a failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Fail the whole Job.
    FailJob,
    /// Do not count the failure against the backoff limit.
    Ignore,
    /// Count it, as without a policy.
    Count,
    /// Fail the pod's index (Indexed Jobs with backoffLimitPerIndex).
    FailIndex,
}

/// The first rule of `policy` matching the failed `pod`, with upstream's message naming it.
pub fn match_failure_policy(
    policy: &PodFailurePolicy,
    pod: &Pod,
) -> Option<(FailureAction, String)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let status = pod.status.as_ref();
    for (index, rule) in policy.rules.iter().enumerate() {
        let action = match rule.action.as_str() {
            "FailJob" => FailureAction::FailJob,
            "Ignore" => FailureAction::Ignore,
            "FailIndex" => FailureAction::FailIndex,
            _ => FailureAction::Count,
        };
        if let Some(codes) = &rule.on_exit_codes {
            let statuses = status.into_iter().flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            });
            for container in statuses {
                if codes
                    .container_name
                    .as_deref()
                    .is_some_and(|c| c != container.name)
                {
                    continue;
                }
                let Some(code) = container
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                // A container that exited 0 never matches, whatever the operator.
                if code == 0 {
                    continue;
                }
                let listed = codes.values.contains(&code);
                let matches = if codes.operator == "NotIn" {
                    !listed
                } else {
                    listed
                };
                if matches {
                    let message = format!(
                        "Container {} for pod {namespace}/{name} failed with exit code {code} matching {} rule at index {index}",
                        container.name, rule.action
                    );
                    return Some((action, message));
                }
            }
        }
        for pattern in rule.on_pod_conditions.iter().flatten() {
            let hit = status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == pattern.type_ && c.status == pattern.status);
            if hit {
                let message = format!(
                    "Pod {namespace}/{name} has condition {} matching {} rule at index {index}",
                    pattern.type_, rule.action
                );
                return Some((action, message));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_ten_seconds_doubles_and_stops_at_six_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn indexes_are_written_as_ranges_and_read_back() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert!(parse_indexes("").is_empty());
    }

    fn failed_pod(exit_code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [{
                "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": exit_code}}
            }]}
        }))
        .unwrap_or_default()
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(serde_json::json!({ "rules": rules })).unwrap_or_default()
    }

    #[test]
    fn failure_policy_rules_match_exit_codes_and_conditions_in_order() {
        let policy = policy(serde_json::json!([
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]));
        let (action, message) =
            match_failure_policy(&policy, &failed_pod(42, serde_json::json!([])))
                .unwrap_or((FailureAction::Count, String::new()));
        assert_eq!(action, FailureAction::FailJob);
        assert_eq!(
            message,
            "Container main for pod default/p failed with exit code 42 matching FailJob rule at index 0"
        );
        let disrupted = failed_pod(
            1,
            serde_json::json!([{"type": "DisruptionTarget", "status": "True"}]),
        );
        assert_eq!(
            match_failure_policy(&policy, &disrupted).map(|m| m.0),
            Some(FailureAction::Ignore)
        );
        assert_eq!(
            match_failure_policy(&policy, &failed_pod(3, serde_json::json!([]))).map(|m| m.0),
            Some(FailureAction::Count)
        );
        assert_eq!(
            match_failure_policy(&policy, &failed_pod(1, serde_json::json!([]))),
            None
        );
        assert_eq!(
            match_failure_policy(&policy, &failed_pod(0, serde_json::json!([]))),
            None
        );
    }
}
