//! Multi-turn KV-cache reuse on real `.pte` programs (SDAR and Fast-dLLM v2, fp32 and int8,
//! contract 1 and 2, XNNPACK and portable, and the bundled model): a chat engine that keeps its
//! cache between turns returns exactly the tokens of a fresh engine on the whole transcript, and
//! skips exactly the prompt blocks the block arithmetic says are final in the cache.
#![cfg(feature = "pte")]

use diffulex_edge::runtime::sampler::{BlockSampler, FastdLLMV2Sampler, SDARSampler, SdarStrategy};
use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, ModelType};
use std::path::PathBuf;

fn path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn fixture(name: &str) -> PathBuf {
    path(&format!("tests/fixtures/pte/{name}.pte"))
}

/// Deterministic pseudo-random prompt ids in `low..high` (never the mask, below `low`).
fn ids(seed: u64, len: usize, low: i64, high: i64) -> Vec<i64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            low + (state % (high - low) as u64) as i64
        })
        .collect()
}

/// Prompt tokens a turn may skip, computed from lengths alone: the previous turn's canvas has
/// final K/V for every whole block before the block holding its last returned token (that block
/// was last written by a denoising forward, with masks in it), and the new prompt's prefill can
/// skip at most its own whole blocks (Fast-dLLM v2 re-feeds the last block of a block-aligned
/// prompt, whose last row gives the first token).
fn expected_reuse(
    family: Family,
    block: usize,
    previous_prompt: usize,
    previous_answer: usize,
    prompt: usize,
) -> usize {
    if previous_answer == 0 {
        return 0;
    }
    let last_block_start = (previous_prompt + previous_answer - 1) / block * block;
    let prefill_end = match family {
        Family::FastDllmV2 if prompt.is_multiple_of(block) => prompt - block,
        Family::FastDllmV2 if prompt < block => 0,
        _ => prompt / block * block,
    };
    last_block_start.min(prefill_end)
}

struct Turns {
    /// Prompt tokens skipped per turn (the first is always 0).
    reused: Vec<usize>,
    /// Prompt lengths per turn.
    prompts: Vec<usize>,
}

/// Runs a chat of `users.len()` turns on one engine with reuse, checking every turn against a
/// second engine that prefills the whole transcript, and the skipped count against
/// [`expected_reuse`].
fn chat(
    model: &PathBuf,
    max_seq_len: usize,
    users: &[Vec<i64>],
    configs: &[DiffusionGenerationConfig],
) -> Turns {
    let mut engine = DiffusionEngine::from_pte(model, ModelType::Auto, max_seq_len)
        .unwrap()
        .with_kv_reuse(true);
    let mut fresh = DiffusionEngine::from_pte(model, ModelType::Auto, max_seq_len).unwrap();
    let (family, block) = (engine.family(), engine.metadata().block_size);
    let mut transcript: Vec<i64> = Vec::new();
    let mut turns = Turns {
        reused: vec![],
        prompts: vec![],
    };
    let mut previous: Option<(usize, usize)> = None;
    for (turn, user) in users.iter().enumerate() {
        transcript.extend_from_slice(user);
        let config = configs[turn % configs.len()].clone();
        let reused_out = engine.generate(&transcript, &config).unwrap();
        fresh.reset_kv_cache();
        let fresh_out = fresh.generate(&transcript, &config).unwrap();
        let label = format!(
            "{} turn {turn}, prompt {}",
            model.display(),
            transcript.len()
        );
        assert_eq!(reused_out.tokens, fresh_out.tokens, "{label}");
        assert_eq!(reused_out.stop_reason, fresh_out.stop_reason, "{label}");
        assert_eq!(fresh_out.stats.reused_prompt_tokens, 0);
        let expected = previous.map_or(0, |(prompt, answer)| {
            expected_reuse(family, block, prompt, answer, transcript.len())
        });
        assert_eq!(reused_out.stats.reused_prompt_tokens, expected, "{label}");
        turns.reused.push(reused_out.stats.reused_prompt_tokens);
        turns.prompts.push(transcript.len());
        println!(
            "{label}: prefilled {} of {} prompt tokens (skipped {}); fresh prefill forwards {}, reused {}",
            transcript.len() - reused_out.stats.reused_prompt_tokens,
            transcript.len(),
            reused_out.stats.reused_prompt_tokens,
            fresh_out.stats.prefill_forwards,
            reused_out.stats.prefill_forwards,
        );
        previous = Some((transcript.len(), reused_out.tokens.len()));
        transcript.extend_from_slice(&reused_out.tokens);
    }
    turns
}

fn sdar_configs() -> Vec<DiffusionGenerationConfig> {
    let greedy = SDARSampler {
        strategy: SdarStrategy::LowConfidenceStatic,
        ..SDARSampler::new(0.9, 0.0)
    };
    vec![
        DiffusionGenerationConfig::new(13).with_sampler(greedy),
        DiffusionGenerationConfig::new(9)
            .with_seed(7)
            .with_sampler(SDARSampler::new(0.5, 1.0)),
        DiffusionGenerationConfig::new(16).with_sampler(SDARSampler::new(0.9, 0.0)),
    ]
}

fn fast_dllm_configs() -> Vec<DiffusionGenerationConfig> {
    vec![
        DiffusionGenerationConfig::new(40).with_sampler(FastdLLMV2Sampler::new(0.9, 0.0)),
        DiffusionGenerationConfig::new(21)
            .with_seed(3)
            .with_sampler(FastdLLMV2Sampler::new(0.95, 1.0)),
    ]
}

/// Users' turns of assorted lengths (aligned and not), ids in `4..512`.
fn users(seed: u64, lengths: &[usize]) -> Vec<Vec<i64>> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| ids(seed + i as u64, len, 4, 512))
        .collect()
}

