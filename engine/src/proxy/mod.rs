//! The data plane: connection loop, upstream pool, body relay.
pub mod conn;
pub mod error;
pub mod json_body;
pub mod pool;
pub mod relay;
pub mod stream;
pub mod worker;
