//! The LimitRanger admission plugin (upstream's `plugin/pkg/admission/limitranger`): a new
//! pod's containers and init containers get the `default` limits and `defaultRequest`
//! requests of its namespace's LimitRanges (Container items) where they set none, recorded
//! in the `kubernetes.io/limit-ranger` annotation; then the pod is held to the min, max and
//! maxLimitRequestRatio of Container and Pod items, and a new claim to the min and max of
//! PersistentVolumeClaim items — refused with 403 and upstream's messages.

use std::collections::BTreeMap;

use rkube_api::ApiError;
use rkube_api::quota::{Format, Milli, format_quantity, parse_quantity};
use rkube_api::registry::ResourceType;
use serde_json::{Map, Value, json};

use crate::admission::Informers;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// A quantity as upstream's `Quantity.String()` writes it, with its value.
#[derive(Clone, Debug)]
struct Amount {
    milli: Milli,
    text: String,
}

fn amount(value: &Value) -> Option<Amount> {
    let (milli, format) = match value {
        Value::String(s) => parse_quantity(s)?,
        Value::Number(n) => (Milli(i128::from(n.as_i64()?) * 1000), Format::Decimal),
        _ => return None,
    };
    Some(Amount {
        milli,
        text: format_quantity(milli, format),
    })
}

fn resource_list(value: &Value) -> BTreeMap<String, Amount> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), amount(v)?)))
        .collect()
}

/// The items of `range` of one type.
fn items<'a>(range: &'a Value, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    range["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |item| item["type"] == ty)
}

