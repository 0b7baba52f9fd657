//! ResourceQuota admission: a new object is charged to every quota of its namespace that
//! tracks something it uses. The charge is added to the quota's `status.used` with a
//! compare-and-swap, so concurrent creates cannot together exceed a limit; one that would is
//! refused with upstream's 403 (`exceeded quota: …`). The quota controller later recomputes
//! `status.used` from what exists, which also returns the charges of creates that failed.
//! Until the quota controller has counted a quota's usage, creates it concerns are refused
//! ("status unknown for quota"), as upstream does: charging an unknown count would be wrong.

use std::collections::BTreeMap;

use rkube_api::ApiError;
use rkube_api::quota::{
    Format, Milli, format_quantity, missing_pod_resources, object_usage, parse_quantity,
};
use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::app::App;
use crate::decode::FieldValidation;

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn quantity(value: &Value) -> Option<(Milli, Format)> {
    value.as_str().and_then(parse_quantity)
}

/// `a=1,b=2`, keys sorted, as upstream's quota messages print resource lists.
fn pretty(list: &BTreeMap<String, String>) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl App {
    /// Charges the new `object` (named `name`, of `rt`, in `ns`) to its namespace's quotas;
    /// 403 if it would exceed one, or if it is a pod that leaves out a compute resource a
    /// quota limits.
    pub(crate) async fn charge_quota(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        let Some(ns) = ns else {
            return Ok(());
        };
        let quotas_rt = self.resource("", "ResourceQuota")?;
        let quotas = self.list_current(quotas_rt, Some(ns)).await?;
        let forbidden = |message: String| {
            ApiError::Forbidden(format!(
                "{} {name:?} is forbidden: {message}",
                rt.qualified_plural()
            ))
        };
        for quota in quotas {
            let quota_name = quota["metadata"]["name"].as_str().unwrap_or("").to_owned();
            let scopes = strings(&quota["spec"]["scopes"]);
            let hard: Vec<String> = quota["spec"]["hard"]
                .as_object()
                .map(|h| h.keys().cloned().collect())
                .unwrap_or_default();
            let delta: BTreeMap<String, Milli> = hard
                .iter()
                .filter_map(|r| {
                    Some((
                        r.clone(),
                        object_usage(rt.group, rt.plural, object, r, &scopes)?,
                    ))
                })
                .filter(|(_, m)| m.0 > 0)
                .collect();
            if rt.group.is_empty() && rt.plural == "pods" && delta.contains_key("pods") {
                let names: Vec<&str> = hard.iter().map(String::as_str).collect();
                let missing = missing_pod_resources(object, &names);
                if !missing.is_empty() {
                    return Err(forbidden(format!(
                        "failed quota: {quota_name}: must specify {}",
                        missing.join(",")
                    )));
                }
            }
            if delta.is_empty() {
                continue;
            }
            let charge = |current: &Value| -> Result<Value, ApiError> {
                let mut next = current.clone();
                let mut requested = BTreeMap::new();
                let mut used_then = BTreeMap::new();
                let mut limited = BTreeMap::new();
                // Until the controller has counted, nothing can be charged (upstream refuses too).
                let unknown: Vec<&str> = delta
                    .keys()
                    .filter(|r| current["status"]["used"][r.as_str()].is_null())
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    return Err(forbidden(format!(
                        "status unknown for quota: {quota_name}, resources: {}",
                        unknown.join(",")
                    )));
                }
                for (resource, add) in &delta {
                    let Some((limit, format)) = quantity(&current["spec"]["hard"][resource]) else {
                        continue;
                    };
                    let used =
                        quantity(&current["status"]["used"][resource]).map_or(Milli(0), |(m, _)| m);
                    let total = Milli(used.0 + add.0);
                    if total > limit {
                        requested.insert(resource.clone(), format_quantity(*add, format));
                        used_then.insert(resource.clone(), format_quantity(used, format));
                        limited.insert(resource.clone(), format_quantity(limit, format));
                    } else {
                        next["status"]["used"][resource] = json!(format_quantity(total, format));
                    }
                }
                if !requested.is_empty() {
                    return Err(forbidden(format!(
                        "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                        pretty(&requested),
                        pretty(&used_then),
                        pretty(&limited)
                    )));
                }
                Ok(next)
            };
            match self
                .guaranteed_update(
                    quotas_rt,
                    Some(ns),
                    &quota_name,
                    Some("status"),
                    false,
                    None,
                    FieldValidation::Ignore,
                    Some("kube-apiserver"),
                    charge,
                )
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
