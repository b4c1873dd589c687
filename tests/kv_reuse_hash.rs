//! KV-cache reuse between generations, on the hash model (no ExecuTorch needed). The hash
//! model's logits fold in every cached token a query may see, so a stale or misplaced cache
//! entry changes the tokens: reuse must give exactly a fresh engine's tokens on the whole
//! transcript, and skip exactly the blocks the block arithmetic says are final in the cache.

use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamSampler, FastdLLMV2Sampler, LLaDASampler, SDARSampler, SdarStrategy,
};
use diffulex_edge::runtime::{
    Control, DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, Family,
    GenerationOutput, HashModel, LogitsView, ModelMetadata, Rng, StepEvent, StepFn,
};

const VOCAB: usize = 32;
const MASK: i64 = 31;
const EOS: i64 = 1;

fn meta(family: Family, block: usize, cached: bool) -> ModelMetadata {
    let mut meta = ModelMetadata::for_family(family, 128, VOCAB, MASK, vec![EOS], block);
    meta.use_kv_cache = cached && family.block_causal();
    meta
}

fn engine(family: Family, block: usize, reuse: bool) -> DiffusionEngine {
    let meta = meta(family, block, true);
    let cached = meta.use_kv_cache;
    DiffusionEngine::from_model(HashModel::new(meta, 41), family, cached)
        .unwrap()
        .with_kv_reuse(reuse)
}

/// Ids in `2..MASK` (never the mask or EOS).
fn ids(rng: &mut Rng, len: usize) -> Vec<i64> {
    (0..len)
        .map(|_| 2 + (rng.next_f64() * (MASK - 2) as f64) as i64)
        .collect()
}

/// What a fresh engine (nothing in its cache) returns for `prompt`.
fn fresh(
    family: Family,
    block: usize,
    prompt: &[i64],
    config: &DiffusionGenerationConfig,
) -> GenerationOutput {
    engine(family, block, false)
        .generate(prompt, config)
        .unwrap()
}

/// Prompt tokens a turn may skip, from lengths alone: every whole block before the block that
/// holds the previous turn's last returned token is final in the cache (that block was last
/// written while it held masks), capped at the new prompt's own prefill (Fast-dLLM v2 re-feeds
/// the last block of an aligned prompt: its last row gives the first token).
fn expected_reuse(
    family: Family,
    block: usize,
    previous_end: usize,
    common: usize,
    prompt: usize,
) -> usize {
    let final_blocks = previous_end.saturating_sub(1) / block * block;
    let prefill_end = match family {
        Family::FastDllmV2 if prompt.is_multiple_of(block) => prompt - block,
        _ => prompt / block * block,
    };
    final_blocks.min(common / block * block).min(prefill_end)
}

fn sampler(family: Family, rng: &mut Rng) -> BlockSampler {
    let temperature = if rng.next_f64() < 0.5 { 0.0 } else { 1.0 };
    match family {
        Family::Sdar => SDARSampler {
            strategy: [
                SdarStrategy::LowConfidenceDynamic,
                SdarStrategy::LowConfidenceStatic,
                SdarStrategy::Sequential,
            ][(rng.next_f64() * 3.0) as usize],
            ..SDARSampler::new(0.3, temperature)
        }
        .into(),
        _ => FastdLLMV2Sampler::new(0.3, temperature).into(),
    }
}

