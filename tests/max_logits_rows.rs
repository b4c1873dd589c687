//! `--max-logits-rows`: a program returns at most that many rows of logits per forward, because
//! ExecuTorch plans its logits output for that many. The engine reads the bound from the file,
//! refuses a forward past it with the numbers, and refuses a generation whose largest forward
//! would pass it before the first forward runs. The bounded fixture's tokens are checked
//! against its golden and its twin's in tests/engine_parity.rs.

use diffulex_edge::runtime::sampler::{BlockSampler, DreamSampler, LLaDASampler};
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, Family, HashModel,
    LogitsView, ModelMetadata, Result,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A model that counts the forwards it is asked for (the engine owns it; the count is shared).
struct Counting {
    inner: HashModel,
    forwards: Arc<AtomicUsize>,
}

impl DiffusionModel for Counting {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }
    fn forward(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<LogitsView<'_>> {
        self.forwards.fetch_add(1, Ordering::Relaxed);
        self.inner.forward(tokens, input_pos)
    }
    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        self.forwards.fetch_add(1, Ordering::Relaxed);
        self.inner.forward_rows(tokens, input_pos, rows)
    }
    fn max_logits_rows(&self) -> usize {
        self.inner.max_logits_rows()
    }
}

fn generate(
    family: Family,
    max_rows: usize,
    sampler: BlockSampler,
    max_new_tokens: usize,
) -> (Result<Vec<i64>>, usize) {
    let meta = ModelMetadata::for_family(family, 64, 32, 31, vec![1], 0);
    let forwards = Arc::new(AtomicUsize::new(0));
    let model = Counting {
        inner: HashModel::new(meta, 5).with_max_logits_rows(max_rows),
        forwards: Arc::clone(&forwards),
    };
    let mut engine = DiffusionEngine::from_model(model, family, false).unwrap();
    let config = DiffusionGenerationConfig {
        sampler: Some(sampler),
        stop_ids: Some(vec![]),
        ..DiffusionGenerationConfig::new(max_new_tokens)
    };
    let tokens = engine.generate(&[4, 5, 6], &config).map(|out| out.tokens);
    let forwards = forwards.load(Ordering::Relaxed);
    (tokens, forwards)
}

#[test]
fn a_generation_whose_blocks_need_more_rows_is_refused_before_any_forward() {
    let llada = |block| {
        BlockSampler::from(LLaDASampler {
            block_length: Some(block),
            steps: Some(16),
            ..Default::default()
        })
    };
    let (refused, forwards) = generate(Family::Llada, 8, llada(16), 16);
    match refused {
        Err(
            err @ EngineError::TooManyLogitsRows {
                requested: 16,
                max: 8,
                ..
            },
        ) => {
            let text = err.to_string();
            assert!(text.contains("block_length"), "{text}");
            assert!(text.contains("--max-logits-rows 16"), "{text}");
        }
        other => panic!("expected TooManyLogitsRows, got {other:?}"),
    }
    assert_eq!(forwards, 0, "the check must come before the prefill");

    // Blocks of the bound's size decode, and decode as an unbounded model does.
    let (bounded, _) = generate(Family::Llada, 8, llada(8), 16);
    let (unbounded, _) = generate(Family::Llada, 64, llada(8), 16);
    assert_eq!(bounded.unwrap(), unbounded.unwrap());
}

#[test]
fn dream_without_blocks_needs_a_row_per_new_token() {
    let whole = BlockSampler::from(DreamSampler::default());
    let (refused, forwards) = generate(Family::Dream, 8, whole.clone(), 12);
    match refused {
        Err(
            err @ EngineError::TooManyLogitsRows {
                requested: 12,
                max: 8,
                ..
            },
        ) => {
            assert!(err.to_string().contains("without blocks"), "{err}");
        }
        other => panic!("expected TooManyLogitsRows, got {other:?}"),
    }
    assert_eq!(forwards, 0);
    assert!(generate(Family::Dream, 12, whole, 12).0.is_ok());

    // Fast-dLLM's block loop reads one block's rows.
    let blocks = BlockSampler::from(DreamSampler {
        block_length: Some(4),
        steps: Some(12),
        ..Default::default()
    });
    assert!(generate(Family::Dream, 4, blocks, 12).0.is_ok());
}

#[test]
fn a_direct_forward_past_the_bound_names_both_numbers() {
    let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    let mut model = HashModel::new(meta, 1).with_max_logits_rows(2);
    let err = model.forward(&[4, 5, 6], None).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::TooManyLogitsRows {
                requested: 3,
                max: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("forward_rows"), "{err}");
    assert_eq!(
        model
            .forward_rows(&[4, 5, 6], None, &[0, 2])
            .unwrap()
            .computed_rows(),
        2
    );
}

#[cfg(feature = "pte")]
mod pte {
    use diffulex_edge::runtime::{DiffusionModel, EngineError, PteModel};

    fn fixture(name: &str) -> PteModel {
        PteModel::load(format!(
            "{}/tests/fixtures/pte/{name}.pte",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_bound_is_the_rows_input_of_the_program() {
        assert_eq!(fixture("sdar_rows_bounded").max_logits_rows(), 4);
        // Exported with the default: min(max_seq_len, 256) = 256.
        assert_eq!(fixture("sdar_cached_rows").max_logits_rows(), 256);
        // Contract 1 returns every row of a forward of up to max_seq_len tokens.
        assert_eq!(fixture("sdar_cached").max_logits_rows(), 256);
    }

    #[test]
    fn the_bounded_program_refuses_more_rows_and_keeps_working() {
        let mut bounded = fixture("sdar_rows_bounded");
        let tokens = [5i64, 6, 7, 8, 9, 10, 11, 12];
        let err = bounded
            .forward_rows(&tokens, Some(0), &[3, 4, 5, 6, 7])
            .unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::TooManyLogitsRows {
                    requested: 5,
                    max: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("--max-logits-rows 5"), "{err}");
        let err = bounded.forward(&tokens[..5], Some(0)).unwrap_err();
        assert!(
            matches!(err, EngineError::TooManyLogitsRows { .. }),
            "{err:?}"
        );

        // Within the bound it computes what the unbounded twin (same weights) computes.
        let rows = [4, 5, 6, 7];
        let got = bounded.forward_rows(&tokens, Some(0), &rows).unwrap();
        let got: Vec<Vec<f32>> = rows.iter().map(|&r| got.row(r).to_vec()).collect();
        let mut twin = fixture("sdar_cached_rows");
        let want = twin.forward_rows(&tokens, Some(0), &rows).unwrap();
        for (k, &r) in rows.iter().enumerate() {
            assert_eq!(got[k], want.row(r), "row {r}");
        }
    }
}
