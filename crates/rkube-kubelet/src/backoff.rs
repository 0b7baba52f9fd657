//! Restart back-off per container, as upstream's kubelet keeps it: the first restart is at
//! once, then 10 s doubling to 5 min; a container that ran for longer than twice the cap
//! since its last restart starts over at 10 s.

use std::collections::HashMap;
use std::time::Duration;

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
struct Entry {
    delay: Duration,
    /// When the delay was last raised (ns since the epoch).
    updated: i64,
}

/// Back-off entries keyed by pod and container.
#[derive(Clone, Debug)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
    initial: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Backoff {
    /// Back-off from `initial` doubling to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            initial,
            max,
        }
    }

    /// How long to wait still, if an event at `since` (a container's exit) is within the
    /// key's current delay at `now`.
    pub fn remaining(&self, key: &str, since: i64, now: i64) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        // A container that ran longer than twice the cap since the last restart starts over.
        if since.saturating_sub(entry.updated) > nanos(self.max * 2) {
            return None;
        }
        let until = since.saturating_add(nanos(entry.delay));
        (now < until).then(|| Duration::from_nanos(u64::try_from(until - now).unwrap_or(0)))
    }

    /// The key's current delay.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Records a restart at `now`: the delay starts at the initial one, or doubles.
    pub fn next(&mut self, key: &str, now: i64) {
        let (initial, max) = (self.initial, self.max);
        let expired = |e: &Entry| now.saturating_sub(e.updated) > nanos(max * 2);
        match self.entries.get_mut(key) {
            Some(entry) if !expired(entry) => {
                entry.delay = (entry.delay * 2).min(max);
                entry.updated = now;
            }
            _ => {
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        delay: initial,
                        updated: now,
                    },
                );
            }
        }
    }

    /// Forgets keys that start with `prefix` (a pod's).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let mut b = Backoff::default();
        assert_eq!(b.remaining("k", 0, 0), None, "the first restart is at once");
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            b.next("k", now);
            seen.push(b.delay("k").map(|d| d.as_secs()));
            now += 5 * S;
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300].map(Some).to_vec());
        assert_eq!(
            b.remaining("k", now, now + 100 * S),
            Some(Duration::from_secs(200))
        );
    }

    #[test]
    fn a_long_run_resets_the_delay() {
        let mut b = Backoff::default();
        b.next("k", 0);
        b.next("k", S);
        assert_eq!(b.delay("k"), Some(Duration::from_secs(20)));
        b.next("k", 11 * 60 * S);
        assert_eq!(b.delay("k"), Some(Duration::from_secs(10)));
    }
}
