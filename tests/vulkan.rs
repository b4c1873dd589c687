//! The Vulkan delegate, executed: the Vulkan twins of six fixtures (tests/fixtures/pte/vulkan/,
//! exported by tools/make_fixtures.py with `--backend vulkan`) must give their XNNPACK twins'
//! logits within [`LOGITS_TOLERANCE`] and the Python reference's tokens on every golden case.
//!
//! These run only on a runtime built from source with feature `vulkan`, on a machine with a
//! Vulkan device (lavapipe, mesa's CPU device, is one). Elsewhere each test says why it is
//! skipped and passes: the prebuilt runtime (CI's default) has no Vulkan delegate.
#![cfg(feature = "pte")]

#[path = "common/golden_sampler.rs"]
mod golden_sampler;
#[path = "common/goldens.rs"]
mod goldens;

use diffulex_edge::runtime::{DiffusionModel, PteModel};
use std::path::PathBuf;

/// Largest |Vulkan − XNNPACK| logit allowed. Both run fp32; the differences are summation
/// order and the GPU's `exp`/`rsqrt`. The fixtures' logits have a spread of about ±4, so this
/// is about 0.05% of it, and far below the gaps the goldens' greedy choices rest on (the token
/// comparison below is the real check).
const LOGITS_TOLERANCE: f32 = 2e-3;

fn path(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pte")
        .join(dir)
        .join(format!("{name}.pte"))
}

/// Why the Vulkan twins cannot run here, if they cannot: `None` when they can.
fn skip_reason() -> Option<String> {
    let backends = match diffulex_edge::pte::registered_backends() {
        Ok(b) => b,
        Err(e) => return Some(format!("no runtime: {e}")),
    };
    if !backends.iter().any(|b| b == "VulkanBackend") {
        return Some(format!(
            "this runtime has no Vulkan delegate (registered: {backends:?}); build ExecuTorch \
             from source with feature `vulkan` to run it (docs/source-build.md, \"Vulkan\")"
        ));
    }
    // The delegate is linked; a program delegated to it loads only where a device exists.
    let mut model = match PteModel::load(path("vulkan", "llada")) {
        Ok(m) => m,
        Err(e) => return Some(format!("the Vulkan twin does not load: {e}")),
    };
    match model.forward(&[1, 2, 3], None) {
        Ok(_) => None,
        Err(e) => {
            let chain = chain(&e);
            if chain.contains("no Vulkan device") {
                Some(chain)
            } else {
                panic!("the Vulkan twin of llada fails its first forward: {chain}")
            }
        }
    }
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

/// Runs `check` unless the Vulkan twins cannot run here, in which case it says why.
fn with_vulkan(test: &str, check: impl FnOnce()) {
    match skip_reason() {
        None => check(),
        Some(why) => eprintln!("{test}: skipped: {why}"),
    }
}

/// The (input_pos, length) calls of a forward sequence: cached models prefill mid-block,
/// rewrite a block, go on, and take one token; uncached ones see several lengths.
fn calls(model: &PteModel) -> Vec<(Option<usize>, usize)> {
    let meta = model.metadata();
    if meta.use_kv_cache && !meta.has_bidirectional_cache() {
        let b = meta.block_size.max(1);
        vec![
            (Some(0), 2 * b + 2),
            (Some(2 * b), b),
            (Some(3 * b), b),
            (Some(3 * b), b),
            (Some(4 * b), 1),
            (Some(5 * b), 2 * b),
        ]
    } else {
        vec![(None, 10), (None, 1), (None, 37), (None, meta.max_seq_len)]
    }
}

fn logits_match(name: &str) {
    let mut xnnpack = PteModel::load(path("", name)).unwrap();
    let mut vulkan = PteModel::load(path("vulkan", name)).unwrap();
    let vocab = xnnpack.metadata().vocab_size as i64;
    let mut worst = 0f32;
    for (i, (pos, len)) in calls(&xnnpack).into_iter().enumerate() {
        // Deterministic tokens that cover the vocabulary (no RNG crate needed).
        let tokens: Vec<i64> = (0..len as i64)
            .map(|j| (j * 7919 + i as i64 * 104_729) % vocab)
            .collect();
        let want = xnnpack.forward(&tokens, pos).unwrap();
        let want: Vec<Vec<f32>> = (0..want.rows()).map(|r| want.row(r).to_vec()).collect();
        let got = vulkan.forward(&tokens, pos).unwrap();
        assert_eq!(got.rows(), want.len(), "{name} call {i}");
        for (r, want_row) in want.iter().enumerate() {
            for (a, b) in got.row(r).iter().zip(want_row) {
                assert!(a.is_finite(), "{name} call {i} row {r}: {a}");
                worst = worst.max((a - b).abs());
            }
        }
        assert!(
            worst <= LOGITS_TOLERANCE,
            "{name} call {i} (pos {pos:?}, {len} tokens): max |vulkan - xnnpack| = {worst}"
        );
    }
    eprintln!("{name}: max |vulkan - xnnpack| logit = {worst:e}");
}

fn tokens_match(name: &str) {
    let vulkan = path("vulkan", name);
    let got = goldens::check_golden(name, || PteModel::load(&vulkan).unwrap());
    let meta = goldens::meta_from(&goldens::load(name)["meta"]);
    if meta.use_kv_cache {
        goldens::check_cached_equals_uncached(name, &got);
    }
}

#[test]
fn vulkan_logits_match_xnnpack() {
    with_vulkan("vulkan_logits_match_xnnpack", || {
        for name in ["sdar_cached", "fast_dllm_v2_cached", "llada", "dream"] {
            logits_match(name);
        }
    });
}

#[test]
fn vulkan_sdar_matches_reference() {
    with_vulkan("vulkan_sdar_matches_reference", || {
        tokens_match("sdar_cached")
    });
}

#[test]
fn vulkan_fast_dllm_v2_matches_reference() {
    with_vulkan("vulkan_fast_dllm_v2_matches_reference", || {
        tokens_match("fast_dllm_v2_cached")
    });
}

#[test]
fn vulkan_llada_matches_reference() {
    with_vulkan("vulkan_llada_matches_reference", || tokens_match("llada"));
}

#[test]
fn vulkan_dream_matches_reference() {
    with_vulkan("vulkan_dream_matches_reference", || tokens_match("dream"));
}

/// Contract 3 on Vulkan: Fast-dLLM's prefix and dual caches (forward_span with `kv_end`).
#[test]
fn vulkan_bidirectional_caches_match_reference() {
    with_vulkan("vulkan_bidirectional_caches_match_reference", || {
        tokens_match("llada_cached");
        tokens_match("dream_cached");
    });
}
