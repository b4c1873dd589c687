//! Engine-side cost per logit: token samplers on one row, and whole diffusion decodes over a
//! model whose forward returns fixed random logits instantly, so only the engine's scoring,
//! selection and bookkeeping is measured. Vocabularies 32k and 152k (Qwen), blocks 4 and 32.
//!
//! `cargo bench --bench samplers` (add `-- --quick` for a short run). Throughput is logits
//! scored per second (`elem/s`).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use diffulex_edge::runtime::sampler::{
    BlockSampler, FastdLLMV2Sampler, GreedySampler, SDARSampler, SdarStrategy, TokenSampler,
    TopKSampler, TopPSampler,
};
use diffulex_edge::runtime::Rng;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, Family, LogitsView,
    ModelMetadata, ModelType,
};
use std::time::Duration;

const VOCABS: [usize; 2] = [32_000, 151_936];

/// Logits like a language model's: mostly noise around 0 plus a few large ones.
fn random_logits(rows: usize, vocab: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..rows * vocab)
        .map(|i| {
            let x = (rng.next_f64() * 8.0 - 4.0) as f32;
            if i % 997 == 0 {
                x + 12.0
            } else {
                x
            }
        })
        .collect()
}

/// A forward that costs nothing: the same precomputed logits every call.
struct FixedLogits {
    meta: ModelMetadata,
    logits: Vec<f32>,
}

impl DiffusionModel for FixedLogits {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn forward(
        &mut self,
        tokens: &[i64],
        _input_pos: Option<usize>,
    ) -> Result<LogitsView<'_>, EngineError> {
        let n = tokens.len() * self.meta.vocab_size;
        LogitsView::new(&self.logits[..n], tokens.len(), self.meta.vocab_size)
    }
}

fn token_samplers(c: &mut Criterion) {
    let mut g = c.benchmark_group("token_sampler");
    g.measurement_time(Duration::from_secs(3));
    for vocab in VOCABS {
        let row = random_logits(1, vocab, 1);
        g.throughput(Throughput::Elements(vocab as u64));
        let mut greedy = GreedySampler::new();
        g.bench_with_input(BenchmarkId::new("greedy", vocab), &row, |b, row| {
            b.iter(|| greedy.sample(black_box(row)).unwrap())
        });
        let mut top_k = TopKSampler::new(50, 0.8).unwrap().with_seed(3);
        g.bench_with_input(BenchmarkId::new("top_k50", vocab), &row, |b, row| {
            b.iter(|| top_k.sample(black_box(row)).unwrap())
        });
        let mut top_p = TopPSampler::new(0.9, 0.8).unwrap().with_seed(3);
        g.bench_with_input(BenchmarkId::new("top_p0.9", vocab), &row, |b, row| {
            b.iter(|| top_p.sample(black_box(row)).unwrap())
        });
    }
    g.finish();
}

/// One decode setting: family, block size and the family sampler.
fn cases() -> Vec<(&'static str, Family, usize, BlockSampler)> {
    let mut static_greedy = SDARSampler::new(0.9, 0.0);
    static_greedy.strategy = SdarStrategy::LowConfidenceStatic;
    vec![
        (
            "sdar_dynamic_t0",
            Family::Sdar,
            4,
            SDARSampler::new(0.9, 0.0).into(),
        ),
        ("sdar_static_t0", Family::Sdar, 4, static_greedy.into()),
        (
            "sdar_dynamic_t1",
            Family::Sdar,
            4,
            SDARSampler::new(0.9, 1.0).into(),
        ),
        (
            "sdar_dynamic_t0",
            Family::Sdar,
            32,
            SDARSampler::new(0.9, 0.0).into(),
        ),
        (
            "fdllm_v2_t0",
            Family::FastDllmV2,
            32,
            FastdLLMV2Sampler::new(0.9, 0.0).into(),
        ),
    ]
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_decode");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let prompt: Vec<i64> = (10..42).collect();
    for vocab in VOCABS {
        for (name, family, block, sampler) in cases() {
            let gen = 2 * block;
            let mut meta = ModelMetadata::for_family(family, 256, vocab, 3, vec![1], block);
            meta.use_kv_cache = true;
            let model = FixedLogits {
                meta,
                logits: random_logits(prompt.len() + gen + block, vocab, 7),
            };
            let mut engine = DiffusionEngine::from_model(model, ModelType::Auto, true).unwrap();
            let config = DiffusionGenerationConfig::new(gen)
                .with_stop_ids(vec![])
                .with_sampler(sampler);
            // Logits the engine reads in one generation (prefill rows excluded: it skips them).
            let out = engine.generate(&prompt, &config).unwrap();
            let scored = out.stats.decode_forwards * block * vocab;
            g.throughput(Throughput::Elements(scored as u64));
            g.bench_function(BenchmarkId::new(format!("{name}_b{block}"), vocab), |b| {
                b.iter(|| engine.generate(black_box(&prompt), &config).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, token_samplers, decode);
criterion_main!(benches);
