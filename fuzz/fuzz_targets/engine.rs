//! Fuzz target: sampler configs and logits through the engine (harness in
//! `fuzz/harness/engine.rs`).
#![no_main]

#[path = "../harness/engine.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run_bytes(data));
