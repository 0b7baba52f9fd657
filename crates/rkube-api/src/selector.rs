//! Label and field selectors. This version accepts only the empty selector; the full
//! upstream syntax replaces it.

use crate::ApiError;

fn unsupported(what: &str, s: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse requirement: {what} {s:?} is not supported by this server yet"))
}

/// A label selector.
#[derive(Clone, Debug, Default)]
pub struct LabelSelector;

impl LabelSelector {
    /// Parses the string form.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.trim().is_empty() { Ok(Self) } else { Err(unsupported("label selector", s)) }
    }
    /// Matches everything.
    pub fn everything() -> Self {
        Self
    }
    /// Whether it matches everything.
    pub fn is_empty(&self) -> bool {
        true
    }
    /// Whether an object's labels match.
    pub fn matches_object(&self, _object: &serde_json::Value) -> bool {
        true
    }
}

/// A field selector.
#[derive(Clone, Debug, Default)]
pub struct FieldSelector;

impl FieldSelector {
    /// Parses the string form.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.trim().is_empty() { Ok(Self) } else { Err(unsupported("field selector", s)) }
    }
    /// Matches everything.
    pub fn everything() -> Self {
        Self
    }
    /// Whether it matches everything.
    pub fn is_empty(&self) -> bool {
        true
    }
    /// Rejects fields the kind does not support.
    pub fn check_supported(&self, _group: &str, _kind: &str) -> Result<(), ApiError> {
        Ok(())
    }
    /// Whether an object matches.
    pub fn matches(&self, _group: &str, _kind: &str, _object: &serde_json::Value) -> bool {
        true
    }
}
