//! ExecuTorch's LLM custom operators: the `--llm-ops` twins of seven fixtures
//! (tests/fixtures/pte/llm_ops/, exported by tools/make_fixtures.py) run attention through
//! `llama::custom_sdpa` and write the KV cache with `llama::update_cache`. They must give their
//! plain twins' logits within [`LOGITS_TOLERANCE`] and the Python reference's tokens on every
//! golden case.
//!
//! Only a runtime built from source with feature `llm-ops` has these operators. On any other
//! (CI's prebuilt default) the tests that run the twins say why they are skipped and pass, and
//! `without_the_operators_the_error_names_them_and_the_feature` checks what a user of such a
//! runtime is told instead.
#![cfg(feature = "pte")]

#[path = "common/golden_sampler.rs"]
mod golden_sampler;
#[path = "common/goldens.rs"]
mod goldens;
#[path = "common/twin_logits.rs"]
mod twin_logits;

use diffulex_edge::pte::PteError;
use diffulex_edge::runtime::{DiffusionModel, EngineError, PteModel};
use std::path::PathBuf;

/// Largest |llm-ops − plain| logit allowed. Both run fp32 with the same weights and XNNPACK
/// linear layers; only the attention's summation order and its `exp` differ. The Python
/// runtime measures at most 7e-6 on these fixtures (python/tests/test_llm_ops.py), so this
/// leaves room for another libm while staying far below the gaps the goldens' greedy choices
/// rest on (the token comparison is the real check).
const LOGITS_TOLERANCE: f32 = 1e-4;

/// Each twin and the golden file of the plain program it mirrors.
const TWINS: [(&str, &str); 7] = [
    ("sdar_cached", "sdar_cached"),
    ("sdar_cached_rows", "sdar_cached"),
    ("sdar_cached_int8", "sdar_cached_int8"),
    ("fast_dllm_v2_cached_rows", "fast_dllm_v2_cached"),
    ("llada_rows", "llada"),
    ("dream_rows", "dream"),
    ("llada_cached", "llada_cached"),
];

fn path(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pte")
        .join(dir)
        .join(format!("{name}.pte"))
}

/// The LLM operator this runtime lacks, from loading and running a twin; `None` when the
/// runtime has them. Any other failure is a bug.
fn missing_operator() -> Option<String> {
    let run = PteModel::load(path("llm_ops", "sdar_cached"))
        .and_then(|mut model| model.forward(&[1, 2, 3], Some(0)).map(|_| ()));
    let error = match run {
        Ok(()) => return None,
        Err(e) => e,
    };
    if let EngineError::Model { source, .. } = &error {
        if let Some(PteError::MissingOperator { operator, .. }) = source.downcast_ref() {
            if operator.starts_with("llama::") {
                return Some(operator.clone());
            }
        }
    }
    panic!("the llm-ops twin of sdar_cached fails its first forward: {error:?}")
}

/// Runs `check` unless this runtime lacks the LLM operators, in which case it says why.
fn with_llm_ops(test: &str, check: impl FnOnce()) {
    match missing_operator() {
        None => check(),
        Some(op) => eprintln!(
            "{test}: skipped: this runtime has no {op} kernel; build ExecuTorch from source \
             with feature `llm-ops` to run it (docs/source-build.md)"
        ),
    }
}

/// Feeds both programs the same calls and compares every logit. Cached programs get three
/// calls at increasing positions (a multi-block prefill, one block, then a block that reads
/// what the first two wrote); uncached ones three independent lengths.
fn logits_match(name: &str) {
    let mut plain = PteModel::load(path("", name)).unwrap();
    let mut fused = PteModel::load(path("llm_ops", name)).unwrap();
    let meta = plain.metadata().clone();
    let vocab = meta.vocab_size as i64;
    let shape: Vec<(usize, Option<usize>)> = if meta.use_kv_cache {
        vec![(12, Some(0)), (4, Some(12)), (4, Some(16))]
    } else {
        vec![(10, None), (1, None), (meta.max_seq_len, None)]
    };
    let calls: Vec<(Vec<i64>, Option<usize>)> = shape
        .into_iter()
        .enumerate()
        .map(|(i, (len, pos))| (twin_logits::spread_tokens(len, i as i64, vocab), pos))
        .collect();
    let worst =
        twin_logits::max_logit_difference(name, &mut plain, &mut fused, &calls, LOGITS_TOLERANCE);
    eprintln!("{name}: max |llm-ops - plain| logit = {worst:e}");
}

#[test]
fn llm_ops_logits_match_the_plain_programs() {
    with_llm_ops("llm_ops_logits_match_the_plain_programs", || {
        for (name, _) in TWINS {
            logits_match(name);
        }
    });
}

#[test]
fn llm_ops_programs_match_the_reference() {
    with_llm_ops("llm_ops_programs_match_the_reference", || {
        for (name, golden) in TWINS {
            let twin = path("llm_ops", name);
            goldens::check_golden(golden, || PteModel::load(&twin).unwrap());
        }
    });
}

/// On a runtime without the operators (the prebuilt default), `diffulex` says which operator
/// is missing and how to get it, instead of a bare status.
#[test]
fn without_the_operators_the_error_names_them_and_the_feature() {
    if missing_operator().is_none() {
        eprintln!("skipped: this runtime has the LLM custom operators");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["generate", "--model"])
        .arg(path("llm_ops", "sdar_cached_rows"))
        .arg("--tokenizer")
        .arg(format!("{root}/tests/fixtures/ckpt/sdar/tokenizer.json"))
        .args(["--prompt", "ab", "--max-new-tokens", "4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("llama::"), "{err}");
    assert!(err.contains("--features llm-ops"), "{err}");
    assert!(err.contains("without --llm-ops"), "{err}");
}
