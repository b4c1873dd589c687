//! Exact match and speed of the LLaDA-style addition model (`models/llada-addition`, trained by
//! `training/train_llada.py`) on the 500 held-out problems, for Fast-dLLM v1's caches none,
//! prefix and dual, each with one token per step and with threshold 0.9 (gen 16, block 4).
//! The figures in BENCHMARKS.md come from:
//!
//! ```text
//! cargo run --release --example eval_llada_addition
//! ```

use diffulex_edge::runtime::sampler::{CacheMode, LLaDASampler};
use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
use diffulex_edge::text::TextTokenizer;
use std::path::Path;
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Problem {
    prompt: String,
    answer: String,
}

/// Generation length and block length the model was trained and evaluated with.
const GEN_LENGTH: usize = 16;
const BLOCK_LENGTH: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("models/llada-addition");
    let tok = TextTokenizer::from_file(dir.join("tokenizer.json"))?;
    let problems: Vec<Problem> = std::fs::read_to_string(root.join("training/llada_eval.jsonl"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    println!(
        "| cache | commit rule | exact match | forwards / problem | tokens / forward | tokens/s |"
    );
    println!("|---|---|---|---|---|---|");
    for cache in CacheMode::ALL {
        for threshold in [None, Some(0.9)] {
            let mut engine = DiffusionEngine::from_pte(dir.join("model.pte"), ModelType::Auto, 64)?;
            let sampler = LLaDASampler {
                steps: Some(GEN_LENGTH),
                block_length: Some(BLOCK_LENGTH),
                threshold,
                cache: Some(cache),
                ..Default::default()
            };
            let config = DiffusionGenerationConfig::new(GEN_LENGTH).with_sampler(sampler);
            let (mut correct, mut forwards, mut committed, mut generated) = (0, 0, 0, 0);
            let mut time = Duration::ZERO;
            for p in &problems {
                let prompt = tok.encode(&p.prompt, false)?;
                let out = engine.generate(&prompt, &config)?;
                correct += usize::from(tok.decode(&out.tokens, true)? == p.answer);
                forwards += out.stats.forwards;
                committed += out.stats.tokens_committed;
                generated += out.stats.tokens_generated;
                time += out.stats.total_time;
            }
            let rule = threshold.map_or("1 token/step".to_string(), |t| format!("threshold {t}"));
            println!(
                "| {cache} | {rule} | {correct}/{} = {:.1}% | {:.2} | {:.2} | {:.0} |",
                problems.len(),
                100.0 * correct as f64 / problems.len() as f64,
                forwards as f64 / problems.len() as f64,
                committed as f64 / forwards as f64,
                generated as f64 / time.as_secs_f64()
            );
        }
    }
    Ok(())
}