/// Sets each missing default of one LimitRange on every container, as upstream's
/// `mergePodResourceRequirements` does, and records what was set.
fn default_from(pod: &mut Value, range: &Value) {
    let mut limits = Map::new();
    let mut requests = Map::new();
    for item in items(range, "Container") {
        for (k, v) in item["default"].as_object().into_iter().flatten() {
            limits.insert(k.clone(), v.clone());
        }
        for (k, v) in item["defaultRequest"].as_object().into_iter().flatten() {
            requests.insert(k.clone(), v.clone());
        }
    }
    let mut notes = Vec::new();
    for (key, label) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(containers) = pod
            .get_mut("spec")
            .and_then(|spec| spec.get_mut(key))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for container in containers.iter_mut().filter(|c| c.is_object()) {
            let name = container["name"].as_str().unwrap_or("").to_owned();
            if !container["resources"].is_object() {
                container["resources"] = json!({});
            }
            let resources = &mut container["resources"];
            let mut set = |which: &str, defaults: &Map<String, Value>| {
                if !resources[which].is_object() {
                    resources[which] = json!({});
                }
                let mut names = Vec::new();
                if let Some(list) = resources[which].as_object_mut() {
                    for (k, v) in defaults {
                        if !list.contains_key(k) {
                            list.insert(k.clone(), v.clone());
                            names.push(k.clone());
                        }
                    }
                }
                names.sort();
                names
            };
            let set_limits = set("limits", &limits);
            let set_requests = set("requests", &requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {label} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!(
                    "{} limit for {label} {name}",
                    set_limits.join(", ")
                ));
            }
        }
    }
    if !notes.is_empty() {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = json!({});
        }
        pod["metadata"]["annotations"][ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// Applies the defaults of every LimitRange in turn.
pub(crate) fn default_pod(pod: &mut Value, ranges: &[Value]) {
    for range in ranges {
        default_from(pod, range);
    }
}

fn min_constraint(
    ty: &str,
    name: &str,
    enforced: &Amount,
    request: &BTreeMap<String, Amount>,
    limit: &BTreeMap<String, Amount>,
) -> Option<String> {
    let e = &enforced.text;
    let Some(req) = request.get(name) else {
        return Some(format!(
            "minimum {name} usage per {ty} is {e}.  No request is specified."
        ));
    };
    if req.milli < enforced.milli {
        return Some(format!(
            "minimum {name} usage per {ty} is {e}, but request is {}.",
            req.text
        ));
    }
    match limit.get(name) {
        Some(lim) if lim.milli < enforced.milli => Some(format!(
            "minimum {name} usage per {ty} is {e}, but limit is {}.",
            lim.text
        )),
        _ => None,
    }
}

fn max_constraint(
    ty: &str,
    name: &str,
    enforced: &Amount,
    request: &BTreeMap<String, Amount>,
    limit: &BTreeMap<String, Amount>,
) -> Option<String> {
    let e = &enforced.text;
    let Some(lim) = limit.get(name) else {
        return Some(format!(
            "maximum {name} usage per {ty} is {e}.  No limit is specified."
        ));
    };
    if lim.milli > enforced.milli {
        return Some(format!(
            "maximum {name} usage per {ty} is {e}, but limit is {}.",
            lim.text
        ));
    }
    match request.get(name) {
        Some(req) if req.milli > enforced.milli => Some(format!(
            "maximum {name} usage per {ty} is {e}, but request is {}.",
            req.text
        )),
        _ => None,
    }
}

/// For claims: the max against what was requested (a claim's limits are not user input).
fn max_request_constraint(
    ty: &str,
    name: &str,
    enforced: &Amount,
    request: &BTreeMap<String, Amount>,
) -> Option<String> {
    let e = &enforced.text;
    match request.get(name) {
        None => Some(format!(
            "maximum {name} usage per {ty} is {e}.  No request is specified."
        )),
        Some(req) if req.milli > enforced.milli => Some(format!(
            "maximum {name} usage per {ty} is {e}, but request is {}.",
            req.text
        )),
        Some(_) => None,
    }
}

fn ratio_constraint(
    ty: &str,
    name: &str,
    enforced: &Amount,
    request: &BTreeMap<String, Amount>,
    limit: &BTreeMap<String, Amount>,
) -> Option<String> {
    let e = &enforced.text;
    let Some(req) = request.get(name).filter(|r| r.milli.0 != 0) else {
        return Some(format!(
            "{name} max limit to request ratio per {ty} is {e}, but no request is specified or request is 0."
        ));
    };
    let Some(lim) = limit.get(name).filter(|l| l.milli.0 != 0) else {
        return Some(format!(
            "{name} max limit to request ratio per {ty} is {e}, but no limit is specified or limit is 0."
        ));
    };
    let ratio = lim.milli.0 as f64 / req.milli.0 as f64;
    (ratio * 1000.0 > enforced.milli.0 as f64).then(|| {
        format!(
            "{name} max limit to request ratio per {ty} is {e}, but provided ratio is {ratio:.6}."
        )
    })
}

/// Min, max and ratio of one item against a request and limit list.
fn check_item(
    ty: &str,
    item: &Value,
    request: &BTreeMap<String, Amount>,
    limit: &BTreeMap<String, Amount>,
    errors: &mut Vec<String>,
) {
    for (name, enforced) in resource_list(&item["min"]) {
        errors.extend(min_constraint(ty, &name, &enforced, request, limit));
    }
    for (name, enforced) in resource_list(&item["max"]) {
        errors.extend(max_constraint(ty, &name, &enforced, request, limit));
    }
    for (name, enforced) in resource_list(&item["maxLimitRequestRatio"]) {
        errors.extend(ratio_constraint(ty, &name, &enforced, request, limit));
    }
}

/// Upstream's pod totals: each resource summed over the containers (only when every
/// container names it; cpu in thousandths, others in whole units, written as decimal), then
/// raised to any init container's larger amount.
fn pod_totals(pod: &Value, which: &str) -> BTreeMap<String, Amount> {
    let containers: Vec<BTreeMap<String, Amount>> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| resource_list(&c["resources"][which]))
        .collect();
    let mut totals = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> =
        containers.iter().flat_map(|c| c.keys()).collect();
    for name in names {
        let mut total: i128 = 0;
        let mut everywhere = true;
        for list in &containers {
            match list.get(name) {
                Some(a) if name == "cpu" => total += a.milli.0,
                // Whole units, rounded up as Quantity.Value() does.
                Some(a) => total += (a.milli.0 + 999).div_euclid(1000) * 1000,
                None => everywhere = false,
            }
        }
        if everywhere {
            let milli = Milli(total);
            totals.insert(
                name.clone(),
                Amount {
                    milli,
                    text: format_quantity(milli, Format::Decimal),
                },
            );
        }
    }
    for init in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (name, value) in resource_list(&init["resources"][which]) {
            match totals.get(&name) {
                Some(current) if current.milli >= value.milli => {}
                _ => {
                    totals.insert(name, value);
                }
            }
        }
    }
    totals
}

/// Upstream's aggregate error text: one message, or `[a, b]` without repeats.
fn aggregate(errors: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// What one LimitRange refuses about a pod.
pub(crate) fn check_pod(pod: &Value, range: &Value) -> Option<String> {
    let mut errors = Vec::new();
    for item in range["spec"]["limits"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("Container") => {
                for key in ["containers", "initContainers"] {
                    for c in pod["spec"][key].as_array().into_iter().flatten() {
                        let request = resource_list(&c["resources"]["requests"]);
                        let limit = resource_list(&c["resources"]["limits"]);
                        check_item("Container", item, &request, &limit, &mut errors);
                    }
                }
            }
            Some("Pod") => {
                let request = pod_totals(pod, "requests");
                let limit = pod_totals(pod, "limits");
                check_item("Pod", item, &request, &limit, &mut errors);
            }
            _ => {}
        }
    }
    aggregate(errors)
}

/// What one LimitRange refuses about a claim.
pub(crate) fn check_claim(claim: &Value, range: &Value) -> Option<String> {
    let request = resource_list(&claim["spec"]["resources"]["requests"]);
    let mut errors = Vec::new();
    for item in items(range, "PersistentVolumeClaim") {
        for (name, enforced) in resource_list(&item["min"]) {
            errors.extend(min_constraint(
                "PersistentVolumeClaim",
                &name,
                &enforced,
                &request,
                &BTreeMap::new(),
            ));
        }
        for (name, enforced) in resource_list(&item["max"]) {
            errors.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &name,
                &enforced,
                &request,
            ));
        }
    }
    aggregate(errors)
}

