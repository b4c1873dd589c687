//! Fuzz target: arbitrary bytes as a `.pte` (harness in `fuzz/harness/pte_load.rs`).
#![no_main]

#[path = "../harness/pte_load.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run_bytes(data));