#[test]
fn chat_turns_reuse_exactly_the_final_blocks_and_give_the_fresh_tokens() {
    let mut rng = Rng::new(2026);
    let mut reused_total = 0;
    for case in 0..60 {
        let (family, block) = match case % 4 {
            0 => (Family::Sdar, 4),
            1 => (Family::Sdar, 1 + (rng.next_f64() * 8.0) as usize),
            2 => (Family::FastDllmV2, 8),
            _ => (Family::FastDllmV2, 4),
        };
        let mut chat = engine(family, block, true);
        let mut transcript = Vec::new();
        let mut previous_end = 0;
        for turn in 0..4 {
            let user_len = 1 + (rng.next_f64() * 12.0) as usize;
            transcript.extend(ids(&mut rng, user_len));
            let config = DiffusionGenerationConfig::new(1 + (rng.next_f64() * 14.0) as usize)
                .with_seed(case * 10 + turn)
                .with_sampler(sampler(family, &mut rng));
            if transcript.len() + config.max_new_tokens + block > 128 {
                break;
            }
            let out = chat.generate(&transcript, &config).unwrap();
            let want = fresh(family, block, &transcript, &config);
            let label = format!("case {case} {family:?} block {block} turn {turn}");
            assert_eq!(out.tokens, want.tokens, "{label}");
            assert_eq!(out.stop_reason, want.stop_reason, "{label}");
            let expected = if turn == 0 {
                0
            } else {
                expected_reuse(
                    family,
                    block,
                    previous_end,
                    transcript.len(),
                    transcript.len(),
                )
            };
            assert_eq!(out.stats.reused_prompt_tokens, expected, "{label}");
            reused_total += expected;
            // Reuse only removes prefill work: one prefill forward at most, fewer when all of
            // the prompt's blocks are cached.
            assert!(
                out.stats.prefill_forwards <= want.stats.prefill_forwards,
                "{label}"
            );
            previous_end = transcript.len() + out.tokens.len();
            transcript.extend(&out.tokens);
        }
    }
    assert!(
        reused_total > 500,
        "the cases exercise reuse: {reused_total}"
    );
}

#[test]
fn a_prompt_that_differs_in_its_first_block_reuses_nothing() {
    for (family, block) in [(Family::Sdar, 4), (Family::FastDllmV2, 8)] {
        let mut chat = engine(family, block, true);
        let config = DiffusionGenerationConfig::new(12).with_stop_ids(vec![]);
        let prompt: Vec<i64> = (2..22).collect();
        chat.generate(&prompt, &config).unwrap();
        let mut other = prompt.clone();
        other[block - 1] = 30;
        let out = chat.generate(&other, &config).unwrap();
        assert_eq!(out.stats.reused_prompt_tokens, 0, "{family:?}");
        assert_eq!(out.tokens, fresh(family, block, &other, &config).tokens);
        // A difference in the second block keeps the first (after the original again).
        chat.generate(&prompt, &config).unwrap();
        let mut second = prompt.clone();
        second[block] = 30;
        let out = chat.generate(&second, &config).unwrap();
        assert_eq!(out.stats.reused_prompt_tokens, block, "{family:?}");
        assert_eq!(out.tokens, fresh(family, block, &second, &config).tokens);
    }
}

#[test]
fn the_same_prompt_twice_skips_its_whole_prefill() {
    for (family, block, prompt_len, skipped) in [
        (Family::Sdar, 4, 10, 8),
        (Family::Sdar, 4, 12, 12),
        (Family::FastDllmV2, 8, 20, 16),
        // An aligned Fast-dLLM v2 prompt re-feeds its last block (its last row is read).
        (Family::FastDllmV2, 8, 24, 16),
    ] {
        let mut chat = engine(family, block, true);
        let prompt: Vec<i64> = (0..prompt_len as i64).map(|i| 2 + i % 29).collect();
        let config = DiffusionGenerationConfig::new(9).with_stop_ids(vec![]);
        let first = chat.generate(&prompt, &config).unwrap();
        let second = chat.generate(&prompt, &config).unwrap();
        assert_eq!(second.tokens, first.tokens);
        assert_eq!(
            second.stats.reused_prompt_tokens, skipped,
            "{family:?} {prompt_len}"
        );
        let prefills = usize::from(
            skipped < prompt_len / block * block
                || family == Family::FastDllmV2 && prompt_len % block == 0,
        );
        assert_eq!(
            second.stats.prefill_forwards, prefills,
            "{family:?} {prompt_len}"
        );
    }
}

#[test]
fn a_shorter_prompt_after_a_longer_one_reuses_its_common_blocks() {
    for (family, block) in [(Family::Sdar, 4), (Family::FastDllmV2, 8)] {
        let mut chat = engine(family, block, true);
        let config = DiffusionGenerationConfig::new(16).with_stop_ids(vec![]);
        let long: Vec<i64> = (0..40).map(|i| 2 + i % 29).collect();
        chat.generate(&long, &config).unwrap();
        for short_len in [3, block, block + 1, 2 * block + 3, 30] {
            let short = &long[..short_len];
            let out = chat.generate(short, &config).unwrap();
            assert_eq!(out.tokens, fresh(family, block, short, &config).tokens);
            // Regenerating wrote this prompt's blocks again; restore the long one.
            chat.generate(&long, &config).unwrap();
        }
        // Back to the long one: its prompt blocks are all still final.
        let out = chat.generate(&long, &config).unwrap();
        assert_eq!(
            out.stats.reused_prompt_tokens,
            40 / block * block
                - if 40 % block == 0 && family == Family::FastDllmV2 {
                    block
                } else {
                    0
                }
        );
    }
}

