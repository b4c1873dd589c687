//! Memory stability: load the bundled default model, generate, drop, N times, sampling the
//! process RSS (`VmRSS` in /proc/self/status) so a leak per cycle shows as a steady climb.
//!
//! ```text
//! cargo run --release --example rss_cycles -- [cycles=1000] [model=models/default/model.pte]
//! ```
//!
//! Prints the RSS after the first cycle, at every tenth of the run and at the end, plus the
//! growth per cycle over the second half (after warm-up of allocator pools). Linux only.

use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
use diffulex_edge::text::TextTokenizer;
use std::path::PathBuf;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let cycles: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/default/model.pte"));
    let tok = TextTokenizer::from_file(root.join("models/default/tokenizer.json"))?;
    let prompt = tok.encode("12+34=", false)?;
    let cfg = DiffusionGenerationConfig::new(16);
    let start = rss_kib();
    let (mut first, mut mid, mut tokens) = (0u64, 0u64, Vec::new());
    println!("rss before: {start} KiB");
    for i in 1..=cycles {
        let mut engine = DiffusionEngine::from_pte(&model, ModelType::Auto, 64)?;
        let out = engine.generate(&prompt, &cfg)?;
        if i == 1 {
            tokens = out.tokens.clone();
        } else if out.tokens != tokens {
            return Err(format!("cycle {i}: tokens changed {:?} != {tokens:?}", out.tokens).into());
        }
        drop(engine);
        let rss = rss_kib();
        if i == 1 {
            first = rss;
        }
        if i == cycles / 2 {
            mid = rss;
        }
        if i == 1 || i % (cycles / 10).max(1) == 0 {
            println!("cycle {i:>6}: rss {rss} KiB");
        }
    }
    let end = rss_kib();
    let half = (cycles - cycles / 2).max(1) as f64;
    println!(
        "rss first {first} KiB, mid {mid} KiB, end {end} KiB; second-half growth {:.3} KiB/cycle; output {:?}",
        (end as f64 - mid as f64) / half,
        tok.decode(&tokens, true)?
    );
    Ok(())
}
