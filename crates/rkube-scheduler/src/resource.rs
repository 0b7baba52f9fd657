//! Resource quantities and what a pod requests, as upstream's resource helpers compute them:
//! containers summed, init containers as a maximum (with sidecars, restartable init
//! containers, counted for the whole pod's life), plus the pod overhead.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The CPU a container without a CPU request counts as when scoring (upstream's
/// `DefaultMilliCPURequest`), so that empty pods do not all land on one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts as when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A quantity as `mantissa × 10^exponent`, or `None` when it does not parse.
fn parse(text: &str) -> Option<(i128, i32)> {
    let text = text.trim();
    let split = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && matches!(c, '+' | '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(split);
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    if negative {
        mantissa = -mantissa;
    }
    let mut exponent = -i32::try_from(fraction.len()).ok()?;
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(power) = binary.iter().position(|s| *s == suffix) {
        for _ in 0..=power {
            mantissa = mantissa.checked_mul(1024)?;
        }
    } else {
        exponent += match suffix {
            "n" => -9,
            "u" => -6,
            "m" => -3,
            "" => 0,
            "k" => 3,
            "M" => 6,
            "G" => 9,
            "T" => 12,
            "P" => 15,
            "E" => 18,
            _ => suffix.strip_prefix(['e', 'E'])?.parse().ok()?,
        };
    }
    Some((mantissa, exponent))
}

/// `mantissa × 10^(exponent + shift)` rounded up, saturating at the i64 range.
fn scaled(text: &str, shift: i32) -> i64 {
    let Some((mut mantissa, exponent)) = parse(text) else {
        return 0;
    };
    let mut exponent = exponent + shift;
    while exponent > 0 {
        mantissa = mantissa.saturating_mul(10);
        exponent -= 1;
    }
    let mut divisor: i128 = 1;
    while exponent < 0 && divisor < i128::MAX / 10 {
        divisor *= 10;
        exponent += 1;
    }
    let mut value = mantissa / divisor;
    if mantissa % divisor > 0 {
        value += 1;
    }
    i64::try_from(value).unwrap_or(if value > 0 { i64::MAX } else { i64::MIN })
}

/// A quantity's value in thousandths, rounded up (`Quantity.MilliValue`); 0 if malformed
/// (the API server has validated every stored quantity).
pub fn milli_value(q: &Quantity) -> i64 {
    scaled(&q.0, 3)
}

/// A quantity's value, rounded up (`Quantity.Value`); 0 if malformed.
pub fn value(q: &Quantity) -> i64 {
    scaled(&q.0, 0)
}

/// Amounts of every resource the scheduler accounts for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// How many pods (only meaningful for a node's allocatable).
    pub pods: i64,
    /// Extended resources and hugepages, by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// The amounts of a resource list (requests, limits, overhead, allocatable).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = milli_value(q),
                "memory" => r.memory = value(q),
                "ephemeral-storage" => r.ephemeral_storage = value(q),
                "pods" => r.pods = value(q),
                other if is_scalar(other) => {
                    r.scalar.insert(other.to_owned(), value(q));
                }
                _ => {}
            }
        }
        r
    }

    /// The amount of the named resource.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.pods,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Takes `other` from these amounts.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Raises each amount to at least `other`'s.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// Whether nothing at all is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// Extended resources (`example.com/gpu`), hugepages and attachable volumes: the scalar
/// resources upstream's `IsScalarResourceName` names.
pub fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let mut r = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default();
    if non_zero {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if !requests.is_some_and(|r| r.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !requests.is_some_and(|r| r.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// What a pod requests (`resourcehelper.PodRequests`): the sum over its containers and
/// sidecars, or the largest init container step if that is more, plus its overhead.
/// `non_zero` counts a missing CPU or memory request as the scoring default.
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            init_max.max_with(&sidecars);
        } else {
            let mut step = r;
            step.add(&sidecars);
            init_max.max_with(&step);
        }
    }
    total.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resources::from_list(overhead));
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantities_parse_as_upstream_rounds_them() {
        let cases = [
            ("100m", 100, 1),
            ("1", 1000, 1),
            ("1.5", 1500, 2),
            ("0.1m", 1, 1),
            ("500Mi", 524_288_000_000, 524_288_000),
            ("32Gi", 34_359_738_368_000, 34_359_738_368),
            ("1k", 1_000_000, 1000),
            ("1e3", 1_000_000, 1000),
            ("garbage", 0, 0),
        ];
        for (text, milli, whole) in cases {
            let q = Quantity(text.into());
            assert_eq!(milli_value(&q), milli, "{text} milli");
            assert_eq!(value(&q), whole, "{text} value");
        }
    }

    fn spec(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn pod_requests_take_init_containers_sidecars_and_overhead_into_account() {
        let cases = [
            (
                "containers add up",
                serde_json::json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "200m"}}}]}),
                300,
                1 << 30,
            ),
            (
                "a larger init container wins",
                serde_json::json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]}),
                2000,
                0,
            ),
            (
                "sidecars run beside everything after them",
                serde_json::json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                    "initContainers": [
                        {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                        {"name": "i", "resources": {"requests": {"cpu": "1"}}}]}),
                1500,
                0,
            ),
            (
                "overhead is added",
                serde_json::json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                    "overhead": {"cpu": "50m", "memory": "10Mi"}}),
                150,
                10 << 20,
            ),
        ];
        for (name, json, cpu, memory) in cases {
            let r = pod_requests(&spec(json), false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, memory), "{name}");
        }
    }

    #[test]
    fn missing_requests_count_as_defaults_when_scoring() {
        let s = spec(serde_json::json!({"containers": [{"name": "a"}]}));
        let r = pod_requests(&s, true);
        assert_eq!(r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.memory, DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&s, false).is_zero());
    }

    #[test]
    fn extended_resources_are_scalar() {
        let list: BTreeMap<String, Quantity> = [
            ("example.com/gpu".to_owned(), Quantity("2".into())),
            ("hugepages-2Mi".to_owned(), Quantity("4Mi".into())),
        ]
        .into();
        let r = Resources::from_list(&list);
        assert_eq!(r.get("example.com/gpu"), 2);
        assert_eq!(r.get("hugepages-2Mi"), 4 << 20);
    }
}
