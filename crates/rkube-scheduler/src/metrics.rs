//! The scheduler's metrics, in the Prometheus text format under upstream's names:
//! `scheduler_schedule_attempts_total{result,profile}`,
//! `scheduler_scheduling_attempt_duration_seconds`, `scheduler_pod_scheduling_sli_duration_seconds`
//! (first queued to bound) and `scheduler_pending_pods{queue}`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::queue::Depths;

/// A histogram with fixed upper bounds.
#[derive(Clone, Debug)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn exponential(start: f64, factor: f64, n: usize) -> Self {
        let bounds: Vec<f64> = (0..n).map(|i| start * factor.powi(i as i32)).collect();
        Histogram {
            counts: vec![0; bounds.len()],
            bounds,
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    attempts: BTreeMap<(&'static str, String), u64>,
    attempt_duration: BTreeMap<(&'static str, String), Histogram>,
    e2e: Histogram,
    pending: Depths,
}

/// The metrics registry; share it (it is behind an `Arc` in the scheduler) and serve
/// [`Metrics::render`] on `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::new(Inner {
                attempts: BTreeMap::new(),
                attempt_duration: BTreeMap::new(),
                e2e: Histogram::exponential(0.01, 2.0, 20),
                pending: Depths::default(),
            }),
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// A node was chosen.
    Scheduled,
    /// No node fits.
    Unschedulable,
    /// Something went wrong (a failed binding).
    Error,
}

impl AttemptResult {
    fn label(self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt and how long it took.
    pub fn attempt(&self, result: AttemptResult, profile: &str, took: Duration) {
        let mut inner = self.lock();
        let key = (result.label(), profile.to_owned());
        *inner.attempts.entry(key.clone()).or_default() += 1;
        inner
            .attempt_duration
            .entry(key)
            .or_insert_with(|| Histogram::exponential(0.001, 2.0, 15))
            .observe(took.as_secs_f64());
    }

    /// Records a pod bound, `took` after it was first queued.
    pub fn scheduled(&self, took: Duration) {
        self.lock().e2e.observe(took.as_secs_f64());
    }

    /// Records the queue depths.
    pub fn pending(&self, depths: Depths) {
        self.lock().pending = depths;
    }

    /// How many attempts ended with `result`, over every profile.
    pub fn attempts(&self, result: AttemptResult) -> u64 {
        self.lock()
            .attempts
            .iter()
            .filter(|((r, _), _)| *r == result.label())
            .map(|(_, n)| n)
            .sum()
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("# HELP scheduler_schedule_attempts_total Number of attempts to schedule pods, by the result.\n");
        out.push_str("# TYPE scheduler_schedule_attempts_total counter\n");
        for ((result, profile), n) in &inner.attempts {
            let _ = writeln!(
                out,
                "scheduler_schedule_attempts_total{{profile=\"{profile}\",result=\"{result}\"}} {n}"
            );
        }
        out.push_str("# HELP scheduler_scheduling_attempt_duration_seconds Scheduling attempt latency in seconds (scheduling algorithm + binding).\n");
        out.push_str("# TYPE scheduler_scheduling_attempt_duration_seconds histogram\n");
        for ((result, profile), h) in &inner.attempt_duration {
            h.render(
                &mut out,
                "scheduler_scheduling_attempt_duration_seconds",
                &format!("profile=\"{profile}\",result=\"{result}\""),
            );
        }
        out.push_str("# HELP scheduler_pod_scheduling_sli_duration_seconds E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue.\n");
        out.push_str("# TYPE scheduler_pod_scheduling_sli_duration_seconds histogram\n");
        inner.e2e.render(
            &mut out,
            "scheduler_pod_scheduling_sli_duration_seconds",
            "",
        );
        out.push_str("# HELP scheduler_pending_pods Number of pending pods, by the queue type.\n");
        out.push_str("# TYPE scheduler_pending_pods gauge\n");
        let p = inner.pending;
        for (queue, n) in [
            ("active", p.active),
            ("backoff", p.backoff),
            ("unschedulable", p.unschedulable),
            ("gated", p.gated),
        ] {
            let _ = writeln!(out, "scheduler_pending_pods{{queue=\"{queue}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format() {
        let m = Metrics::default();
        m.attempt(
            AttemptResult::Scheduled,
            "default-scheduler",
            Duration::from_millis(2),
        );
        m.attempt(
            AttemptResult::Unschedulable,
            "default-scheduler",
            Duration::from_millis(1),
        );
        m.scheduled(Duration::from_millis(15));
        m.pending(Depths {
            active: 1,
            backoff: 2,
            unschedulable: 3,
            gated: 0,
        });
        let text = m.render();
        assert!(text.contains(
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 1"
        ));
        assert!(
            text.contains("scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.02\"} 1")
        );
        assert!(text.contains("scheduler_pod_scheduling_sli_duration_seconds_count 1"));
        assert!(text.contains("scheduler_pending_pods{queue=\"unschedulable\"} 3"));
        assert_eq!(m.attempts(AttemptResult::Unschedulable), 1);
    }
}
