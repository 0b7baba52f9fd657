//! HorizontalPodAutoscaler between `autoscaling/v1` and the stored `autoscaling/v2`, by
//! upstream's rules (pkg/apis/autoscaling/v1/conversion.go): v1 has only a CPU utilization
//! target, so every other metric, the current metrics, the conditions and the scaling
//! behaviour travel in annotations, in the shape of v1's own (v2beta1-like) metric types, and
//! come back from them when a v1 object is written.

use serde_json::{Map, Value, json};

use crate::ApiError;

/// Metrics other than the CPU utilization target.
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// The current value of every metric.
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// The status conditions.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// The scaling behaviour.
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// The CPU utilization a v1 object without any metric targets.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

const ROUND_TRIP_ANNOTATIONS: [&str; 4] = [
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

/// Copies the members of `from` named in `names` that are present into `to`.
fn copy(to: &mut Map<String, Value>, from: &Value, names: &[&str]) {
    for name in names {
        if let Some(v) = from.get(*name).filter(|v| !v.is_null()) {
            to.insert((*name).to_owned(), v.clone());
        }
    }
}

fn insert_some(to: &mut Map<String, Value>, name: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        to.insert(name.to_owned(), v.clone());
    }
}

/// A quantity v1 keeps as a plain (not optional) value: the zero quantity when absent.
fn quantity_or_zero(value: Option<&Value>) -> Value {
    value
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or(json!("0"))
}

fn is_cpu_resource(metric: &Value) -> bool {
    metric["type"] == "Resource" && metric["resource"]["name"] == "cpu"
}

fn reference(r: &Value) -> Value {
    let mut out = Map::new();
    copy(&mut out, r, &["kind", "name", "apiVersion"]);
    Value::Object(out)
}

/// A v2 metric target in v1's metric spec shape.
fn metric_spec_to_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    copy(&mut out, metric, &["type"]);
    if let Some(source) = metric.get("resource").filter(|v| v.is_object()) {
        let mut r = Map::new();
        copy(&mut r, source, &["name"]);
        insert_some(
            &mut r,
            "targetAverageUtilization",
            source["target"].get("averageUtilization"),
        );
        insert_some(
            &mut r,
            "targetAverageValue",
            source["target"].get("averageValue"),
        );
        out.insert("resource".into(), Value::Object(r));
    }
    if let Some(source) = metric.get("containerResource").filter(|v| v.is_object()) {
        let mut r = Map::new();
        copy(&mut r, source, &["name", "container"]);
        insert_some(
            &mut r,
            "targetAverageUtilization",
            source["target"].get("averageUtilization"),
        );
        insert_some(
            &mut r,
            "targetAverageValue",
            source["target"].get("averageValue"),
        );
        out.insert("containerResource".into(), Value::Object(r));
    }
    if let Some(source) = metric.get("object").filter(|v| v.is_object()) {
        let mut o = Map::new();
        o.insert("target".into(), reference(&source["describedObject"]));
        insert_some(&mut o, "metricName", source["metric"].get("name"));
        o.insert(
            "targetValue".into(),
            quantity_or_zero(source["target"].get("value")),
        );
        insert_some(&mut o, "selector", source["metric"].get("selector"));
        insert_some(&mut o, "averageValue", source["target"].get("averageValue"));
        out.insert("object".into(), Value::Object(o));
    }
    if let Some(source) = metric.get("pods").filter(|v| v.is_object()) {
        let mut p = Map::new();
        insert_some(&mut p, "metricName", source["metric"].get("name"));
        p.insert(
            "targetAverageValue".into(),
            quantity_or_zero(source["target"].get("averageValue")),
        );
        insert_some(&mut p, "selector", source["metric"].get("selector"));
        out.insert("pods".into(), Value::Object(p));
    }
    if let Some(source) = metric.get("external").filter(|v| v.is_object()) {
        let mut e = Map::new();
        insert_some(&mut e, "metricName", source["metric"].get("name"));
        insert_some(&mut e, "metricSelector", source["metric"].get("selector"));
        insert_some(&mut e, "targetValue", source["target"].get("value"));
        insert_some(
            &mut e,
            "targetAverageValue",
            source["target"].get("averageValue"),
        );
        out.insert("external".into(), Value::Object(e));
    }
    Value::Object(out)
}

