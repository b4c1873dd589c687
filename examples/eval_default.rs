//! Exact-match accuracy and decoding parallelism of the bundled default model on its 500
//! held-out addition problems, for greedy and threshold decoding. The figures in BENCHMARKS.md
//! come from:
//!
//! ```text
//! cargo run --release --example eval_default
//! ```

use diffulex_edge::runtime::sampler::{SDARSampler, SdarStrategy};
use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
use diffulex_edge::text::TextTokenizer;
use std::path::Path;
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Problem {
    prompt: String,
    answer: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tok = TextTokenizer::from_file(root.join("models/default/tokenizer.json"))?;
    let problems: Vec<Problem> = std::fs::read_to_string(root.join("training/default_eval.jsonl"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let modes = [
        (
            "greedy (low_confidence_static, 1 token/step)",
            SDARSampler {
                strategy: SdarStrategy::LowConfidenceStatic,
                ..SDARSampler::new(0.9, 0.0)
            },
        ),
        (
            "threshold (low_confidence_dynamic, 0.9)",
            SDARSampler::new(0.9, 0.0),
        ),
    ];
    println!(
        "| mode | exact match | tokens / denoising forward | tokens / forward (all) | tokens/s |"
    );
    println!("|---|---|---|---|---|");
    for (name, sampler) in modes {
        let mut engine =
            DiffusionEngine::from_pte(root.join("models/default/model.pte"), ModelType::Auto, 64)?;
        let config = DiffusionGenerationConfig::new(8).with_sampler(sampler);
        let (mut correct, mut committed, mut decode_fw, mut all_fw, mut generated) =
            (0, 0, 0, 0, 0);
        let mut time = Duration::ZERO;
        for p in &problems {
            let prompt = tok.encode(&p.prompt, false)?;
            let out = engine.generate(&prompt, &config)?;
            correct += usize::from(tok.decode(&out.tokens, true)? == p.answer);
            committed += out.stats.tokens_committed;
            decode_fw += out.stats.decode_forwards;
            all_fw += out.stats.forwards;
            generated += out.stats.tokens_generated;
            time += out.stats.total_time;
        }
        println!(
            "| {name} | {correct}/{} = {:.1}% | {:.2} | {:.2} | {:.0} |",
            problems.len(),
            100.0 * correct as f64 / problems.len() as f64,
            committed as f64 / decode_fw as f64,
            committed as f64 / all_fw as f64,
            generated as f64 / time.as_secs_f64()
        );
    }
    Ok(())
}
