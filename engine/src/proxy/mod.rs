//! The data plane: connection loop, upstream pool, body relay.
pub mod conn;
pub mod error;
pub mod json_body;
pub mod pool;
pub mod relay;
pub mod stream;
pub mod worker;

/// Moved to `crate::request_id` (a leaf module); this path stays until the
/// benches name the new one.
pub use crate::request_id;
