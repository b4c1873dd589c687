//! The README's "your own `DiffusionModel`" example, as it stands there: a model of one's own
//! behind the trait drives the engine with no ExecuTorch at all (this test also runs under
//! `cargo test --no-default-features`), and it can bring its own row pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diffulex_edge::runtime::RowPool;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, Family, LogitsView, ModelMetadata,
};

/// Always predicts token 3 (your backend's forward goes here).
struct MyModel {
    meta: ModelMetadata,
    logits: Vec<f32>,
}

impl DiffusionModel for MyModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }
    fn forward(
        &mut self,
        tokens: &[i64],
        _pos: Option<usize>,
    ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
        let vocab = self.meta.vocab_size;
        self.logits = (0..tokens.len() * vocab)
            .map(|i| if i % vocab == 3 { 1.0 } else { 0.0 })
            .collect();
        LogitsView::new(&self.logits, tokens.len(), vocab)
    }
}

fn engine(vocab: usize) -> DiffusionEngine {
    let meta = ModelMetadata::for_family(Family::Llada, 64, vocab, vocab as i64 - 1, vec![1], 0);
    let model = MyModel {
        meta,
        logits: Vec::new(),
    };
    DiffusionEngine::from_model(model, Family::Llada, false).expect("engine over MyModel")
}

#[test]
fn readme_example_decodes() {
    let out = engine(32)
        .generate(&[4, 5], &DiffusionGenerationConfig::new(4))
        .expect("generation");
    assert_eq!(out.tokens, [3, 3, 3, 3]);
}

/// Counts the rows it was handed, then runs them in order.
#[derive(Default)]
struct Counting(AtomicUsize);
impl RowPool for Counting {
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        self.0.fetch_add(n, Ordering::Relaxed);
        (0..n).for_each(f);
    }
}

#[test]
fn an_engine_scores_big_steps_on_the_pool_it_is_given() {
    // 16 masked rows x 32,768 logits reach the pool's threshold (2^18 logits in a step).
    let pool = Arc::new(Counting::default());
    let mut e = engine(32_768).with_row_pool(pool.clone());
    let out = e
        .generate(&[4, 5], &DiffusionGenerationConfig::new(16))
        .expect("generation");
    assert_eq!(out.tokens, [3; 16]);
    assert!(
        pool.0.load(Ordering::Relaxed) >= 16,
        "the pool scored no step"
    );
}
