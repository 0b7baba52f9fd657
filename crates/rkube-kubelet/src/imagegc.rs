//! Image garbage collection, as upstream's image manager does it: when the image filesystem is
//! fuller than the high threshold (`--image-gc-high-threshold`, 85%), images no container uses
//! are removed, least recently used first, until it is down to the low threshold
//! (`--image-gc-low-threshold`, 80%). Images seen for less than the minimum age
//! (`--minimum-image-ttl-duration`, 2 minutes) and pinned ones (the sandbox image) are kept.
//! Under disk pressure the eviction manager removes every unused image at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cri::v1;
use crate::kubelet::Shared;

/// How often the image filesystem is checked.
pub const PERIOD: Duration = Duration::from_secs(300);

/// When to collect and what to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Collect when the filesystem is at least this full (percent); 100 turns collection off.
    pub high: u8,
    /// Collect down to this (percent).
    pub low: u8,
    /// Images seen for less than this are kept.
    pub min_age: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            high: 85,
            low: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

impl Policy {
    /// Checks the thresholds as upstream does.
    pub fn validate(&self) -> Result<(), String> {
        if self.high > 100 {
            return Err(format!(
                "invalid image GC high threshold {}: must be between 0 and 100",
                self.high
            ));
        }
        if self.low >= self.high && self.high != 100 || self.low > 100 {
            return Err(format!(
                "image GC low threshold {} must be lower than the high threshold {}",
                self.low, self.high
            ));
        }
        Ok(())
    }

    /// Bytes to free on a filesystem of `capacity` with `available` left: enough to get down
    /// to the low threshold once usage reached the high one, else none.
    pub fn to_free(&self, capacity: u64, available: u64) -> u64 {
        if capacity == 0 || self.high >= 100 {
            return 0;
        }
        let used = capacity.saturating_sub(available);
        let percent = used as u128 * 100 / capacity as u128;
        if percent < u128::from(self.high) {
            return 0;
        }
        used.saturating_sub((capacity as u128 * u128::from(self.low) / 100) as u64)
    }
}

/// What is known of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the kubelet first saw it.
    pub first_seen: Instant,
    /// When a container last used it.
    pub last_used: Instant,
}

/// The images to remove to free `want` bytes: unused, unpinned, old enough, least recently
/// used first (then the biggest).
pub fn choose(
    images: &[v1::Image],
    in_use: &HashSet<String>,
    records: &HashMap<String, Record>,
    now: Instant,
    min_age: Duration,
    want: u64,
) -> Vec<(String, u64)> {
    let mut candidates: Vec<(&v1::Image, Record)> = images
        .iter()
        .filter(|i| !i.pinned && !used(i, in_use) && !is_sandbox(i))
        .filter_map(|i| records.get(&i.id).map(|r| (i, *r)))
        .filter(|(_, r)| now.saturating_duration_since(r.first_seen) >= min_age)
        .collect();
    candidates.sort_by(|a, b| {
        a.1.last_used
            .cmp(&b.1.last_used)
            .then(b.0.size.cmp(&a.0.size))
    });
    let mut freed = 0u64;
    let mut out = Vec::new();
    for (image, _) in candidates {
        if freed >= want {
            break;
        }
        freed = freed.saturating_add(image.size);
        out.push((image.id.clone(), image.size));
    }
    out
}

fn used(image: &v1::Image, in_use: &HashSet<String>) -> bool {
    in_use.contains(&image.id)
        || image
            .repo_tags
            .iter()
            .chain(&image.repo_digests)
            .any(|n| in_use.contains(n))
}

fn is_sandbox(image: &v1::Image) -> bool {
    image
        .repo_tags
        .iter()
        .any(|t| t == crate::containerd::SANDBOX_IMAGE)
}

/// The image manager's settings and what it has seen.
#[derive(Debug)]
pub struct Manager {
    /// When to collect.
    pub policy: Policy,
    records: std::sync::Mutex<HashMap<String, Record>>,
}