#[test]
fn sdar_fixtures_reuse_gives_the_fresh_tokens() {
    for name in [
        "sdar_cached",
        "sdar_cached_rows",
        "sdar_cached_int8",
        "sdar_cached_portable",
    ] {
        for (seed, lengths) in [
            (1, &[9, 5, 3, 12][..]),
            (2, &[4, 1, 8, 2]),
            (3, &[2, 7, 4, 6]),
        ] {
            let turns = chat(&fixture(name), 256, &users(seed, lengths), &sdar_configs());
            assert!(
                turns.reused[1..].iter().all(|&r| r > 0),
                "{:?}",
                turns.reused
            );
        }
    }
}

#[test]
fn fast_dllm_v2_fixtures_reuse_gives_the_fresh_tokens() {
    for name in ["fast_dllm_v2_cached", "fast_dllm_v2_cached_rows"] {
        for (seed, lengths) in [(1, &[40, 5, 3][..]), (2, &[32, 23, 7]), (3, &[3, 30, 9])] {
            let turns = chat(
                &fixture(name),
                256,
                &users(seed, lengths),
                &fast_dllm_configs(),
            );
            assert!(turns.reused[2] > 0, "{:?}", turns.reused);
        }
    }
}

/// With the sub-block cache, a forward over one sub-block starts inside a block: the record of
/// what the cache holds must drop that block, and reuse must still give the fresh tokens.
#[test]
fn fast_dllm_v2_sub_block_cache_reuse_gives_the_fresh_tokens() {
    let configs: Vec<DiffusionGenerationConfig> = fast_dllm_configs()
        .into_iter()
        .map(|config| {
            let sampler = match config.sampler.clone() {
                Some(BlockSampler::FastdLLMV2(sampler)) => sampler,
                other => panic!("{other:?}"),
            };
            config.with_sampler(
                sampler
                    .with_sub_block_cache(true)
                    .with_min_tokens_per_step(2),
            )
        })
        .collect();
    for (seed, lengths) in [(1, &[40, 5, 3][..]), (2, &[32, 23, 7]), (3, &[3, 30, 9])] {
        let turns = chat(
            &fixture("fast_dllm_v2_cached_rows"),
            256,
            &users(seed, lengths),
            &configs,
        );
        assert!(turns.reused[2] > 0, "{:?}", turns.reused);
    }
}

#[test]
fn bundled_model_reuse_gives_the_fresh_tokens() {
    // "123+45=" style turns: digits 4-13, '+' 14, '=' 15; the answers end with EOS (1).
    let digits = |text: &str| -> Vec<i64> {
        text.bytes()
            .map(|b| match b {
                b'+' => 14,
                b'=' => 15,
                digit => (digit - b'0') as i64 + 4,
            })
            .collect()
    };
    let users: Vec<Vec<i64>> = ["123+45=", "7+8=", "250+250=", "9+90="]
        .iter()
        .map(|t| digits(t))
        .collect();
    let greedy = SDARSampler {
        strategy: SdarStrategy::LowConfidenceStatic,
        ..SDARSampler::new(0.9, 0.0)
    };
    let configs = [
        DiffusionGenerationConfig::new(6).with_sampler(greedy),
        DiffusionGenerationConfig::new(6).with_sampler(SDARSampler::new(0.9, 0.0)),
    ];
    let turns = chat(&path("models/default/model.pte"), 64, &users, &configs);
    assert!(
        turns.reused[1..].iter().all(|&r| r > 0),
        "{:?}",
        turns.reused
    );
}

/// The measurement behind making reuse exact: the logits of a block decoded after K/V written
/// block by block (as a chat's turns write them) against the same block after one prefill of
/// all the blocks before it. They are bit-identical on every cached fixture and the bundled
/// model (x86_64, XNNPACK and portable, fp32 and int8), which is why reuse is exact.
#[test]
fn blockwise_and_one_shot_prefill_give_the_same_logits() {
    use diffulex_edge::runtime::{DiffusionModel, PteModel};
    let models = [
        "sdar_cached",
        "sdar_cached_rows",
        "sdar_cached_int8",
        "sdar_cached_portable",
        "fast_dllm_v2_cached",
        "fast_dllm_v2_cached_rows",
    ]
    .map(fixture)
    .into_iter()
    .chain([path("models/default/model.pte")]);
    for name in models {
        let mut one_shot = PteModel::load(&name).unwrap();
        let mut blockwise = PteModel::load(&name).unwrap();
        let meta = one_shot.metadata().clone();
        let block = meta.block_size;
        let high = meta.vocab_size as i64;
        let tokens = ids(11, 6 * block, 4.min(high - 1), high);
        let prefix = 5 * block;
        one_shot.forward(&tokens[..prefix], Some(0)).unwrap();
        for start in (0..prefix).step_by(block) {
            // Two blocks at a time from a block boundary, as SDAR's deferred commit feeds them.
            let end = (start + 2 * block).min(prefix);
            blockwise.forward(&tokens[start..end], Some(start)).unwrap();
        }
        let next = &tokens[prefix..];
        let rows = |view: diffulex_edge::runtime::LogitsView<'_>| -> Vec<f32> {
            (0..view.rows())
                .flat_map(|r| view.row(r).to_vec())
                .collect()
        };
        let want = rows(one_shot.forward(next, Some(prefix)).unwrap());
        let got = rows(blockwise.forward(next, Some(prefix)).unwrap());
        let max_diff = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{}: max |logit difference| {max_diff:e}", name.display());
        assert_eq!(got, want, "{}", name.display());
    }
}
