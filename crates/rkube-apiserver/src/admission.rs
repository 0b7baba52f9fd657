//! Admission: defaulting, then validation, on every object before it is stored.

use rkube_api::registry::ResourceType;
use rkube_api::{ApiError, defaults, validation};
use serde_json::Value;

/// Defaults `object`, then validates it (against `old` on update); 422 with field causes if
/// it is invalid.
pub fn admit(rt: &ResourceType, object: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    defaults::apply_defaults(rt.group, rt.kind, object);
    let causes = validation::validate(rt.group, rt.kind, object, old);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            kind: rt.qualified_kind(),
            name: object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            causes,
        })
    }
}
