//! Defaulting of built-in objects. This version applies none; per-kind defaults replace it.

/// Applies upstream's defaults for a kind in place.
pub fn apply_defaults(_group: &str, _kind: &str, _object: &mut serde_json::Value) {}
