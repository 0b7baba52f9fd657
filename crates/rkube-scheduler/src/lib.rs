//! rkube's scheduler: places pending pods on nodes and binds them through `pods/binding`.
//!
//! - [`queue`]: active (PrioritySort), backoff and unschedulable queues, scheduling gates,
//!   event-driven requeueing.
//! - [`cache`]: nodes with their bound and assumed pods, fed by informers; the cycle's
//!   snapshot.
//! - [`framework`] and [`profile`]: the extension points and one scheduling cycle.
//! - [`plugins`]: the in-tree filter, score and volume plugins; [`preemption`]:
//!   DefaultPreemption; [`volumes`]: volumes, claims and classes with the assume cache;
//!   [`workloads`]: the selectors of what selects a pod, for default spread constraints.
//! - [`config`]: KubeSchedulerConfiguration; [`metrics`]: the `/metrics` registry.
//! - [`trimmed`]: objects decoded without `metadata.managedFields`, as informers keep them.
//! - [`scheduler`]: the loop that ties them together and talks to the API server.

pub mod cache;
pub mod config;
pub mod events;
pub mod framework;
pub mod informer;
pub mod metrics;
pub mod plugins;
pub mod preemption;
pub mod profile;
pub mod queue;
pub mod resource;
pub mod scheduler;
pub mod trimmed;
pub mod types;
pub mod volumes;
pub mod workloads;

#[cfg(test)]
mod testing;

pub use config::{ConfigError, SchedulerConfig};
pub use metrics::Metrics;
pub use scheduler::Scheduler;