/// A v1 metric spec (from the annotation) as a v2 metric target.
fn metric_spec_from_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    copy(&mut out, metric, &["type"]);
    let resource_target = |source: &Value| {
        let utilization = source
            .get("targetAverageUtilization")
            .filter(|v| !v.is_null());
        let mut t = Map::new();
        t.insert(
            "type".into(),
            json!(if utilization.is_some() {
                "Utilization"
            } else {
                "AverageValue"
            }),
        );
        insert_some(&mut t, "averageValue", source.get("targetAverageValue"));
        insert_some(&mut t, "averageUtilization", utilization);
        Value::Object(t)
    };
    let identifier = |source: &Value, selector: &str| {
        let mut m = Map::new();
        m.insert(
            "name".into(),
            source.get("metricName").cloned().unwrap_or(json!("")),
        );
        insert_some(&mut m, "selector", source.get(selector));
        Value::Object(m)
    };
    if let Some(source) = metric.get("resource").filter(|v| v.is_object()) {
        let mut r = Map::new();
        copy(&mut r, source, &["name"]);
        r.insert("target".into(), resource_target(source));
        out.insert("resource".into(), Value::Object(r));
    }
    if let Some(source) = metric.get("containerResource").filter(|v| v.is_object()) {
        let mut r = Map::new();
        copy(&mut r, source, &["name", "container"]);
        r.insert("target".into(), resource_target(source));
        out.insert("containerResource".into(), Value::Object(r));
    }
    if let Some(source) = metric.get("object").filter(|v| v.is_object()) {
        let average = source.get("averageValue").filter(|v| !v.is_null());
        let mut t = Map::new();
        t.insert(
            "type".into(),
            json!(if average.is_some() {
                "AverageValue"
            } else {
                "Value"
            }),
        );
        t.insert("value".into(), quantity_or_zero(source.get("targetValue")));
        insert_some(&mut t, "averageValue", average);
        out.insert(
            "object".into(),
            json!({
                "describedObject": reference(&source["target"]),
                "metric": identifier(source, "selector"),
                "target": t,
            }),
        );
    }
    if let Some(source) = metric.get("pods").filter(|v| v.is_object()) {
        out.insert(
            "pods".into(),
            json!({
                "metric": identifier(source, "selector"),
                "target": {
                    "type": "AverageValue",
                    "averageValue": quantity_or_zero(source.get("targetAverageValue")),
                },
            }),
        );
    }
    if let Some(source) = metric.get("external").filter(|v| v.is_object()) {
        let value = source.get("targetValue").filter(|v| !v.is_null());
        let mut t = Map::new();
        t.insert(
            "type".into(),
            json!(if value.is_some() {
                "Value"
            } else {
                "AverageValue"
            }),
        );
        insert_some(&mut t, "value", value);
        insert_some(&mut t, "averageValue", source.get("targetAverageValue"));
        out.insert(
            "external".into(),
            json!({"metric": identifier(source, "metricSelector"), "target": t}),
        );
    }
    Value::Object(out)
}

/// A v2 metric status in v1's metric status shape.
fn metric_status_to_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    copy(&mut out, metric, &["type"]);
    for (member, extra) in [("resource", None), ("containerResource", Some("container"))] {
        if let Some(source) = metric.get(member).filter(|v| v.is_object()) {
            let mut r = Map::new();
            copy(&mut r, source, &["name"]);
            if let Some(extra) = extra {
                copy(&mut r, source, &[extra]);
            }
            insert_some(
                &mut r,
                "currentAverageUtilization",
                source["current"].get("averageUtilization"),
            );
            r.insert(
                "currentAverageValue".into(),
                quantity_or_zero(source["current"].get("averageValue")),
            );
            out.insert(member.into(), Value::Object(r));
        }
    }
    if let Some(source) = metric.get("object").filter(|v| v.is_object()) {
        let mut o = Map::new();
        o.insert("target".into(), reference(&source["describedObject"]));
        insert_some(&mut o, "metricName", source["metric"].get("name"));
        o.insert(
            "currentValue".into(),
            quantity_or_zero(source["current"].get("value")),
        );
        insert_some(&mut o, "selector", source["metric"].get("selector"));
        insert_some(
            &mut o,
            "averageValue",
            source["current"].get("averageValue"),
        );
        out.insert("object".into(), Value::Object(o));
    }
    if let Some(source) = metric.get("pods").filter(|v| v.is_object()) {
        let mut p = Map::new();
        insert_some(&mut p, "metricName", source["metric"].get("name"));
        p.insert(
            "currentAverageValue".into(),
            quantity_or_zero(source["current"].get("averageValue")),
        );
        insert_some(&mut p, "selector", source["metric"].get("selector"));
        out.insert("pods".into(), Value::Object(p));
    }
    if let Some(source) = metric.get("external").filter(|v| v.is_object()) {
        let mut e = Map::new();
        insert_some(&mut e, "metricName", source["metric"].get("name"));
        insert_some(&mut e, "metricSelector", source["metric"].get("selector"));
        e.insert(
            "currentValue".into(),
            quantity_or_zero(source["current"].get("value")),
        );
        insert_some(
            &mut e,
            "currentAverageValue",
            source["current"].get("averageValue"),
        );
        out.insert("external".into(), Value::Object(e));
    }
    Value::Object(out)
}

