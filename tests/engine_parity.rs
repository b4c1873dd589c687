//! Rust engine == Python reference decoders (goldens from tools/make_goldens.py), token for token,
//! for every fixture and mode; and KV-cache == recompute at temperature 0 for block-causal models.

#[path = "common/golden_sampler.rs"]
mod golden_sampler;
#[path = "common/goldens.rs"]
mod goldens;

use diffulex_edge::runtime::HashModel;
#[cfg(feature = "pte")]
use diffulex_edge::runtime::PteModel;
#[cfg(feature = "pte")]
use goldens::pte_golden;
use goldens::{check_cached_equals_uncached, check_golden, load, meta_from};
#[cfg(feature = "pte")]
use std::path::PathBuf;

fn hash_golden(family: &str) {
    let name = format!("hash_{family}");
    let g = load(&name);
    let meta = meta_from(&g["meta"]);
    let seed = g["hash_seed"].as_u64().unwrap();
    let got = check_golden(&name, || HashModel::new(meta.clone(), seed));
    if meta.use_kv_cache {
        check_cached_equals_uncached(&name, &got);
    }
}

#[test]
fn hash_sdar_matches_reference() {
    hash_golden("sdar");
}

#[test]
fn hash_fast_dllm_v2_matches_reference() {
    hash_golden("fast_dllm_v2");
}

#[test]
fn hash_llada_matches_reference() {
    hash_golden("llada");
}

#[test]
fn hash_dream_matches_reference() {
    hash_golden("dream");
}

#[cfg(feature = "pte")]
#[test]
fn pte_sdar_cached_matches_reference() {
    let cached = pte_golden("sdar_cached");
    // The uncached export of the same weights gives the same greedy tokens.
    let uncached = pte_golden("sdar_uncached");
    for (name, tokens) in &uncached {
        assert_eq!(
            Some(tokens),
            cached.get(name),
            "sdar_uncached vs sdar_cached: {name}"
        );
    }
}

#[cfg(feature = "pte")]
#[test]
fn pte_sdar_cached_portable_matches_reference() {
    pte_golden("sdar_cached_portable");
}

#[cfg(feature = "pte")]
#[test]
fn pte_sdar_cached_int8_matches_reference() {
    pte_golden("sdar_cached_int8");
}

#[cfg(feature = "pte")]
#[test]
fn pte_fast_dllm_v2_matches_reference() {
    let cached = pte_golden("fast_dllm_v2_cached");
    let uncached = pte_golden("fast_dllm_v2_uncached");
    for (name, tokens) in &uncached {
        assert_eq!(
            Some(tokens),
            cached.get(name),
            "fast_dllm_v2_uncached vs cached: {name}"
        );
    }
}

/// Contract 3 for Fast-dLLM v2: its twin's cases plus the sub-block cache (the official
/// `use_block_cache`), whose forwards after a sub-block's first read the block's cached K/V.
/// The cases without the cache must decode exactly as on the contract-1 twin.
#[cfg(feature = "pte")]
#[test]
fn pte_fast_dllm_v2_sub_block_cache_matches_reference() {
    let own = pte_golden("fast_dllm_v2_cached_rows");
    let twin = pte_golden("fast_dllm_v2_cached");
    let mut with_cache = 0;
    for (name, tokens) in &own {
        match twin.get(name) {
            Some(expected) => assert_eq!(tokens, expected, "{name} vs the contract-1 twin"),
            None => {
                assert!(name.starts_with("sub_block_cache/"), "{name}");
                with_cache += 1;
            }
        }
    }
    assert!(with_cache >= 10, "only {with_cache} sub-block cache cases");
}

/// Contract 4: no embedding table in the program; the engine gathers each token's row from the
/// lm_head's int8 weights in the named data. The goldens come from ExecuTorch's Python runtime
/// fed by the Python gather (`shared_embedding.PteTable`), cross-checked against the PyTorch
/// module quantized the same way (0 greedy mismatches), sub-block cache cases included.
#[cfg(feature = "pte")]
#[test]
fn pte_fast_dllm_v2_shared_int8_matches_reference() {
    let got = pte_golden("fast_dllm_v2_shared_int8");
    assert!(got.keys().any(|name| name.starts_with("sub_block_cache/")));
}

/// Contract 4 in float32 (`--shared-embedding`): the rows are the lm_head's float32 weights,
/// the very table the contract-3 twin embeds with, so every case decodes as the twin's.
#[cfg(feature = "pte")]
#[test]
fn pte_fast_dllm_v2_shared_fp32_matches_reference_and_its_twin() {
    assert_decodes_as_twin("fast_dllm_v2_shared_fp32", "fast_dllm_v2_cached_rows");
}

/// Runs both fixtures' goldens and asserts that `name` decodes every case as `twin` does.
#[cfg(feature = "pte")]
fn assert_decodes_as_twin(name: &str, twin: &str) {
    let own = pte_golden(name);
    let theirs = pte_golden(twin);
    assert_eq!(own.len(), theirs.len());
    for (case, tokens) in &own {
        assert_eq!(Some(tokens), theirs.get(case), "{name} vs {twin}: {case}");
    }
}

/// `--max-logits-rows 4`, SDAR's block: the program's logits output holds one block's rows,
/// and every case decodes as the unbounded contract-1 twin of the same weights does. (Its
/// golden comes from ExecuTorch's Python runtime, cross-checked against PyTorch.)
#[cfg(feature = "pte")]
#[test]
fn pte_sdar_rows_bounded_matches_reference_and_its_twin() {
    assert_decodes_as_twin("sdar_rows_bounded", "sdar_cached");
}

/// Contract 4 with the 4-bit table: nibbles and bfloat16 group scales as XNNPACK stores them.
#[cfg(feature = "pte")]
#[test]
fn pte_fast_dllm_v2_shared_8da4w_matches_reference() {
    pte_golden("fast_dllm_v2_shared_8da4w");
}

#[cfg(feature = "pte")]
#[test]
fn pte_llada_matches_reference() {
    pte_golden("llada");
}

#[cfg(feature = "pte")]
#[test]
fn pte_dream_matches_reference() {
    pte_golden("dream");
}

/// Contract 3 (LLaDA and Dream with Fast-dLLM's prefix and dual caches): every case of the
/// reference's cached loops, plus the uncached cases on the same file (full passes).
#[cfg(feature = "pte")]
#[test]
fn pte_llada_cached_matches_reference() {
    pte_golden("llada_cached");
}

#[cfg(feature = "pte")]
#[test]
fn pte_dream_cached_matches_reference() {
    pte_golden("dream_cached");
}

/// A contract-2 program of the same weights (logits only for the rows a step reads) must
/// decode exactly its contract-1 twin's goldens: the reference decoders read every row.
#[cfg(feature = "pte")]
fn rows_golden(name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pte")
        .join(format!("{name}_rows.pte"));
    assert!(PteModel::load(&path).unwrap().selects_rows(), "{name}_rows");
    check_golden(name, || PteModel::load(&path).unwrap());
}

#[cfg(feature = "pte")]
#[test]
fn pte_sdar_rows_matches_reference() {
    rows_golden("sdar_cached");
}

#[cfg(feature = "pte")]
#[test]
fn pte_fast_dllm_v2_rows_matches_reference() {
    rows_golden("fast_dllm_v2_cached");
}

#[cfg(feature = "pte")]
#[test]
fn pte_llada_rows_matches_reference() {
    rows_golden("llada");
}

#[cfg(feature = "pte")]
#[test]
fn pte_dream_rows_matches_reference() {
    rows_golden("dream");
}
