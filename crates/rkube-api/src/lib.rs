//! The Kubernetes API as rkube serves it, independent of HTTP and storage: which resources
//! exist ([`registry`]), how objects are defaulted ([`defaults`]) and validated
//! ([`validation`]), label and field selectors ([`selector`]), the patch formats ([`patch`]),
//! the columns `kubectl get` shows ([`table`]), how volumes match claims ([`volume`]), and
//! decoding without managed fields ([`trim`]).
//!
//! Everything here is pure: JSON values and k8s-openapi types in, values or [`ApiError`]s out.

pub mod apply;
pub mod convert;
pub mod crd;
pub mod defaults;
pub mod error;
pub mod patch;
pub mod quota;
pub mod registry;
pub mod selector;
pub mod table;
pub mod trim;
pub mod validation;
pub mod volume;

pub use error::{ApiError, FieldError, FieldErrorKind};
