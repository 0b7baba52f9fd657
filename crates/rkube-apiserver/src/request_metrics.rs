//! Request metrics in upstream's names, on `/metrics`: `apiserver_request_total` (by verb,
//! dry run, group, version, resource, subresource, scope, component and code) and
//! `apiserver_request_duration_seconds` (a histogram with upstream's buckets, the same labels
//! but code; long-running requests — watches and connections — are counted, not timed),
//! `apiserver_longrunning_requests` (the watches open now), `apiserver_storage_objects`
//! (objects per resource, from the watch cache's counts) and
//! `apiserver_request_terminations_total` (requests a component ended before they were
//! served: the aggregator's proxy refusing a request for an extension API server).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use crate::request::RequestInfo;

/// Upstream's buckets for `apiserver_request_duration_seconds`.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    verb: String,
    dry_run: bool,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
}

#[derive(Debug, Default)]
struct Series {
    by_code: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

static SERIES: LazyLock<Mutex<BTreeMap<Labels, Series>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Open long-running requests by their labels (those of [`Labels`], dry run always off).
static LONG_RUNNING: LazyLock<Mutex<BTreeMap<Labels, i64>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// A request ended early: its labels, the component that ended it and the code.
type Termination = (Labels, &'static str, u16);

/// Requests ended early, counted.
static TERMINATIONS: LazyLock<Mutex<BTreeMap<Termination, u64>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// One open watch, counted in `apiserver_longrunning_requests` until dropped (with the
/// response body that streams it).
#[derive(Debug)]
pub struct LongRunning(Labels);

impl LongRunning {
    /// Counts a watch that starts now.
    pub fn watch(info: &RequestInfo) -> Self {
        let labels = labels(info, false, false);
        if let Ok(mut open) = LONG_RUNNING.lock() {
            *open.entry(labels.clone()).or_default() += 1;
        }
        Self(labels)
    }
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        if let Ok(mut open) = LONG_RUNNING.lock()
            && let Some(n) = open.get_mut(&self.0)
        {
            *n -= 1;
        }
    }
}

/// Upstream's verb label: the HTTP-ish verb, APPLY for server-side apply, CONNECT for
/// exec/attach/port-forward/proxy.
fn verb(info: &RequestInfo, apply: bool) -> String {
    if matches!(
        info.subresource.as_deref(),
        Some("exec" | "attach" | "portforward" | "proxy")
    ) {
        return "CONNECT".to_owned();
    }
    match info.verb.as_str() {
        "create" => "POST".to_owned(),
        "update" => "PUT".to_owned(),
        "patch" if apply => "APPLY".to_owned(),
        other => other.to_ascii_uppercase(),
    }
}

fn scope(info: &RequestInfo) -> &'static str {
    if !info.is_resource {
        ""
    } else if info.name.is_some() {
        "resource"
    } else if info.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    }
}

fn labels(info: &RequestInfo, apply: bool, dry_run: bool) -> Labels {
    Labels {
        verb: verb(info, apply),
        dry_run,
        group: info.group.clone(),
        version: info.version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone().unwrap_or_default(),
        scope: scope(info),
    }
}

/// Records one answered request.
pub fn record(info: &RequestInfo, apply: bool, dry_run: bool, code: u16, took: Duration) {
    let labels = labels(info, apply, dry_run);
    let long_running = labels.verb == "WATCH"
        || labels.verb == "CONNECT"
        || (labels.subresource == "log" && code == 200);
    let Ok(mut series) = SERIES.lock() else {
        return;
    };
    let s = series.entry(labels).or_default();
    *s.by_code.entry(code).or_default() += 1;
    if !long_running {
        let seconds = took.as_secs_f64();
        for (bucket, bound) in s.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        s.sum += seconds;
        s.count += 1;
    }
}