#[test]
fn a_cancelled_generation_leaves_a_cache_the_next_turn_can_trust() {
    let mut rng = Rng::new(7);
    for case in 0..40 {
        let (family, block) = if case % 2 == 0 {
            (Family::Sdar, 4)
        } else {
            (Family::FastDllmV2, 8)
        };
        let mut chat = engine(family, block, true);
        let config = DiffusionGenerationConfig::new(24).with_stop_ids(vec![]);
        let mut transcript = ids(&mut rng, 5 + case % 11);
        chat.generate(&transcript, &config).unwrap();
        transcript.extend(ids(&mut rng, 3));
        // Stop after a few steps: blocks in flight were written with masks in them.
        let stop_after = 1 + case % 9;
        let mut steps = 0;
        let mut stopper = StepFn(|_: &StepEvent<'_>| {
            steps += 1;
            if steps >= stop_after {
                Control::Stop
            } else {
                Control::Continue
            }
        });
        let cancelled = chat
            .generate_with(&transcript, &config, &mut stopper)
            .unwrap();
        transcript.extend(&cancelled.tokens);
        transcript.extend(ids(&mut rng, 4));
        let out = chat.generate(&transcript, &config).unwrap();
        assert_eq!(
            out.tokens,
            fresh(family, block, &transcript, &config).tokens,
            "case {case}"
        );
    }
}

#[test]
fn seeds_and_samplers_may_change_between_turns() {
    // The K/V depend only on the ids, so a turn sampled at T = 1 with one seed leaves a cache
    // a greedy turn with another seed reuses.
    let mut chat = engine(Family::Sdar, 4, true);
    let mut transcript: Vec<i64> = (2..13).collect();
    let sampled = DiffusionGenerationConfig::new(10)
        .with_seed(99)
        .with_stop_ids(vec![])
        .with_sampler(SDARSampler::new(0.5, 1.0));
    let out = chat.generate(&transcript, &sampled).unwrap();
    transcript.extend(&out.tokens);
    transcript.extend([20, 21, 22]);
    let greedy = DiffusionGenerationConfig::new(10)
        .with_seed(3)
        .with_sampler(SDARSampler::new(0.9, 0.0));
    let out = chat.generate(&transcript, &greedy).unwrap();
    assert_eq!(out.stats.reused_prompt_tokens, 20); // 11 + 10 tokens: blocks before 20 are final
    assert_eq!(
        out.tokens,
        fresh(Family::Sdar, 4, &transcript, &greedy).tokens
    );
}

#[test]
fn reset_forgets_the_cache() {
    let mut chat = engine(Family::FastDllmV2, 8, true);
    let prompt: Vec<i64> = (2..22).collect();
    let config = DiffusionGenerationConfig::new(8);
    chat.generate(&prompt, &config).unwrap();
    assert_eq!(&chat.kv_cached_tokens()[..16], &prompt[..16]);
    chat.reset_kv_cache();
    assert!(chat.kv_cached_tokens().is_empty());
    let out = chat.generate(&prompt, &config).unwrap();
    assert_eq!(
        (out.stats.reused_prompt_tokens, out.stats.prefill_forwards),
        (0, 1)
    );
}

