//! Contract-2 programs (`forward` takes the rows to compute logits for): the rows they return
//! are the rows their contract-1 twin (same checkpoint, exported with `--logits all`) computes,
//! bad row lists are errors, and the engine asks for fewer rows. Token-level parity with the
//! Python reference decoders is in engine_parity.rs (`pte_*_rows_matches_reference`).
#![cfg(feature = "pte")]

use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, ModelType, PteModel,
};
use std::path::PathBuf;

fn pte(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pte")
        .join(format!("{name}.pte"))
}

/// (contract-1 fixture, its contract-2 twin)
const TWINS: [(&str, &str); 4] = [
    ("sdar_cached", "sdar_cached_rows"),
    ("fast_dllm_v2_cached", "fast_dllm_v2_cached_rows"),
    ("llada", "llada_rows"),
    ("dream", "dream_rows"),
];

/// Deterministic token ids below the mask id of the fixtures' vocabulary.
fn tokens(n: usize, salt: u64) -> Vec<i64> {
    (0..n as u64)
        .map(|i| ((i * 2654435761 + salt * 40503) % 200 + 10) as i64)
        .collect()
}

#[test]
fn selected_rows_equal_the_twins_full_rows() {
    for (full_name, rows_name) in TWINS {
        let mut full = PteModel::load(pte(full_name)).unwrap();
        let mut sel = PteModel::load(pte(rows_name)).unwrap();
        assert!(!full.selects_rows() && sel.selects_rows(), "{rows_name}");
        // The same constants, except that a cached Fast-dLLM v2 with rows is contract 3 and has
        // its sub-block cache.
        let mut twin_meta = sel.metadata().clone();
        assert_eq!(
            twin_meta.sub_block_cache,
            rows_name == "fast_dllm_v2_cached_rows"
        );
        twin_meta.sub_block_cache = false;
        assert_eq!(full.metadata(), &twin_meta, "{rows_name}");
        let cached = full.metadata().use_kv_cache;
        let toks = tokens(12, 1);
        let pos = cached.then_some(0);
        let want: Vec<Vec<f32>> = {
            let v = full.forward(&toks, pos).unwrap();
            (0..toks.len()).map(|r| v.row(r).to_vec()).collect()
        };
        for rows in [
            vec![0],
            vec![11],
            vec![1, 4, 5, 9],
            (0..12).collect::<Vec<_>>(),
        ] {
            let v = sel.forward_rows(&toks, pos, &rows).unwrap();
            assert_eq!(v.computed_rows(), rows.len(), "{rows_name} {rows:?}");
            for &r in &rows {
                assert_eq!(v.row(r), &want[r][..], "{rows_name}: row {r} of {rows:?}");
            }
        }
        // The plain forward of a contract-2 program returns every row.
        let v = sel.forward(&toks, pos).unwrap();
        assert_eq!(v.computed_rows(), toks.len());
        assert_eq!(v.row(7), &want[7][..], "{rows_name}: forward");
    }
}

#[test]
fn a_cache_write_with_no_rows_keeps_the_cache_exact() {
    // Prefill a block with no rows read, then decode the next block: the logits must equal a
    // full recompute of the twin, so the KV write of the row-less forward was complete.
    for (full_name, rows_name) in [TWINS[0], TWINS[1]] {
        let mut full = PteModel::load(pte(full_name)).unwrap();
        let mut sel = PteModel::load(pte(rows_name)).unwrap();
        let bs = sel.metadata().block_size;
        let toks = tokens(2 * bs, 2);
        let want = full
            .forward(&toks, Some(0))
            .unwrap()
            .row(2 * bs - 1)
            .to_vec();
        let v = sel.forward_rows(&toks[..bs], Some(0), &[]).unwrap();
        assert_eq!(v.computed_rows(), 0);
        let last = [bs - 1];
        let got = sel.forward_rows(&toks[bs..], Some(bs), &last).unwrap();
        assert_eq!(got.row(bs - 1), &want[..], "{rows_name}");
    }
}

#[test]
fn bad_row_lists_are_errors_naming_the_rows() {
    let mut m = PteModel::load(pte("sdar_cached_rows")).unwrap();
    let toks = tokens(4, 3);
    for rows in [vec![4], vec![2, 1], vec![1, 1], vec![0, 99]] {
        match m.forward_rows(&toks, Some(0), &rows) {
            Err(EngineError::ForwardArgs(msg)) => {
                assert!(msg.contains(&format!("{rows:?}")), "{msg}");
                assert!(msg.contains("ascending"), "{msg}");
            }
            other => panic!("{rows:?}: expected ForwardArgs, got {other:?}"),
        }
    }
    // Still usable afterwards.
    assert_eq!(
        m.forward_rows(&toks, Some(0), &[3])
            .unwrap()
            .computed_rows(),
        1
    );
}

#[test]
fn the_engine_computes_fewer_rows_and_the_same_tokens() {
    for (full_name, rows_name) in TWINS {
        let cfg = DiffusionGenerationConfig::new(16).with_seed(7);
        let prompt = tokens(5, 4);
        let run = |name: &str| {
            let model = PteModel::load(pte(name)).unwrap();
            let cached = model.metadata().use_kv_cache;
            let mut e = DiffusionEngine::from_model(model, ModelType::Auto, cached).unwrap();
            e.generate(&prompt, &cfg).unwrap()
        };
        let (a, b) = (run(full_name), run(rows_name));
        assert_eq!(a.tokens, b.tokens, "{rows_name}");
        assert_eq!(a.stats.forwards, b.stats.forwards, "{rows_name}");
        assert!(
            b.stats.logit_rows < a.stats.logit_rows,
            "{rows_name}: {} rows vs {} for the twin",
            b.stats.logit_rows,
            a.stats.logit_rows
        );
    }
}
