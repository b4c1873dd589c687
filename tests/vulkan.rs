//! The Vulkan delegate, executed: the Vulkan twins of five fixtures (tests/fixtures/pte/vulkan/,
//! exported by tools/make_fixtures.py with `--backend vulkan`) must give their XNNPACK twins'
//! logits within [`LOGITS_TOLERANCE`] and the Python reference's tokens on every golden case.
//! Which programs the Vulkan delegate of this ExecuTorch runs, and which it does not (SDAR's
//! graph, the in-program KV cache), is in docs/source-build.md, "The Vulkan delegate".
//!
//! These run only on a runtime built from source with feature `vulkan`, on a machine with a
//! Vulkan device (lavapipe, mesa's CPU device, is one). Elsewhere each test says why it is
//! skipped and passes: the prebuilt runtime (CI's default) has no Vulkan delegate.
#![cfg(feature = "pte")]

#[path = "common/golden_sampler.rs"]
mod golden_sampler;
#[path = "common/goldens.rs"]
mod goldens;
#[path = "common/twin_logits.rs"]
mod twin_logits;

use diffulex_edge::runtime::{DiffusionModel, PteModel};
use std::path::PathBuf;

/// Largest |Vulkan − XNNPACK| logit allowed. Both run fp32; the differences are summation
/// order and the GPU's `exp`/`rsqrt`. Measured on lavapipe: at most 1.4e-5 over the fixtures
/// (logits spread about ±4), so this leaves 7× headroom and stays far below the gaps the
/// goldens' greedy choices rest on (the token comparison below is the real check).
const LOGITS_TOLERANCE: f32 = 1e-4;

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
            if chain.contains("not available on this machine") {
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

/// Lengths of the forwards compared: short, one token, odd, the whole context.
fn lengths(model: &PteModel) -> [usize; 4] {
    [10, 1, 37, model.metadata().max_seq_len]
}

fn logits_match(name: &str) {
    let mut xnnpack = PteModel::load(path("", name)).unwrap();
    let mut vulkan = PteModel::load(path("vulkan", name)).unwrap();
    let vocab = xnnpack.metadata().vocab_size as i64;
    let calls: Vec<(Vec<i64>, Option<usize>)> = lengths(&xnnpack)
        .into_iter()
        .enumerate()
        .map(|(i, len)| (twin_logits::spread_tokens(len, i as i64, vocab), None))
        .collect();
    let worst = twin_logits::max_logit_difference(
        name,
        &mut xnnpack,
        &mut vulkan,
        &calls,
        LOGITS_TOLERANCE,
    );
    eprintln!("{name}: max |vulkan - xnnpack| logit = {worst:e}");
}

/// The Vulkan twin `name` decodes every case of golden file `golden` as the reference did.
fn tokens_match(name: &str, golden: &str) {
    let vulkan = path("vulkan", name);
    goldens::check_golden(golden, || PteModel::load(&vulkan).unwrap());
}

#[test]
fn vulkan_logits_match_xnnpack() {
    with_vulkan("vulkan_logits_match_xnnpack", || {
        for name in ["llada", "dream", "fast_dllm_v2_uncached"] {
            logits_match(name);
        }
    });
}

#[test]
fn vulkan_llada_matches_reference() {
    with_vulkan("vulkan_llada_matches_reference", || {
        tokens_match("llada", "llada")
    });
}

#[test]
fn vulkan_dream_matches_reference() {
    with_vulkan("vulkan_dream_matches_reference", || {
        tokens_match("dream", "dream")
    });
}

/// Contract 2 (logits for the rows a step reads) on Vulkan: the `index_select` of rows runs
/// inside the delegate.
#[test]
fn vulkan_rows_programs_match_reference() {
    with_vulkan("vulkan_rows_programs_match_reference", || {
        tokens_match("llada_rows", "llada");
        tokens_match("dream_rows", "dream");
    });
}

/// Every golden case, up to a 165-token window. Until the exporter gave the mask the scores'
/// rank for Vulkan, ExecuTorch's `where` resize sized its output [T, S, T, S]: forwards took
/// seconds on lavapipe and failed from T = 160 (docs/source-build.md).
#[test]
fn vulkan_fast_dllm_v2_matches_reference() {
    with_vulkan("vulkan_fast_dllm_v2_matches_reference", || {
        tokens_match("fast_dllm_v2_uncached", "fast_dllm_v2_uncached")
    });
}

/// With the delegate linked but no device (the Vulkan loader pointed at no driver), a Vulkan
/// model fails with what is missing and what to do, not a bare status.
#[test]
fn without_a_vulkan_device_the_error_says_what_to_install() {
    let backends = diffulex_edge::pte::registered_backends().unwrap_or_default();
    if !backends.iter().any(|b| b == "VulkanBackend") {
        eprintln!("skipped: this runtime has no Vulkan delegate (registered: {backends:?})");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["generate", "--model"])
        .arg(path("vulkan", "llada"))
        .arg("--tokenizer")
        .arg(format!("{root}/tests/fixtures/ckpt/llada/tokenizer.json"))
        .args(["--prompt", "ab", "--max-new-tokens", "4"])
        // Both spellings of the loader's driver list (older and newer loaders).
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("backend \"VulkanBackend\"") && err.contains("not available on this machine"),
        "{err}"
    );
    assert!(err.contains("mesa-vulkan-drivers"), "{err}");
}
