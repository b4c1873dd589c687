//! Fast-dLLM v2's sub-block cache (the official `use_block_cache`) on the contract-3 fixture:
//! what it feeds, and what the engine refuses. Its tokens are checked against the reference
//! decoder's goldens in tests/engine_parity.rs.
#![cfg(feature = "pte")]

use diffulex_edge::runtime::sampler::FastdLLMV2Sampler;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, EngineError, Family, ModelType,
};

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/pte/{name}.pte",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn engine(name: &str, use_kv_cache: bool) -> DiffusionEngine {
    let model = diffulex_edge::runtime::PteModel::load(fixture(name)).unwrap();
    DiffusionEngine::from_model(model, ModelType::Family(Family::FastDllmV2), use_kv_cache).unwrap()
}

/// With the cache, the forwards that finish a sub-block feed its 8 tokens instead of the
/// block's 32: far fewer tokens fed for as many denoising forwards (one token per forward at
/// threshold 1, with or without the cache).
#[test]
fn the_sub_block_cache_feeds_only_the_sub_block() {
    let prompt: Vec<i64> = (10..45).collect();
    let run = |sub_block_cache: bool| {
        let sampler = FastdLLMV2Sampler::new(1.0, 0.0).with_sub_block_cache(sub_block_cache);
        let config = DiffusionGenerationConfig::new(64)
            .with_sampler(sampler)
            .with_stop_ids(vec![]);
        engine("fast_dllm_v2_cached_rows", true)
            .generate(&prompt, &config)
            .unwrap()
            .stats
    };
    let (plain, cached) = (run(false), run(true));
    assert_eq!(plain.decode_forwards, cached.decode_forwards);
    assert_eq!(plain.tokens_committed, cached.tokens_committed);
    // Each forward that finishes a sub-block alone feeds 8 tokens instead of the block's 32;
    // one commit per forward leaves every sub-block one full forward and then one per masked
    // position left, so most forwards are of the sub-block alone.
    let saved = plain.tokens_fed - cached.tokens_fed;
    let sub_block_only = saved / (32 - 8);
    assert_eq!(saved % (32 - 8), 0, "{plain:?} vs {cached:?}");
    assert!(
        sub_block_only * 2 >= cached.decode_forwards && sub_block_only < cached.decode_forwards,
        "{sub_block_only} of {} forwards fed the sub-block alone",
        cached.decode_forwards
    );
}

/// Asking for the cache on a program without it (contract 1, or the engine told not to use the
/// KV cache) is an error that names it, before any forward.
#[test]
fn the_sub_block_cache_needs_a_contract_3_program() {
    let config = DiffusionGenerationConfig::new(8)
        .with_sampler(FastdLLMV2Sampler::default().with_sub_block_cache(true));
    for (name, use_kv_cache) in [
        ("fast_dllm_v2_cached", true),
        ("fast_dllm_v2_cached_rows", false),
    ] {
        let err = engine(name, use_kv_cache)
            .generate(&[10, 11, 12], &config)
            .unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::CacheUnavailable {
                    mode: "sub-block",
                    ..
                }
            ),
            "{name}: {err}"
        );
    }
    let zero = DiffusionGenerationConfig::new(8)
        .with_sampler(FastdLLMV2Sampler::default().with_min_tokens_per_step(0));
    let err = engine("fast_dllm_v2_cached_rows", true)
        .generate(&[10, 11, 12], &zero)
        .unwrap_err();
    assert!(err.to_string().contains("min_tokens_per_step"), "{err}");
}
