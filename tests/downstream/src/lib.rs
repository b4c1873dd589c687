//! Decodes the fixtures of all four families with diffulex-edge's public API and compares the
//! tokens with the goldens of the Python reference decoders (tests/fixtures/goldens).

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};

use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType, StopReason};
use serde_json::Value;

#[path = "../../common/golden_sampler.rs"]
mod golden_sampler;

/// One golden file per family, plus a contract-4 file (no embedding table: the engine gathers
/// the rows from the lm_head's weights through the shim's named-data call): each `.pte`
/// decoded case by case.
pub const GOLDENS: [&str; 5] = [
    "sdar_cached",
    "fast_dllm_v2_cached",
    "llada",
    "dream",
    "fast_dllm_v2_shared_8da4w",
];

/// The repository this crate sits in (its goldens and fixtures).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs every case of every golden through `DiffusionEngine::from_pte` + `generate`; returns
/// the number of cases checked, or the first mismatch.
pub fn check_goldens(repo: &Path) -> Result<usize, String> {
    let mut checked = 0;
    for name in GOLDENS {
        let path = repo.join(format!("tests/fixtures/goldens/{name}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}"))?;
        let golden: Value = serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
        let meta = &golden["meta"];
        let family = meta["family"].as_str().ok_or("meta.family")?;
        let family = family.parse().map_err(|e| format!("{family}: {e}"))?;
        let max_seq_len = meta["max_seq_len"].as_u64().ok_or("meta.max_seq_len")? as usize;
        let use_kv = meta["use_kv_cache"].as_bool().ok_or("meta.use_kv_cache")?;
        let pte = repo.join(golden["pte"].as_str().ok_or("pte")?);
        let mut engine = DiffusionEngine::from_pte(&pte, ModelType::Auto, max_seq_len)
            .map_err(|e| format!("{name}: loading {pte:?}: {e}"))?;
        for case in golden["cases"].as_array().ok_or("cases")? {
            // from_pte decodes the way the model was exported (cached or not).
            if case["use_kv_cache"].as_bool() != Some(use_kv) {
                continue;
            }
            let ints = |v: &Value| -> Vec<i64> {
                v.as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default()
            };
            let mut config = DiffusionGenerationConfig::new(
                case["max_new_tokens"].as_u64().unwrap_or(0) as usize,
            )
            .with_seed(case["seed"].as_u64().unwrap_or(0))
            .with_sampler(golden_sampler::sampler_from(family, &case["sampler"]));
            if case["stop_ids"].is_array() {
                config.stop_ids = Some(ints(&case["stop_ids"]));
            }
            let out = engine
                .generate(&ints(&case["prompt"]), &config)
                .map_err(|e| format!("{name} {}: {e}", case["name"]))?;
            let want = ints(&case["expected"]["tokens"]);
            let want_reason = match case["expected"]["stop_reason"].as_str() {
                Some("eos") => {
                    StopReason::Eos(case["expected"]["stop_token"].as_i64().unwrap_or(-1))
                }
                _ => StopReason::MaxNewTokens,
            };
            if out.tokens != want || out.stop_reason != want_reason {
                return Err(format!(
                    "{name} {}: got {:?} {:?}, want {want:?} {want_reason:?}",
                    case["name"], out.tokens, out.stop_reason
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// C entry point of the cdylib: checks the goldens under the repository at `repo` (a
/// NUL-terminated path); returns the number of cases checked, or -1 after printing the error.
///
/// # Safety
/// `repo` must be a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn downstream_check_goldens(repo: *const c_char) -> i64 {
    // SAFETY: the caller passes a valid NUL-terminated string.
    let repo = unsafe { CStr::from_ptr(repo) }
        .to_string_lossy()
        .into_owned();
    match std::panic::catch_unwind(|| check_goldens(Path::new(&repo))) {
        Ok(Ok(n)) => n as i64,
        Ok(Err(e)) => {
            eprintln!("downstream: {e}");
            -1
        }
        Err(_) => -1,
    }
}
