//! Validation of objects before they are stored, with upstream's field errors.

pub mod names;
