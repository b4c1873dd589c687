//! Scoring the rows of a step on several threads gives exactly the tokens of one thread.
//!
//! The fixtures' vocabularies are too small to reach the parallel path (it starts at 2^18
//! logits per step), so this decodes with the synthetic HashModel at a 16,384-token
//! vocabulary with 32-token blocks (a step with 16 or more masked rows goes parallel, later
//! steps of a block stay sequential), once scoring on the calling thread only
//! ([`SequentialPool`], the hash model's own), once on scoped threads of the standard library
//! that run the rows in reverse, and (with the `pte` feature) once on ExecuTorch's thread pool
//! (one thread per core), set with `DiffusionEngine::with_row_pool`, for every family's greedy
//! modes. The one-thread path itself is checked against the Python reference by
//! tests/engine_parity.rs.

use std::sync::Arc;

use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDASampler, SDARSampler,
    SdarStrategy,
};
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata,
};
use diffulex_edge::runtime::{RowPool, SequentialPool};

const VOCAB: usize = 16_384;

/// Two scoped threads, each running its half of the rows from the last to the first.
struct ScopedReversed;
impl RowPool for ScopedReversed {
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            for half in [0..n / 2, n / 2..n] {
                s.spawn(move || half.rev().for_each(f));
            }
        });
    }
}

fn decode(family: Family, sampler: &BlockSampler, pool: Arc<dyn RowPool>) -> Vec<i64> {
    let block = 32;
    let mut meta = ModelMetadata::for_family(family, 128, VOCAB, VOCAB as i64 - 1, vec![1], block);
    let cached = matches!(family, Family::Sdar | Family::FastDllmV2);
    meta.use_kv_cache = cached;
    let mut engine = DiffusionEngine::from_model(HashModel::new(meta, 9), family, cached)
        .expect("engine over the hash model")
        .with_row_pool(pool);
    let cfg = DiffusionGenerationConfig::new(32)
        .with_sampler(sampler.clone())
        .with_stop_ids(vec![]);
    let prompt: Vec<i64> = (100..117).collect();
    engine.generate(&prompt, &cfg).expect("generation").tokens
}

#[test]
fn calling_thread_and_thread_pool_give_the_same_tokens() {
    let cases: Vec<(Family, BlockSampler)> = vec![
        (
            Family::Sdar,
            SDARSampler {
                strategy: SdarStrategy::LowConfidenceDynamic,
                threshold: 0.0001,
                ..SDARSampler::default()
            }
            .into(),
        ),
        (
            Family::Sdar,
            SDARSampler {
                strategy: SdarStrategy::EntropyBounded,
                ..SDARSampler::default()
            }
            .into(),
        ),
        (
            Family::FastDllmV2,
            FastdLLMV2Sampler::new(0.0001, 0.0).into(),
        ),
        (Family::Llada, LLaDASampler::default().into()),
        (
            Family::Dream,
            DreamSampler {
                alg: DreamAlg::Entropy,
                temperature: 0.0,
                top_p: None,
                top_k: None,
                ..DreamSampler::default()
            }
            .into(),
        ),
    ];
    for (family, sampler) in cases {
        let one = decode(family, &sampler, Arc::new(SequentialPool));
        assert_eq!(one.len(), 32, "{family} {sampler:?}");
        let scoped = decode(family, &sampler, Arc::new(ScopedReversed));
        assert_eq!(one, scoped, "{family} {sampler:?}");
        #[cfg(feature = "pte")]
        {
            use diffulex_edge::runtime::ExecuTorchPool;
            let pool = decode(family, &sampler, Arc::new(ExecuTorchPool));
            assert_eq!(one, pool, "{family} {sampler:?}");
        }
    }
}
