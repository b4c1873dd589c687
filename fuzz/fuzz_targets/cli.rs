//! Fuzz target: the CLI's flags through its own clap definitions and length checks into the
//! engine (harness in `fuzz/harness/cli.rs`).
#![no_main]

#[path = "../harness/cli.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run_bytes(data));
