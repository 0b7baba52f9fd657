//! Controllers: each watches one kind of object, compares what is declared with what is, and
//! acts through the API server like any other client.

pub mod gc;
pub mod namespace;
pub mod serviceaccount;

pub use gc::GarbageCollector;
pub use namespace::NamespaceController;
pub use serviceaccount::ServiceAccountController;
