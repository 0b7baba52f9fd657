//! Versions served from another version's storage: an object is kept in one version (the
//! storage version) and converted on the way in and out for every other version of the same
//! kind, as upstream's apiserver converts through its internal types.

pub mod hpa;

use serde_json::Value;

use crate::ApiError;

/// How a served version converts to and from the version its objects are stored in.
#[derive(Debug)]
pub struct Conversion {
    /// The version objects are stored in (same group and kind).
    pub storage_version: &'static str,
    /// A served object (or request body) in the stored form.
    pub to_storage: fn(Value) -> Result<Value, ApiError>,
    /// A stored object in the served form.
    pub from_storage: fn(Value) -> Result<Value, ApiError>,
}

/// `autoscaling/v1` HorizontalPodAutoscalers, stored as `autoscaling/v2`.
pub static HPA_V1: Conversion = Conversion {
    storage_version: "v2",
    to_storage: hpa::v1_to_v2,
    from_storage: hpa::v2_to_v1,
};