/// Records a request `component` ended with `code` before it was served, as upstream's
/// `RecordRequestTermination` does: a non-resource request is labelled by its path (in the
/// subresource label), a delete of a collection is a DELETE.
pub fn record_termination(
    info: &RequestInfo,
    path: &str,
    apply: bool,
    component: &'static str,
    code: u16,
) {
    let mut labels = labels(info, apply, false);
    if labels.verb == "DELETECOLLECTION" {
        labels.verb = "DELETE".to_owned();
    }
    if !info.is_resource {
        labels.group.clear();
        labels.version.clear();
        labels.resource.clear();
        labels.subresource = path.to_owned();
    }
    if let Ok(mut ended) = TERMINATIONS.lock() {
        *ended.entry((labels, component, code)).or_default() += 1;
    }
}

fn label_text(l: &Labels) -> String {
    format!(
        "component=\"apiserver\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
        if l.dry_run { "All" } else { "" },
        l.group,
        l.resource,
        l.scope,
        l.subresource,
        l.verb,
        l.version
    )
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    let Ok(series) = SERIES.lock() else {
        return String::new();
    };
    let mut out = String::new();
    out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n");
    for (l, s) in series.iter() {
        let labels = label_text(l);
        for (code, n) in &s.by_code {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",{labels}}} {n}"
            );
        }
    }
    out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE apiserver_request_duration_seconds histogram\n");
    for (l, s) in series.iter().filter(|(_, s)| s.count > 0) {
        let labels = label_text(l);
        for (bound, n) in BUCKETS.iter().zip(s.buckets) {
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(
            out,
            "apiserver_request_duration_seconds_sum{{{labels}}} {}",
            s.sum
        );
        let _ = writeln!(
            out,
            "apiserver_request_duration_seconds_count{{{labels}}} {}",
            s.count
        );
    }
    drop(series);
    if let Ok(ended) = TERMINATIONS.lock() {
        out.push_str("# HELP apiserver_request_terminations_total Number of requests which apiserver terminated in self-defense.\n# TYPE apiserver_request_terminations_total counter\n");
        for ((l, component, code), n) in ended.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_terminations_total{{code=\"{code}\",component=\"{component}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
                l.group, l.resource, l.scope, l.subresource, l.verb, l.version
            );
        }
    }
    if let Ok(open) = LONG_RUNNING.lock() {
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way.\n# TYPE apiserver_longrunning_requests gauge\n");
        for (l, n) in open.iter() {
            let _ = writeln!(
                out,
                "apiserver_longrunning_requests{{component=\"apiserver\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
                l.group, l.resource, l.scope, l.subresource, l.verb, l.version
            );
        }
    }
    out
}