impl Manager {
    /// A manager with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            records: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// Lists images and containers, records first sightings and uses; returns the images and the
/// names of those in use.
async fn detect(shared: &Shared) -> Option<(Vec<v1::Image>, HashSet<String>)> {
    let images = shared.runtime.list_images().await.ok()?;
    let containers = shared.runtime.list_containers(None).await.ok()?;
    let in_use: HashSet<String> = containers
        .iter()
        .flat_map(|c| {
            [
                Some(c.image_ref.clone()),
                c.image.as_ref().map(|i| i.image.clone()),
            ]
        })
        .flatten()
        .filter(|n| !n.is_empty())
        .collect();
    let now = Instant::now();
    let mut records = shared.image_gc.records.lock().ok()?;
    records.retain(|id, _| images.iter().any(|i| &i.id == id));
    for image in &images {
        let record = records.entry(image.id.clone()).or_insert(Record {
            first_seen: now,
            last_used: now,
        });
        if used(image, &in_use) {
            record.last_used = now;
        }
    }
    Some((images, in_use))
}

/// Removes unused images until `want` bytes are freed (or none are left to remove); returns
/// the bytes freed.
async fn free(shared: &Shared, want: u64) -> u64 {
    let Some((images, in_use)) = detect(shared).await else {
        return 0;
    };
    let chosen = {
        let Ok(records) = shared.image_gc.records.lock() else {
            return 0;
        };
        choose(
            &images,
            &in_use,
            &records,
            Instant::now(),
            shared.image_gc.policy.min_age,
            want,
        )
    };
    let mut freed = 0;
    for (id, size) in chosen {
        match shared.runtime.remove_image(&id).await {
            Ok(()) => {
                tracing::info!(image = %id, size, "removed an unused image");
                freed += size;
                if let Ok(mut records) = shared.image_gc.records.lock() {
                    records.remove(&id);
                }
            }
            Err(e) => tracing::warn!(image = %id, error = %e, "removing an unused image"),
        }
    }
    freed
}

/// Removes every unused image old enough (for the eviction manager); returns the bytes freed.
pub async fn delete_unused(shared: &Shared) -> u64 {
    free(shared, u64::MAX).await
}

/// One collection: frees down to the low threshold if the high one is reached.
pub async fn collect(shared: &Shared) {
    let Some(fs) = crate::node::fs_stats(&shared.config.agent_dir) else {
        return;
    };
    // Sightings are recorded on every round, so ages count from the first one.
    let want = shared.image_gc.policy.to_free(fs.bytes, fs.bytes_available);
    if want == 0 {
        let _ = detect(shared).await;
        return;
    }
    let freed = free(shared, want).await;
    if freed < want {
        let message = format!(
            "Failed to garbage collect required amount of images. Attempted to free {want} bytes, but only found {freed} bytes eligible to free."
        );
        shared
            .recorder
            .node("Warning", "FreeDiskSpaceFailed", &message)
            .await;
    }
}

/// Collects every five minutes until the task is dropped.
pub async fn run(shared: Arc<Shared>) {
    loop {
        collect(&shared).await;
        tokio::time::sleep(PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tag: &str, size: u64) -> v1::Image {
        v1::Image {
            id: id.to_owned(),
            repo_tags: vec![tag.to_owned()],
            size,
            ..Default::default()
        }
    }

    #[test]
    fn thresholds_decide_how_much_to_free() {
        let p = Policy::default();
        assert_eq!(
            p.to_free(1000, 200),
            0,
            "80% used is under the high threshold"
        );
        assert_eq!(p.to_free(1000, 150), 50, "85% used: down to 80%");
        assert_eq!(p.to_free(1000, 50), 150);
        let off = Policy { high: 100, ..p };
        assert_eq!(off.to_free(1000, 0), 0);
        assert!(
            Policy {
                high: 80,
                low: 85,
                ..p
            }
            .validate()
            .is_err()
        );
        assert!(
            Policy {
                high: 101,
                low: 85,
                ..p
            }
            .validate()
            .is_err()
        );
        assert!(p.validate().is_ok());
    }

    #[test]
    fn unused_old_images_go_least_recently_used_first() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let images = vec![
            image("sha256:a", "reg/a:1", 100),
            image("sha256:b", "reg/b:1", 200),
            image("sha256:c", "reg/c:1", 300),
            image("sha256:young", "reg/young:1", 400),
            image("sha256:used", "reg/used:1", 500),
            v1::Image {
                pinned: true,
                ..image("sha256:pinned", "reg/pinned:1", 600)
            },
            image("sha256:pause", crate::containerd::SANDBOX_IMAGE, 700),
        ];
        let records: HashMap<String, Record> = [
            ("sha256:a", 0, 50),
            ("sha256:b", 0, 10),
            ("sha256:c", 0, 30),
            ("sha256:young", 500, 500),
            ("sha256:used", 0, 0),
            ("sha256:pinned", 0, 0),
            ("sha256:pause", 0, 0),
        ]
        .into_iter()
        .map(|(id, seen, used)| {
            (
                id.to_owned(),
                Record {
                    first_seen: at(seen),
                    last_used: at(used),
                },
            )
        })
        .collect();
        let in_use = HashSet::from(["reg/used:1".to_owned()]);
        let now = at(600);
        let min_age = Duration::from_secs(120);
        let chosen = choose(&images, &in_use, &records, now, min_age, 250);
        assert_eq!(
            chosen,
            [("sha256:b".to_owned(), 200), ("sha256:c".to_owned(), 300)]
        );
        let all = choose(&images, &in_use, &records, now, min_age, u64::MAX);
        let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["sha256:b", "sha256:c", "sha256:a"]);
    }
}
