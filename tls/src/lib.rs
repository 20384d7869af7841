//! TLS for ringway (see README.md).
