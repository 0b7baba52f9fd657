//! Strategic merge patch.
use serde_json::Value;
use crate::error::ApiError;
/// Placeholder.
pub fn strategic_merge_patch(_group: &str, _kind: &str, doc: &Value, _patch: &Value) -> Result<Value, ApiError> { let _ = super::schema::for_kind("", ""); Ok(doc.clone()) }
