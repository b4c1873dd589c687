//! Scoring the rows of a step on several threads gives exactly the tokens of one thread.
//!
//! The fixtures' vocabularies are too small to reach the parallel path (it starts at 2^18
//! logits per step), so this decodes with the synthetic HashModel at a 16,384-token
//! vocabulary with 32-token blocks (a step with 16 or more masked rows goes parallel, later
//! steps of a block stay sequential), once scoring on the calling thread only
//! (`set_scoring_threads(1)`) and once on ExecuTorch's thread pool (any other setting; the pool
//! has one thread per core), for every family's greedy modes. The one-thread path itself is checked against the Python reference
//! by tests/engine_parity.rs.

use diffulex_edge::runtime::parallel::set_scoring_threads;
use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDASampler, SDARSampler,
    SdarStrategy,
};
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata,
};

const VOCAB: usize = 16_384;

fn decode(family: Family, sampler: &BlockSampler, threads: usize) -> Vec<i64> {
    let block = 32;
    let mut meta = ModelMetadata::for_family(family, 128, VOCAB, VOCAB as i64 - 1, vec![1], block);
    let cached = matches!(family, Family::Sdar | Family::FastDllmV2);
    meta.use_kv_cache = cached;
    let mut engine = DiffusionEngine::from_model(HashModel::new(meta, 9), family, cached)
        .expect("engine over the hash model");
    let cfg = DiffusionGenerationConfig::new(32)
        .with_sampler(sampler.clone())
        .with_stop_ids(vec![]);
    let prompt: Vec<i64> = (100..117).collect();
    set_scoring_threads(threads);
    let out = engine.generate(&prompt, &cfg).expect("generation");
    set_scoring_threads(0);
    out.tokens
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
        let one = decode(family, &sampler, 1);
        let four = decode(family, &sampler, 4);
        assert_eq!(one.len(), 32, "{family} {sampler:?}");
        assert_eq!(one, four, "{family} {sampler:?}");
    }
}