/// `apiserver_storage_objects` (labelled `resource.group`, as upstream's) and
/// `apiserver_resource_objects` (group and resource apart) from `(group, plural, count)`.
pub fn render_object_counts(counts: &[(&str, &str, usize)]) -> String {
    let mut out = String::new();
    out.push_str("# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind.\n# TYPE apiserver_storage_objects gauge\n");
    for (group, plural, n) in counts {
        let resource = if group.is_empty() {
            (*plural).to_owned()
        } else {
            format!("{plural}.{group}")
        };
        let _ = writeln!(
            out,
            "apiserver_storage_objects{{resource=\"{resource}\"}} {n}"
        );
    }
    out.push_str("# HELP apiserver_resource_objects Number of stored objects at the time of last check split by kind.\n# TYPE apiserver_resource_objects gauge\n");
    for (group, plural, n) in counts {
        let _ = writeln!(
            out,
            "apiserver_resource_objects{{group=\"{group}\",resource=\"{plural}\"}} {n}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(verb: &str, resource: &str, ns: Option<&str>, name: Option<&str>) -> RequestInfo {
        RequestInfo {
            is_resource: true,
            verb: verb.to_owned(),
            prefix: "apis".to_owned(),
            group: "apps".to_owned(),
            version: "v1".to_owned(),
            namespace: ns.map(str::to_owned),
            resource: resource.to_owned(),
            name: name.map(str::to_owned),
            subresource: None,
            field_manager: String::new(),
        }
    }

    #[test]
    fn requests_are_counted_by_code_and_timed_in_upstreams_buckets() {
        let get = info("get", "rmtestdeployments", Some("default"), Some("web"));
        record(&get, false, false, 200, Duration::from_millis(30));
        record(&get, false, false, 404, Duration::from_millis(1));
        let apply = info("patch", "rmtestdeployments", Some("default"), Some("web"));
        record(&apply, true, true, 201, Duration::from_millis(3));
        let watch = info("watch", "rmtestdeployments", None, None);
        record(&watch, false, false, 200, Duration::from_secs(300));
        let text = render();
        let get_labels = "component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"rmtestdeployments\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"";
        assert!(text.contains(&format!(
            "apiserver_request_total{{code=\"200\",{get_labels}}} 1"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_total{{code=\"404\",{get_labels}}} 1"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{get_labels},le=\"0.005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_bucket{{{get_labels},le=\"0.05\"}} 2"
        )));
        assert!(text.contains(&format!(
            "apiserver_request_duration_seconds_count{{{get_labels}}} 2"
        )));
        assert!(text.contains("dry_run=\"All\",group=\"apps\",resource=\"rmtestdeployments\",scope=\"resource\",subresource=\"\",verb=\"APPLY\""));
        // Watches are counted, not timed.
        assert!(
            text.contains("scope=\"cluster\",subresource=\"\",verb=\"WATCH\",version=\"v1\"} 1")
        );
        assert!(!text.contains("apiserver_request_duration_seconds_count{component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"rmtestdeployments\",scope=\"cluster\""));
    }

    #[test]
    fn open_watches_are_a_gauge_that_falls_when_they_end() {
        let watch = info("watch", "rmtestreplicasets", Some("default"), None);
        let gauge = |n: i64| {
            format!(
                "apiserver_longrunning_requests{{component=\"apiserver\",group=\"apps\",resource=\"rmtestreplicasets\",scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"}} {n}\n"
            )
        };
        let first = LongRunning::watch(&watch);
        let second = LongRunning::watch(&watch);
        assert!(render().contains(&gauge(2)), "{}", render());
        drop(first);
        assert!(render().contains(&gauge(1)));
        drop(second);
        assert!(render().contains(&gauge(0)));
    }

    #[test]
    fn requests_the_aggregator_refuses_are_counted_as_its_terminations() {
        let mut list = info("list", "rmtestflunders", Some("default"), None);
        list.group = "wardle.example.com".to_owned();
        list.version = "v1alpha1".to_owned();
        record_termination(&list, "/ignored", false, "aggregator", 503);
        record_termination(&list, "/ignored", false, "aggregator", 503);
        let mut discovery = info("get", "", None, None);
        discovery.is_resource = false;
        record_termination(
            &discovery,
            "/apis/wardle.example.com/v1alpha1",
            false,
            "aggregator",
            503,
        );
        let text = render();
        assert!(text.contains("apiserver_request_terminations_total{code=\"503\",component=\"aggregator\",group=\"wardle.example.com\",resource=\"rmtestflunders\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1alpha1\"} 2\n"), "{text}");
        assert!(text.contains("apiserver_request_terminations_total{code=\"503\",component=\"aggregator\",group=\"\",resource=\"\",scope=\"\",subresource=\"/apis/wardle.example.com/v1alpha1\",verb=\"GET\",version=\"\"} 1\n"), "{text}");
    }

    #[test]
    fn object_counts_are_labelled_by_group_resource() {
        let text = render_object_counts(&[("", "pods", 3), ("apps", "deployments", 1)]);
        assert!(text.contains("apiserver_storage_objects{resource=\"pods\"} 3\n"));
        assert!(text.contains("apiserver_storage_objects{resource=\"deployments.apps\"} 1\n"));
        assert!(
            text.contains(
                "apiserver_resource_objects{group=\"apps\",resource=\"deployments\"} 1\n"
            )
        );
    }
}
