//! The scheduling queue: an active queue ordered by priority then arrival (PrioritySort), a
//! backoff queue (1 s doubling per attempt up to 10 s), unschedulable pods that wait for a
//! cluster event one of their rejecting plugins cares about, and gated pods (non-empty
//! `schedulingGates`) that are not considered until their gates are removed.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::types::{PodInfo, PodKey};

/// Where a queued pod waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Ready to be scheduled.
    Active,
    /// Waiting out its backoff until the instant.
    Backoff(Instant),
    /// Waiting for a cluster event.
    Unschedulable,
    /// Held by scheduling gates.
    Gated,
    /// Being scheduled now.
    InFlight,
}

/// A pod the queue holds.
#[derive(Debug)]
pub struct QueuedPod {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// How many times it has been tried.
    pub attempts: u32,
    /// When it first entered the queue (for end-to-end latency).
    pub first_seen: Instant,
    /// Where it waits.
    pub location: Location,
    /// The events that may make it schedulable (from the plugins that rejected it).
    pub waiting_for: u32,
    /// Events seen while it was in flight.
    events_in_flight: u32,
    /// When it last failed.
    last_failure: Option<Instant>,
    /// Bumped at every move, so stale heap entries are recognised.
    generation: u64,
    /// Order of arrival in its current queue.
    seq: u64,
    /// The last FailedScheduling message written for it, so repeats are not rewritten.
    pub last_message: Option<String>,
}

#[derive(PartialEq, Eq)]
struct ActiveEntry {
    priority: i32,
    seq: u64,
    key: PodKey,
    generation: u64,
}

impl Ord for ActiveEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How many pods wait in each queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depths {
    /// Active.
    pub active: usize,
    /// Backoff.
    pub backoff: usize,
    /// Unschedulable.
    pub unschedulable: usize,
    /// Gated.
    pub gated: usize,
}

/// The queue; see the module docs.
pub struct SchedulingQueue {
    pods: HashMap<PodKey, QueuedPod>,
    active: BinaryHeap<ActiveEntry>,
    backoff: BinaryHeap<Reverse<(Instant, u64, PodKey, u64)>>,
    seq: u64,
    generation: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// How long an unschedulable pod waits at most before it is tried again anyway.
    pub max_unschedulable: Duration,
    depths: Depths,
    /// The pods in the unschedulable set and in flight, so events need not scan the queue.
    waiting: HashSet<PodKey>,
    in_flight: HashSet<PodKey>,
}