/// A v1 metric status (from the annotation) as a v2 metric status.
fn metric_status_from_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    copy(&mut out, metric, &["type"]);
    let identifier = |source: &Value, selector: &str| {
        let mut m = Map::new();
        m.insert(
            "name".into(),
            source.get("metricName").cloned().unwrap_or(json!("")),
        );
        insert_some(&mut m, "selector", source.get(selector));
        Value::Object(m)
    };
    for (member, extra) in [("resource", None), ("containerResource", Some("container"))] {
        if let Some(source) = metric.get(member).filter(|v| v.is_object()) {
            let mut r = Map::new();
            copy(&mut r, source, &["name"]);
            if let Some(extra) = extra {
                copy(&mut r, source, &[extra]);
            }
            let mut c = Map::new();
            c.insert(
                "averageValue".into(),
                quantity_or_zero(source.get("currentAverageValue")),
            );
            insert_some(
                &mut c,
                "averageUtilization",
                source.get("currentAverageUtilization"),
            );
            r.insert("current".into(), Value::Object(c));
            out.insert(member.into(), Value::Object(r));
        }
    }
    if let Some(source) = metric.get("object").filter(|v| v.is_object()) {
        let mut c = Map::new();
        c.insert("value".into(), quantity_or_zero(source.get("currentValue")));
        insert_some(&mut c, "averageValue", source.get("averageValue"));
        out.insert(
            "object".into(),
            json!({
                "describedObject": reference(&source["target"]),
                "metric": identifier(source, "selector"),
                "current": c,
            }),
        );
    }
    if let Some(source) = metric.get("pods").filter(|v| v.is_object()) {
        out.insert(
            "pods".into(),
            json!({
                "metric": identifier(source, "selector"),
                "current": {"averageValue": quantity_or_zero(source.get("currentAverageValue"))},
            }),
        );
    }
    if let Some(source) = metric.get("external").filter(|v| v.is_object()) {
        let mut c = Map::new();
        c.insert("value".into(), quantity_or_zero(source.get("currentValue")));
        insert_some(&mut c, "averageValue", source.get("currentAverageValue"));
        out.insert(
            "external".into(),
            json!({"metric": identifier(source, "metricSelector"), "current": c}),
        );
    }
    Value::Object(out)
}

fn annotations_mut(meta: &mut Map<String, Value>) -> &mut Map<String, Value> {
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta.insert("annotations".into(), json!({}));
    }
    match meta.get_mut("annotations") {
        Some(Value::Object(a)) => a,
        _ => unreachable!("annotations were just made an object"),
    }
}

fn encode(value: &Value) -> Value {
    json!(value.to_string())
}

fn decode(annotation: &str, text: &Value) -> Result<Value, ApiError> {
    let text = text.as_str().unwrap_or_default();
    serde_json::from_str(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "unable to convert the {annotation} annotation of an autoscaling/v1 \
             HorizontalPodAutoscaler: {e}"
        ))
    })
}