fn applies(rt: &ResourceType) -> bool {
    rt.group.is_empty() && matches!(rt.kind, "Pod" | "PersistentVolumeClaim")
}

/// Whether an update goes through LimitRanger, as upstream's `SupportsAttributes` decides: a
/// claim's update, and a pod's resize (`pods/resize`); not a pod's own update (its containers
/// cannot change there) nor any other subresource.
pub(crate) fn on_update(rt: &ResourceType, subresource: Option<&str>) -> bool {
    let pod = rt.group.is_empty() && rt.kind == "Pod";
    match subresource {
        Some("resize") => pod,
        Some(_) => false,
        None => applies(rt) && !pod,
    }
}

async fn limit_ranges(cluster: &impl Informers, ns: &str) -> Result<Vec<Value>, ApiError> {
    let ranges = crate::admission::kind("", "LimitRange")?;
    cluster.list(ranges, Some(ns)).await
}

/// The mutating half, on a create: a pod's container defaults.
pub(crate) async fn defaults(
    cluster: &impl Informers,
    rt: &ResourceType,
    ns: Option<&str>,
    object: &mut Value,
    scheme_defaulted: bool,
) -> Result<(), ApiError> {
    let (Some(ns), true) = (ns, rt.group.is_empty() && rt.kind == "Pod") else {
        return Ok(());
    };
    let ranges = limit_ranges(cluster, ns).await?;
    if ranges.is_empty() {
        return Ok(());
    }
    if !scheme_defaulted {
        // Upstream defaults requests from limits while decoding, before admission.
        rkube_api::defaults::scheme_defaults(rt.group, rt.kind, object);
    }
    default_pod(object, &ranges);
    Ok(())
}

/// The mutating half, on an update LimitRanger sees ([`on_update`]): a resized pod's
/// container defaults. Returns whether anything changed.
pub(crate) async fn update_defaults(
    cluster: &impl Informers,
    rt: &ResourceType,
    ns: Option<&str>,
    object: &mut Value,
) -> Result<bool, ApiError> {
    if !(rt.group.is_empty() && rt.kind == "Pod") {
        return Ok(false);
    }
    let before = object.clone();
    defaults(cluster, rt, ns, object, true).await?;
    Ok(*object != before)
}

/// The validating half, on a create or an update LimitRanger sees: 403 with the first
/// LimitRange's objections.
pub(crate) async fn validate(
    cluster: &impl Informers,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    object: &Value,
) -> Result<(), ApiError> {
    let (Some(ns), true) = (ns, applies(rt)) else {
        return Ok(());
    };
    for range in limit_ranges(cluster, ns).await? {
        let refusal = if rt.kind == "Pod" {
            check_pod(object, &range)
        } else {
            check_claim(object, &range)
        };
        if let Some(message) = refusal {
            return Err(ApiError::Forbidden(format!(
                "{} {name:?} is forbidden: {message}",
                rt.qualified_plural()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"spec": {"limits": limits}})
    }

    #[test]
    fn defaults_fill_what_containers_leave_out_and_are_recorded() {
        let r = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}],
        }});
        default_pod(&mut pod, &[r]);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "1", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: memory request for container app; memory limit for container app; \
             cpu, memory request for init container init; cpu, memory limit for init container init"
        );
    }

    #[test]
    fn container_pod_and_claim_limits_are_refused_in_upstreams_words() {
        let r = range(json!([
            {"type": "Container", "max": {"cpu": "800m"}, "min": {"memory": "100Mi"}},
        ]));
        let pod = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"cpu": "1500m", "memory": "1Gi"}}}]}});
        assert_eq!(
            check_pod(&pod, &r).unwrap(),
            "maximum cpu usage per Container is 800m, but limit is 1500m."
        );
        let bare = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            check_pod(&bare, &r).unwrap(),
            "[minimum memory usage per Container is 100Mi.  No request is specified., \
             maximum cpu usage per Container is 800m.  No limit is specified.]"
        );
        let ratio = range(json!([{"type": "Container", "maxLimitRequestRatio": {"memory": "2"}}]));
        let pod = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"memory": "1Gi"}, "requests": {"memory": "256Mi"}}}]}});
        assert_eq!(
            check_pod(&pod, &ratio).unwrap(),
            "memory max limit to request ratio per Container is 2, but provided ratio is 4.000000."
        );
        let per_pod = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"memory": "1Gi"}}},
        ]}});
        assert_eq!(
            check_pod(&pod, &per_pod).unwrap(),
            "maximum memory usage per Pod is 1Gi, but limit is 2147483648."
        );
        let claims = range(
            json!([{"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}, "min": {"storage": "1Gi"}}]),
        );
        let claim = json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(
            check_claim(&claim, &claims).unwrap(),
            "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi."
        );
        let small = json!({"spec": {"resources": {"requests": {"storage": "500Mi"}}}});
        assert_eq!(
            check_claim(&small, &claims).unwrap(),
            "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi."
        );
    }
}
