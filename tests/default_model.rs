//! The bundled default model (models/default): the Rust engine reproduces the Python SDAR
//! reference decoder's tokens on all 500 held-out addition problems (goldens from
//! tools/make_default_goldens.py), and its exact-match accuracy meets the product targets:
//! at least 95% greedy, and threshold decoding losing at most 1 point.
#![cfg(feature = "pte")]

use diffulex_edge::runtime::sampler::{SDARSampler, SdarStrategy};
use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
use diffulex_edge::text::TextTokenizer;
use serde_json::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sampler(mode: &str) -> SDARSampler {
    match mode {
        "greedy_static" => SDARSampler {
            strategy: SdarStrategy::LowConfidenceStatic,
            ..SDARSampler::new(0.9, 0.0)
        },
        "dynamic_0.9" => SDARSampler::new(0.9, 0.0),
        other => panic!("unknown mode {other} in the golden file"),
    }
}

struct ModeResult {
    correct: usize,
    mismatches: Vec<String>,
    forwards: usize,
}

fn run_mode(golden: &Value, mode: &str) -> ModeResult {
    let model = root().join("models/default/model.pte");
    let mut engine = DiffusionEngine::from_pte(&model, ModelType::Auto, 64).expect("bundled model");
    let tok = TextTokenizer::from_file(root().join("models/default/tokenizer.json")).unwrap();
    let n = golden["max_new_tokens"].as_u64().unwrap() as usize;
    let config = DiffusionGenerationConfig::new(n).with_sampler(sampler(mode));
    let mut result = ModeResult {
        correct: 0,
        mismatches: Vec::new(),
        forwards: 0,
    };
    for p in golden["problems"].as_array().unwrap() {
        let text = p["prompt"].as_str().unwrap();
        let prompt = tok.encode(text, false).unwrap();
        let expected_prompt: Vec<i64> = serde_json::from_value(p["prompt_ids"].clone()).unwrap();
        assert_eq!(prompt, expected_prompt, "tokenization of {text:?}");
        let out = engine.generate(&prompt, &config).unwrap();
        result.forwards += out.stats.forwards;
        let expected: Vec<i64> = serde_json::from_value(p["expected"][mode].clone()).unwrap();
        if out.tokens != expected {
            result
                .mismatches
                .push(format!("{text} rust={:?} python={expected:?}", out.tokens));
        }
        let answer = tok.decode(&out.tokens, true).unwrap();
        result.correct += usize::from(answer == p["answer"].as_str().unwrap());
    }
    result
}

#[test]
fn default_model_matches_reference_and_meets_accuracy_targets() {
    let path = root().join("tests/fixtures/goldens/default_model.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let total = golden["problems"].as_array().unwrap().len();
    assert_eq!(total, 500, "the held-out set has 500 problems");

    let greedy = run_mode(&golden, "greedy_static");
    let dynamic = run_mode(&golden, "dynamic_0.9");
    assert!(
        greedy.mismatches.is_empty() && dynamic.mismatches.is_empty(),
        "Rust and Python disagree: greedy {:?} dynamic {:?}",
        greedy.mismatches,
        dynamic.mismatches
    );
    // The same decoding loop, not only the same tokens: as many forwards as the Python twin
    // (which also folds each block's KV commit into the next block's first forward).
    for (mode, r) in [("greedy_static", &greedy), ("dynamic_0.9", &dynamic)] {
        let want = golden["summary"][mode]["forwards"].as_u64().unwrap() as usize;
        assert_eq!(r.forwards, want, "{mode}: forwards, Rust vs Python");
    }
    let acc = |r: &ModeResult| r.correct as f64 / total as f64;
    assert!(acc(&greedy) >= 0.95, "greedy accuracy {}", acc(&greedy));
    assert!(
        acc(&dynamic) >= acc(&greedy) - 0.01,
        "threshold decoding loses more than 1 point: {} vs {}",
        acc(&dynamic),
        acc(&greedy)
    );
}
