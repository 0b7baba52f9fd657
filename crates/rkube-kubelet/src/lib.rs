//! rkube's node agent: registers the node and runs the pods bound to it through a CRI runtime
//! (containerd), with volumes, probes, restarts, status and the kubelet API.
//!
//! The decisions are pure (`sync::plan`, `status::pod_status`) over what a
//! [`runtime::ContainerRuntime`] reports; [`cri::CriRuntime`] is the real runtime and
//! [`fake::FakeRuntime`] a recording one for tests.

pub mod agent;
pub mod atomic;
pub mod backoff;
pub mod cgroups;
pub mod cni;
pub mod containerd;
pub mod cri;
pub mod env;
pub mod events;
pub mod eviction;
pub mod fake;
pub mod files;
pub mod hollow;
pub mod imagegc;
pub mod images;
pub mod kubelet;
pub mod logs;
pub mod node;
pub mod observed;
pub mod pause;
pub mod podconfig;
pub mod podwatch;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod services;
pub mod sources;
pub mod static_pods;
pub mod stats;
pub mod status;
pub mod sync;
pub mod volumes;
pub mod worker;

pub use kubelet::{Kubelet, KubeletConfig};
pub use runtime::ContainerRuntime;
pub mod join;
pub mod killall;