#[test]
fn without_reuse_or_without_a_cache_nothing_is_skipped() {
    let prompt: Vec<i64> = (2..22).collect();
    let config = DiffusionGenerationConfig::new(8);
    // A cached model driven without its cache, and an engine that does not reuse.
    for (family, block) in [(Family::Sdar, 4), (Family::FastDllmV2, 8)] {
        let uncached = DiffusionEngine::from_model(
            HashModel::new(meta(family, block, true), 41),
            family,
            false,
        )
        .unwrap()
        .with_kv_reuse(true);
        for mut e in [uncached, engine(family, block, false)] {
            let first = e.generate(&prompt, &config).unwrap();
            let second = e.generate(&prompt, &config).unwrap();
            assert_eq!(second.tokens, first.tokens);
            assert_eq!(second.stats.reused_prompt_tokens, 0);
            assert_eq!(second.stats.prefill_forwards, first.stats.prefill_forwards);
        }
    }
    // The bidirectional families never cache; reuse on them is accepted and changes nothing.
    for (family, sampler) in [
        (Family::Llada, BlockSampler::from(LLaDASampler::default())),
        (Family::Dream, BlockSampler::from(DreamSampler::default())),
    ] {
        let mut e =
            DiffusionEngine::from_model(HashModel::new(meta(family, 0, false), 41), family, false)
                .unwrap()
                .with_kv_reuse(true);
        let config = DiffusionGenerationConfig::new(8).with_sampler(sampler);
        let first = e.generate(&prompt, &config).unwrap();
        let second = e.generate(&prompt, &config).unwrap();
        assert_eq!(
            (second.tokens, second.stats.reused_prompt_tokens),
            (first.tokens, 0)
        );
        assert!(e.kv_cached_tokens().is_empty());
    }
}

/// A hash model whose `fail_at`-th forward writes its tokens into the cache and then fails,
/// as a backend error after the cache write would.
struct FailingModel {
    inner: HashModel,
    forwards: usize,
    fail_at: usize,
}

impl DiffusionModel for FailingModel {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }

    fn forward(
        &mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
    ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
        self.forwards += 1;
        if self.forwards == self.fail_at {
            self.inner.forward(tokens, input_pos)?;
            return Err(EngineError::ForwardArgs("injected failure".into()));
        }
        self.inner.forward(tokens, input_pos)
    }
}

#[test]
fn a_failed_forward_leaves_nothing_it_may_have_overwritten_remembered() {
    for (family, block) in [(Family::Sdar, 4), (Family::FastDllmV2, 8)] {
        for fail_at in 1..6 {
            let config = DiffusionGenerationConfig::new(20).with_stop_ids(vec![]);
            let mut transcript: Vec<i64> = (2..19).collect();
            // Arm the failure in the second generation, after the first one's forwards.
            let first_forwards = fresh(family, block, &transcript, &config).stats.forwards;
            let model = FailingModel {
                inner: HashModel::new(meta(family, block, true), 41),
                forwards: 0,
                fail_at: first_forwards + fail_at,
            };
            let mut chat = DiffusionEngine::from_model(model, family, true)
                .unwrap()
                .with_kv_reuse(true);
            let out = chat.generate(&transcript, &config).unwrap();
            transcript.extend(&out.tokens);
            transcript.extend([5, 6, 7]);
            // The next generation hits the failure in one of its forwards.
            let failed = chat.generate(&transcript, &config);
            assert!(failed.is_err(), "{family:?} fail_at {fail_at}");
            transcript.extend([8]);
            let out = chat.generate(&transcript, &config).unwrap();
            assert_eq!(
                out.tokens,
                fresh(family, block, &transcript, &config).tokens,
                "{family:?} fail_at {fail_at}"
            );
        }
    }
}

#[test]
fn a_generation_without_reuse_drops_what_was_remembered() {
    // Its forwards overwrite the cache without being tracked, so turning reuse back on must
    // start from nothing.
    let prompt: Vec<i64> = (2..22).collect();
    let config = DiffusionGenerationConfig::new(8).with_stop_ids(vec![]);
    let mut e = engine(Family::Sdar, 4, true);
    e.generate(&prompt, &config).unwrap();
    assert!(!e.kv_cached_tokens().is_empty());
    let mut e = e.with_kv_reuse(false);
    let other: Vec<i64> = (3..23).collect();
    e.generate(&other, &config).unwrap();
    assert!(e.kv_cached_tokens().is_empty());
    let mut e = e.with_kv_reuse(true);
    let out = e.generate(&prompt, &config).unwrap();
    assert_eq!(out.stats.reused_prompt_tokens, 0);
    assert_eq!(out.tokens, fresh(Family::Sdar, 4, &prompt, &config).tokens);
}
