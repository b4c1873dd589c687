//! How long loading a program takes, verifier included (ignored by default: a measurement, not
//! a check). Used to show that moving the verifier to generated readers left load time as it
//! was:
//!
//! ```text
//! cargo test --release --test pte_verify_speed -- --ignored --nocapture
//! ```
#![cfg(feature = "pte")]

use std::time::Instant;

use diffulex_edge::pte::PteModule;

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn load_time_per_program() {
    let root = env!("CARGO_MANIFEST_DIR");
    let programs = [
        "models/default/model.pte",
        "tests/fixtures/pte/sdar_cached.pte",
        "tests/fixtures/pte/sdar_cached_int8.pte",
        "tests/fixtures/pte/llada.pte",
        "tests/fixtures/basic/xnnpack.pte",
    ];
    for rel in programs {
        let path = format!("{root}/{rel}");
        let bytes = std::fs::read(&path).unwrap();
        // Warm up the runtime and the page cache.
        PteModule::load(&path).unwrap();
        // The minimum and median of many rounds: other processes on a shared machine only
        // ever add time.
        let rounds = 300;
        let timed = |load: &dyn Fn()| {
            let mut times: Vec<_> = (0..rounds)
                .map(|_| {
                    let start = Instant::now();
                    load();
                    start.elapsed()
                })
                .collect();
            times.sort();
            (times[0], times[rounds / 2])
        };
        let mapped = timed(&|| drop(PteModule::load(&path).unwrap()));
        let in_memory = timed(&|| drop(PteModule::from_bytes(bytes.clone()).unwrap()));
        println!(
            "{rel}: load min {:?} median {:?}; from_bytes min {:?} median {:?} ({rounds} rounds)",
            mapped.0, mapped.1, in_memory.0, in_memory.1
        );
    }
}
