//! Temperatures so small that `logit / T` overflows f64 (issue 13, item 8).
//!
//! Before the fix, `--temperature 1e-310` turned every weight into `inf - inf = NaN` and the draw
//! fell through to the last candidate (the bundled model printed `=` 58 times instead of `46`),
//! and Dream's `--alg-temp 1e-310` drew no position at all. The T -> 0 limit of
//! softmax(logits / T) puts all mass on the argmax, so such a T must give the greedy tokens.
//!
//! References, both independent of the overflow path:
//! - the greedy run (temperature 0), wherever the algorithm's position choice does not depend on
//!   the temperature (SDAR's sequential strategy, LLaDA's Gumbel-max, the bundled model);
//! - the run at T = 1e-300, where `x / T` does not overflow for these logits and the unchanged
//!   arithmetic (bit-identical to the Python reference and the goldens) already yields the
//!   one-hot limit distribution, for families whose confidences use the tempered probabilities
//!   (SDAR dynamic, Fast-dLLM v2, Dream), so that the limit run commits in a different order
//!   than the T = 0 run.
#![cfg(feature = "pte")]

use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDASampler, SDARSampler,
    SdarStrategy,
};
use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
use std::path::PathBuf;

/// A family sampler at a given temperature.
type SamplerAt = Box<dyn Fn(f64) -> BlockSampler>;

const TINY: [f64; 3] = [1e-310, 5e-324, f64::MIN_POSITIVE];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(model: &str, prompt: &[i64], n: usize, sampler: impl Into<BlockSampler>) -> Vec<i64> {
    let max_seq_len = if model.starts_with("models/") {
        64
    } else {
        256
    };
    let mut engine =
        DiffusionEngine::from_pte(root().join(model), ModelType::Auto, max_seq_len).unwrap();
    let config = DiffusionGenerationConfig::new(n)
        .with_seed(11)
        .with_sampler(sampler);
    engine.generate(prompt, &config).unwrap().tokens
}

#[test]
fn bundled_model_answers_46_at_tiny_temperatures() {
    let prompt = [7, 8, 14, 9, 10, 15]; // "34+56=" as in the README; 12+34= below.
    let tok =
        diffulex_edge::text::TextTokenizer::from_file(root().join("models/default/tokenizer.json"))
            .unwrap();
    for p in [&prompt[..], &tok.encode("12+34=", false).unwrap()[..]] {
        let greedy = run(
            "models/default/model.pte",
            p,
            16,
            SDARSampler::new(0.9, 0.0),
        );
        for t in TINY {
            let got = run("models/default/model.pte", p, 16, SDARSampler::new(0.9, t));
            assert_eq!(got, greedy, "temperature {t:e}, prompt {p:?}");
        }
    }
    let ids = tok.encode("12+34=", false).unwrap();
    let out = run(
        "models/default/model.pte",
        &ids,
        16,
        SDARSampler::new(0.9, 1e-310),
    );
    assert_eq!(tok.decode(&out, true).unwrap(), "46");
}

#[test]
fn tiny_temperatures_equal_the_greedy_run_where_the_order_does_not_depend_on_t() {
    let prompt = [10, 11, 12, 13, 14];
    for model in [
        "tests/fixtures/pte/sdar_cached.pte",
        "tests/fixtures/pte/sdar_uncached.pte",
    ] {
        let s = |t: f64| SDARSampler {
            strategy: SdarStrategy::Sequential,
            top_k: Some(5),
            top_p: Some(0.9),
            ..SDARSampler::new(0.9, t)
        };
        let greedy = run(model, &prompt, 24, s(0.0));
        for t in TINY {
            assert_eq!(run(model, &prompt, 24, s(t)), greedy, "{model} T={t:e}");
        }
    }
    let s = |t: f64| LLaDASampler {
        steps: Some(16),
        block_length: Some(8),
        temperature: t,
        ..Default::default()
    };
    let greedy = run("tests/fixtures/pte/llada.pte", &prompt, 16, s(0.0));
    for t in TINY {
        assert_eq!(
            run("tests/fixtures/pte/llada.pte", &prompt, 16, s(t)),
            greedy
        );
    }
}

#[test]
fn tiny_temperatures_equal_the_non_overflowing_limit_in_every_family() {
    let prompt = [10, 11, 12, 13, 14];
    let cases: Vec<(&str, SamplerAt)> = vec![
        (
            "tests/fixtures/pte/sdar_cached.pte",
            Box::new(|t| SDARSampler::new(0.9, t).into()),
        ),
        (
            "tests/fixtures/pte/sdar_cached_rows.pte",
            Box::new(|t| {
                SDARSampler {
                    strategy: SdarStrategy::EntropyBounded,
                    top_p: Some(0.95),
                    ..SDARSampler::new(0.9, t)
                }
                .into()
            }),
        ),
        (
            "tests/fixtures/pte/fast_dllm_v2_cached.pte",
            Box::new(|t| FastdLLMV2Sampler::new(0.9, t).into()),
        ),
        (
            "tests/fixtures/pte/dream.pte",
            Box::new(|t| {
                DreamSampler {
                    steps: Some(8),
                    temperature: t,
                    top_p: Some(0.95),
                    ..Default::default()
                }
                .into()
            }),
        ),
        (
            "tests/fixtures/pte/dream_rows.pte",
            Box::new(|t| {
                DreamSampler {
                    steps: Some(8),
                    alg: DreamAlg::MaskgitPlus,
                    temperature: t,
                    ..Default::default()
                }
                .into()
            }),
        ),
    ];
    for (model, sampler) in &cases {
        let limit = run(model, &prompt, 16, sampler(1e-300));
        assert!(!limit.is_empty(), "{model}");
        for t in TINY {
            assert_eq!(
                run(model, &prompt, 16, sampler(t)),
                limit,
                "{model} T={t:e}"
            );
        }
    }
}

#[test]
fn dream_tiny_alg_temp_commits_in_confidence_order() {
    // alg_temp -> 0: the sequential draws from softmax(confidence / alg_temp) become the
    // confidence order, i.e. the run without alg_temp. Before the fix 1e-300 left positions
    // masked (every weight but the first underflowed, so nothing more could be drawn) and 1e-310
    // committed nothing.
    let prompt = [10, 11, 12, 13, 14];
    for alg in [
        DreamAlg::Entropy,
        DreamAlg::MaskgitPlus,
        DreamAlg::TopkMargin,
    ] {
        let s = |alg_temp: Option<f64>| DreamSampler {
            steps: Some(6),
            alg,
            alg_temp,
            ..Default::default()
        };
        let top = run("tests/fixtures/pte/dream.pte", &prompt, 16, s(None));
        assert_eq!(top.len(), 16);
        for a in [1e-300, 1e-310, 5e-324] {
            let got = run("tests/fixtures/pte/dream.pte", &prompt, 16, s(Some(a)));
            assert_eq!(got, top, "{alg:?} alg_temp={a:e}");
        }
    }
}
