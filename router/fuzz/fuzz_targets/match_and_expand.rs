//! `cargo fuzz run match_and_expand`: compile a route table, look requests
//! up, expand backend URI templates (see `../driver.rs` for the input format).
#![no_main]

#[path = "../driver.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::run(data));