fn metadata(object: &Value) -> Map<String, Value> {
    object
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Drops the annotations v1 objects carry for v2 fields (upstream's
/// `DropRoundTripHorizontalPodAutoscalerAnnotations`): a v2 object never keeps them.
pub fn drop_round_trip_annotations(meta: &mut Map<String, Value>) {
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        for name in ROUND_TRIP_ANNOTATIONS {
            annotations.remove(name);
        }
    }
    drop_empty_annotations(meta);
}

/// No annotations left is no annotations at all, as the typed form writes them.
fn drop_empty_annotations(meta: &mut Map<String, Value>) {
    if meta
        .get("annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

/// A stored `autoscaling/v2` object as `autoscaling/v1`.
pub fn v2_to_v1(v2: Value) -> Result<Value, ApiError> {
    let mut meta = metadata(&v2);
    drop_round_trip_annotations(&mut meta);
    let spec = &v2["spec"];
    let empty = Vec::new();
    let metrics = spec["metrics"].as_array().unwrap_or(&empty);
    let mut out_spec = Map::new();
    out_spec.insert("scaleTargetRef".into(), reference(&spec["scaleTargetRef"]));
    copy(&mut out_spec, spec, &["minReplicas"]);
    out_spec.insert(
        "maxReplicas".into(),
        spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    );
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m)) {
        insert_some(
            &mut out_spec,
            "targetCPUUtilizationPercentage",
            cpu["resource"]["target"].get("averageUtilization"),
        );
    }
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu_resource(m)
                && m["resource"]["target"]
                    .get("averageUtilization")
                    .is_some_and(|u| !u.is_null()))
        })
        .map(metric_spec_to_v1)
        .collect();
    let status = v2.get("status").filter(|s| s.is_object());
    let current = status
        .and_then(|s| s["currentMetrics"].as_array())
        .filter(|c| !c.is_empty());
    let conditions = status
        .and_then(|s| s["conditions"].as_array())
        .filter(|c| !c.is_empty());
    if !others.is_empty() {
        annotations_mut(&mut meta).insert(
            METRIC_SPECS_ANNOTATION.into(),
            encode(&Value::Array(others)),
        );
    }
    if let Some(current) = current {
        let v1: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
        annotations_mut(&mut meta)
            .insert(METRIC_STATUSES_ANNOTATION.into(), encode(&Value::Array(v1)));
    }
    if let Some(conditions) = conditions {
        annotations_mut(&mut meta).insert(
            CONDITIONS_ANNOTATION.into(),
            encode(&Value::Array(conditions.clone())),
        );
    }
    if let Some(behavior) = spec.get("behavior").filter(|b| b.is_object()) {
        annotations_mut(&mut meta).insert(BEHAVIOR_ANNOTATION.into(), encode(behavior));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("autoscaling/v1"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    out.insert("metadata".into(), Value::Object(meta));
    out.insert("spec".into(), Value::Object(out_spec));
    if let Some(status) = status {
        let mut s = Map::new();
        copy(&mut s, status, &["observedGeneration", "lastScaleTime"]);
        s.insert(
            "currentReplicas".into(),
            status.get("currentReplicas").cloned().unwrap_or(json!(0)),
        );
        s.insert(
            "desiredReplicas".into(),
            status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
        );
        // The last CPU utilization reported, as upstream's loop keeps it.
        let cpu = current
            .into_iter()
            .flatten()
            .filter(|m| is_cpu_resource(m))
            .filter_map(|m| m["resource"]["current"].get("averageUtilization"))
            .rfind(|u| !u.is_null());
        insert_some(&mut s, "currentCPUUtilizationPercentage", cpu);
        out.insert("status".into(), Value::Object(s));
    }
    Ok(Value::Object(out))
}

/// An `autoscaling/v1` object (a request body) as the stored `autoscaling/v2`.
pub fn v1_to_v2(v1: Value) -> Result<Value, ApiError> {
    let mut meta = metadata(&v1);
    let mut taken = Map::new();
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        for name in ROUND_TRIP_ANNOTATIONS {
            if let Some(v) = annotations.remove(name) {
                taken.insert(name.to_owned(), v);
            }
        }
    }
    drop_empty_annotations(&mut meta);
    let spec = &v1["spec"];
    let mut out_spec = Map::new();
    out_spec.insert("scaleTargetRef".into(), reference(&spec["scaleTargetRef"]));
    copy(&mut out_spec, spec, &["minReplicas"]);
    out_spec.insert(
        "maxReplicas".into(),
        spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    );
    let cpu = |utilization: Value| {
        json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization}}})
    };
    let mut metrics: Vec<Value> = Vec::new();
    if let Some(utilization) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|v| !v.is_null())
    {
        metrics.push(cpu(utilization.clone()));
    }
    if let Some(text) = taken.get(METRIC_SPECS_ANNOTATION) {
        let others = decode(METRIC_SPECS_ANNOTATION, text)?;
        // The other metrics first, the CPU target (if any) last, as upstream orders them.
        let mut all: Vec<Value> = others
            .as_array()
            .map(|o| o.iter().map(metric_spec_from_v1).collect())
            .unwrap_or_default();
        all.append(&mut metrics);
        metrics = all;
    }
    if metrics.is_empty() {
        metrics.push(cpu(json!(DEFAULT_CPU_UTILIZATION)));
    }
    out_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(text) = taken.get(BEHAVIOR_ANNOTATION) {
        out_spec.insert("behavior".into(), decode(BEHAVIOR_ANNOTATION, text)?);
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("autoscaling/v2"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    out.insert("metadata".into(), Value::Object(meta));
    out.insert("spec".into(), Value::Object(out_spec));
    let status = v1.get("status").filter(|s| s.is_object());
    let mut s = Map::new();
    if let Some(status) = status {
        copy(
            &mut s,
            status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        if let Some(utilization) = status
            .get("currentCPUUtilizationPercentage")
            .filter(|v| !v.is_null())
        {
            s.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": utilization}}}]),
            );
        }
    }
    if let Some(text) = taken.get(METRIC_STATUSES_ANNOTATION) {
        // The annotation has more than the CPU utilization: it wins.
        let current = decode(METRIC_STATUSES_ANNOTATION, text)?;
        let current: Vec<Value> = current
            .as_array()
            .map(|c| c.iter().map(metric_status_from_v1).collect())
            .unwrap_or_default();
        s.insert("currentMetrics".into(), Value::Array(current));
    }
    if let Some(text) = taken.get(CONDITIONS_ANNOTATION) {
        s.insert("conditions".into(), decode(CONDITIONS_ANNOTATION, text)?);
    }
    if status.is_some() || !s.is_empty() {
        s.entry("desiredReplicas").or_insert(json!(0));
        out.insert("status".into(), Value::Object(s));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"a": "b"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 60}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 70, "averageValue": "200m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True",
                    "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "R"}],
            },
        })
    }

    #[test]
    fn a_v2_object_keeps_in_v1_what_v1_cannot_say_in_annotations() {
        let v1 = v2_to_v1(v2()).expect("converts");
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["currentReplicas"], 2);
        let annotations = &v1["metadata"]["annotations"];
        assert_eq!(annotations["a"], "b");
        let others: Value =
            serde_json::from_str(annotations[METRIC_SPECS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(
            others,
            json!([
                {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}},
                {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}},
            ])
        );
        let current: Value =
            serde_json::from_str(annotations[METRIC_STATUSES_ANNOTATION].as_str().unwrap())
                .unwrap();
        assert_eq!(
            current,
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "currentAverageUtilization": 70, "currentAverageValue": "200m"}}])
        );
        assert!(annotations[CONDITIONS_ANNOTATION].is_string());
        assert!(annotations[BEHAVIOR_ANNOTATION].is_string());
    }

    #[test]
    fn a_v1_object_with_its_annotations_comes_back_as_the_same_v2_object() {
        let back = v1_to_v2(v2_to_v1(v2()).unwrap()).unwrap();
        let mut want = v2();
        // Upstream puts the CPU target after the metrics kept in the annotation.
        assert_eq!(back["spec"]["metrics"], want["spec"]["metrics"]);
        assert_eq!(back["spec"]["behavior"], want["spec"]["behavior"]);
        assert_eq!(back["status"], want["status"]);
        assert_eq!(back["metadata"], want["metadata"]);
        want["spec"] = back["spec"].clone();
        assert_eq!(back, want);
    }

    #[test]
    fn a_plain_v1_object_targets_its_cpu_percentage_or_eighty() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                     "targetCPUUtilizationPercentage": 50}});
        let v2 = v1_to_v2(v1.clone()).unwrap();
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert!(v2.get("status").is_none());
        let mut bare = v1;
        bare["spec"]
            .as_object_mut()
            .unwrap()
            .remove("targetCPUUtilizationPercentage");
        let v2 = v1_to_v2(bare).unwrap();
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            v2_to_v1(v2).unwrap()["spec"]["targetCPUUtilizationPercentage"],
            80
        );
    }

    #[test]
    fn a_v2_object_drops_the_annotations_of_v1_objects() {
        let mut hpa = v2();
        hpa["metadata"]["annotations"][METRIC_SPECS_ANNOTATION] = json!("[]");
        crate::defaults::apply_defaults("autoscaling", "HorizontalPodAutoscaler", &mut hpa);
        assert_eq!(hpa["metadata"]["annotations"], json!({"a": "b"}));
    }

    #[test]
    fn a_malformed_annotation_is_refused() {
        let v1 = json!({"metadata": {"name": "web",
            "annotations": {METRIC_SPECS_ANNOTATION: "{"}}, "spec": {"maxReplicas": 1}});
        assert!(matches!(v1_to_v2(v1), Err(ApiError::BadRequest(_))));
    }
}