fn gated(info: &PodInfo) -> bool {
    info.pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

impl SchedulingQueue {
    /// A queue with these backoff bounds.
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        SchedulingQueue {
            pods: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            seq: 0,
            generation: 0,
            initial_backoff,
            max_backoff,
            max_unschedulable: Duration::from_secs(5 * 60),
            depths: Depths::default(),
            waiting: HashSet::new(),
            in_flight: HashSet::new(),
        }
    }

    /// How many pods wait where.
    pub fn depths(&self) -> Depths {
        self.depths
    }

    /// The queued pod with this key.
    pub fn get(&self, key: &str) -> Option<&QueuedPod> {
        self.pods.get(key)
    }

    /// The queued pod with this key, for change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut QueuedPod> {
        self.pods.get_mut(key)
    }

    /// How many pods the queue holds (in flight included).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the queue holds nothing.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    fn count(&mut self, key: &str, location: Location, delta: isize) {
        let set = match location {
            Location::Unschedulable => Some(&mut self.waiting),
            Location::InFlight => Some(&mut self.in_flight),
            _ => None,
        };
        if let Some(set) = set {
            if delta > 0 {
                set.insert(key.to_owned());
            } else {
                set.remove(key);
            }
        }
        let slot = match location {
            Location::Active => &mut self.depths.active,
            Location::Backoff(_) => &mut self.depths.backoff,
            Location::Unschedulable => &mut self.depths.unschedulable,
            Location::Gated => &mut self.depths.gated,
            Location::InFlight => return,
        };
        *slot = slot.saturating_add_signed(delta);
    }

    fn place(&mut self, key: &str, location: Location) {
        self.generation += 1;
        self.seq += 1;
        let (generation, seq) = (self.generation, self.seq);
        let Some(pod) = self.pods.get_mut(key) else {
            return;
        };
        let old = pod.location;
        pod.location = location;
        pod.generation = generation;
        let priority = pod.info.priority;
        if location == Location::Active && old != Location::Active {
            pod.seq = seq;
        }
        let seq = pod.seq;
        self.count(key, old, -1);
        self.count(key, location, 1);
        match location {
            Location::Active => self.active.push(ActiveEntry {
                priority,
                seq,
                key: key.to_owned(),
                generation,
            }),
            Location::Backoff(until) => {
                self.backoff
                    .push(Reverse((until, seq, key.to_owned(), generation)))
            }
            _ => {}
        }
    }

    fn backoff_until(&self, pod: &QueuedPod) -> Option<Instant> {
        let last = pod.last_failure?;
        let shift = pod.attempts.saturating_sub(1).min(20);
        let wait = self
            .initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff);
        Some(last + wait)
    }

    /// Where a pod that may be schedulable again goes: backoff if it still owes some,
    /// else active.
    fn ready_location(&self, pod: &QueuedPod, now: Instant) -> Location {
        match self.backoff_until(pod) {
            Some(until) if until > now => Location::Backoff(until),
            _ => Location::Active,
        }
    }

    /// Adds a new pending pod or takes an update of a queued one. An update that changes
    /// the pod's spec or labels gives an unschedulable pod another try; removing the last
    /// scheduling gate releases a gated one.
    pub fn upsert(&mut self, info: Arc<PodInfo>, now: Instant) {
        let key = info.key.clone();
        let is_gated = gated(&info);
        match self.pods.get_mut(&key) {
            None => {
                self.pods.insert(
                    key.clone(),
                    QueuedPod {
                        info,
                        attempts: 0,
                        first_seen: now,
                        location: Location::InFlight,
                        waiting_for: 0,
                        events_in_flight: 0,
                        last_failure: None,
                        generation: 0,
                        seq: 0,
                        last_message: None,
                    },
                );
                self.place(
                    &key,
                    if is_gated {
                        Location::Gated
                    } else {
                        Location::Active
                    },
                );
            }
            Some(pod) => {
                let changed = pod.info.pod.spec != info.pod.spec || pod.info.labels != info.labels;
                pod.info = info;
                let location = pod.location;
                match location {
                    Location::Gated if !is_gated => {
                        let to = self.ready_location(&self.pods[&key], now);
                        self.place(&key, to);
                    }
                    Location::Unschedulable if changed && !is_gated => {
                        let to = self.ready_location(&self.pods[&key], now);
                        self.place(&key, to);
                    }
                    Location::Active | Location::Backoff(_) | Location::Unschedulable
                        if is_gated =>
                    {
                        self.place(&key, Location::Gated)
                    }
                    Location::Active => {
                        // Priority may have changed: push a fresh entry.
                        self.place(&key, Location::Active)
                    }
                    _ => {}
                }
            }
        }
    }

    /// Forgets a pod (deleted, bound, or no longer ours).
    pub fn remove(&mut self, key: &str) -> Option<QueuedPod> {
        let pod = self.pods.remove(key)?;
        self.count(key, pod.location, -1);
        Some(pod)
    }

    /// Moves pods whose backoff is over into the active queue.
    fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, _, key, generation))) = self.backoff.peek() {
            if *until > now {
                break;
            }
            let (key, generation) = (key.clone(), *generation);
            self.backoff.pop();
            if self
                .pods
                .get(&key)
                .is_some_and(|p| p.generation == generation)
            {
                self.place(&key, Location::Active);
            }
        }
    }

    /// The next pod to schedule, marked in flight, with its attempt number (1 for the
    /// first try).
    pub fn pop(&mut self, now: Instant) -> Option<(Arc<PodInfo>, u32)> {
        self.flush_backoff(now);
        while let Some(entry) = self.active.pop() {
            let current = self.pods.get(&entry.key).is_some_and(|p| {
                p.generation == entry.generation && p.location == Location::Active
            });
            if !current {
                continue;
            }
            self.place(&entry.key, Location::InFlight);
            let pod = self.pods.get_mut(&entry.key)?;
            pod.attempts += 1;
            pod.events_in_flight = 0;
            return Some((pod.info.clone(), pod.attempts));
        }
        None
    }

    /// When the earliest backoff ends, if any pod is backing off.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((until, ..))| *until)
    }

    /// Whether a pod is ready to pop now.
    pub fn has_active(&self) -> bool {
        self.depths.active > 0
    }

    /// Records that an in-flight pod could not be placed. It waits for one of the
    /// `waiting_for` events, unless such an event already happened while it was being
    /// tried, in which case it only backs off.
    pub fn unschedulable(&mut self, key: &str, waiting_for: u32, now: Instant) {
        let Some(pod) = self.pods.get_mut(key) else {
            return;
        };
        pod.last_failure = Some(now);
        pod.waiting_for = waiting_for;
        let missed = pod.events_in_flight & waiting_for != 0;
        if missed {
            let to = self.ready_location(&self.pods[key], now);
            self.place(key, to);
        } else {
            self.place(key, Location::Unschedulable);
        }
    }

    /// Puts a pod back after an error (a failed binding, an API error): it backs off.
    pub fn retry(&mut self, info: Arc<PodInfo>, now: Instant) {
        let key = info.key.clone();
        if !self.pods.contains_key(&key) {
            self.upsert(info, now);
        }
        let Some(pod) = self.pods.get_mut(&key) else {
            return;
        };
        pod.last_failure = Some(now);
        pod.attempts = pod.attempts.max(1);
        let to = self.ready_location(&self.pods[&key], now);
        self.place(&key, to);
    }

    /// A cluster event happened: unschedulable pods waiting for it move to backoff or
    /// active; in-flight pods remember it.
    pub fn on_event(&mut self, event: u32, now: Instant) {
        if event == 0 {
            return;
        }
        for key in &self.in_flight {
            if let Some(pod) = self.pods.get_mut(key) {
                pod.events_in_flight |= event;
            }
        }
        let moves: Vec<PodKey> = self
            .waiting
            .iter()
            .filter(|key| {
                self.pods
                    .get(*key)
                    .is_some_and(|p| p.waiting_for & event != 0)
            })
            .cloned()
            .collect();
        for key in moves {
            let to = self.ready_location(&self.pods[&key], now);
            self.place(&key, to);
        }
    }

    /// Pods unschedulable for longer than `max_unschedulable` are tried again anyway.
    pub fn flush_unschedulable(&mut self, now: Instant) {
        let max = self.max_unschedulable;
        let stale: Vec<PodKey> = self
            .waiting
            .iter()
            .filter(|key| {
                self.pods
                    .get(*key)
                    .is_some_and(|p| p.last_failure.is_some_and(|t| now.duration_since(t) >= max))
            })
            .cloned()
            .collect();
        for key in stale {
            let to = self.ready_location(&self.pods[&key], now);
            self.place(&key, to);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::framework::events;
    use crate::testing::pod_json;
    use serde_json::json;

    fn info(name: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod_json(
            json!({"metadata": {"name": name}, "priority": priority}),
        ))
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10))
    }

    #[test]
    fn higher_priority_pops_first_then_arrival_order() {
        let now = Instant::now();
        let mut q = queue();
        q.upsert(info("low-1", 0), now);
        q.upsert(info("high", 10), now);
        q.upsert(info("low-2", 0), now);
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop(now).map(|(p, _)| p.name.clone())).collect();
        assert_eq!(order, vec!["high", "low-1", "low-2"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_relevant_event_then_back_off() {
        let now = Instant::now();
        let mut q = queue();
        q.upsert(info("p", 0), now);
        q.pop(now).unwrap();
        q.unschedulable("default/p", events::NODE_ADD, now);
        assert_eq!(q.depths().unschedulable, 1);
        q.on_event(events::POD_DELETE, now);
        assert!(q.pop(now).is_none(), "an unrelated event leaves it");
        q.on_event(events::NODE_ADD, now);
        assert_eq!(q.depths().backoff, 1, "first failure backs off 1s");
        assert!(q.pop(now + Duration::from_millis(999)).is_none());
        let (_, attempt) = q.pop(now + Duration::from_secs(1)).unwrap();
        assert_eq!(attempt, 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut now = Instant::now();
        let mut q = queue();
        q.upsert(info("p", 0), now);
        let mut waits = Vec::new();
        for _ in 0..6 {
            q.pop(now).unwrap();
            q.retry(info("p", 0), now);
            let until = q.next_backoff().unwrap();
            waits.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn an_event_during_the_attempt_is_not_missed() {
        let now = Instant::now();
        let mut q = queue();
        q.upsert(info("p", 0), now);
        q.pop(now).unwrap();
        q.on_event(events::NODE_ADD, now);
        q.unschedulable("default/p", events::NODE_ADD, now);
        assert_eq!(q.depths().unschedulable, 0);
        assert_eq!(q.depths().backoff, 1);
    }

    #[test]
    fn gated_pods_wait_until_their_gates_are_removed() {
        let now = Instant::now();
        let mut q = queue();
        let gated = Arc::new(pod_json(
            json!({"schedulingGates": [{"name": "example.com/wait"}]}),
        ));
        q.upsert(gated, now);
        assert_eq!(q.depths().gated, 1);
        assert!(q.pop(now).is_none());
        q.upsert(Arc::new(pod_json(json!({}))), now);
        assert!(q.pop(now).is_some());
    }

    #[test]
    fn long_unschedulable_pods_are_flushed() {
        let now = Instant::now();
        let mut q = queue();
        q.upsert(info("p", 0), now);
        q.pop(now).unwrap();
        q.unschedulable("default/p", events::NODE_ADD, now);
        q.flush_unschedulable(now + Duration::from_secs(60));
        assert_eq!(q.depths().unschedulable, 1);
        q.flush_unschedulable(now + Duration::from_secs(300));
        assert!(q.pop(now + Duration::from_secs(300)).is_some());
    }
}
