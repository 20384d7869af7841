//! Route table for ringway (see README.md).
#![forbid(unsafe_code)]
