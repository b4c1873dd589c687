//! Rust engine == Python reference decoders (goldens from tools/make_goldens.py), token for token,
//! for every fixture and mode; and KV-cache == recompute at temperature 0 for block-causal models.

#[path = "common/golden_sampler.rs"]
mod golden_sampler;

#[cfg(feature = "pte")]
use diffulex_edge::runtime::PteModel;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, Family, HashModel, ModelMetadata,
    ModelType, StopReason,
};
use golden_sampler::{n, sampler_from};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

fn goldens_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/goldens")
}

fn load(name: &str) -> Value {
    let p = goldens_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("golden json")
}

fn meta_from(v: &Value) -> ModelMetadata {
    let u = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("meta {k}")) as usize;
    ModelMetadata {
        family: v["family"].as_str().unwrap().parse().unwrap(),
        max_seq_len: u("max_seq_len"),
        vocab_size: u("vocab_size"),
        mask_token_id: v["mask_token_id"].as_i64().unwrap(),
        eos_ids: v["eos_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect(),
        block_size: u("block_size"),
        sub_block_size: u("sub_block_size"),
        use_kv_cache: v["use_kv_cache"].as_bool().unwrap(),
        shift_logits: v["shift_logits"].as_bool().unwrap(),
        pad_id: v["pad_id"].as_i64().unwrap(),
    }
}

fn config_from(family: Family, c: &Value) -> DiffusionGenerationConfig {
    let mut cfg = DiffusionGenerationConfig::new(n(c, "max_new_tokens").unwrap())
        .with_seed(c["seed"].as_u64().unwrap())
        .with_sampler(sampler_from(family, &c["sampler"]));
    if let Some(ids) = c["stop_ids"].as_array() {
        cfg.stop_ids = Some(ids.iter().map(|x| x.as_i64().unwrap()).collect());
    }
    cfg
}

fn prompt(c: &Value) -> Vec<i64> {
    c["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Runs every case of a golden file with one engine per KV-cache mode built from `make()`
/// (so engines are also exercised across many generations); returns tokens by case name.
fn check_golden<M, F>(name: &str, mut make: F) -> HashMap<String, Vec<i64>>
where
    M: DiffusionModel + Send + 'static,
    F: FnMut() -> M,
{
    let g = load(name);
    let meta = meta_from(&g["meta"]);
    let mut failures = Vec::new();
    let mut got = HashMap::new();
    let mut engines: HashMap<bool, DiffusionEngine> = HashMap::new();
    let cases = g["cases"].as_array().unwrap();
    for c in cases {
        let use_kv = c["use_kv_cache"].as_bool().unwrap();
        let engine = engines.entry(use_kv).or_insert_with(|| {
            DiffusionEngine::from_model(make(), ModelType::Family(meta.family), use_kv).unwrap()
        });
        let out = engine
            .generate(&prompt(c), &config_from(meta.family, c))
            .unwrap();
        let want: Vec<i64> = c["expected"]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let want_reason = match c["expected"]["stop_reason"].as_str().unwrap() {
            "eos" => StopReason::Eos(c["expected"]["stop_token"].as_i64().unwrap()),
            _ => StopReason::MaxNewTokens,
        };
        if out.tokens != want || out.stop_reason != want_reason {
            failures.push(format!(
                "{}: got {:?} {:?}, want {:?} {:?}",
                c["name"], out.tokens, out.stop_reason, want, want_reason
            ));
        }
        assert!(!out.tokens.contains(&meta.mask_token_id));
        got.insert(c["name"].as_str().unwrap().to_string(), out.tokens);
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    got
}

/// Greedy cases: the KV-cache run must equal the recompute run of the same case.
fn check_cached_equals_uncached(name: &str, got: &HashMap<String, Vec<i64>>) {
    let g = load(name);
    let mut pairs = 0;
    for c in g["cases"].as_array().unwrap() {
        let n = c["name"].as_str().unwrap();
        let greedy = c["sampler"]
            .get("temperature")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            == 0.0;
        // Cases run with the cache only (Fast-dLLM's prefix and dual modes) have no twin.
        let twin = n
            .strip_suffix("/kv")
            .and_then(|base| Some((base, got.get(&format!("{base}/nokv"))?)));
        if let (true, Some((base, other))) = (greedy, twin) {
            assert_eq!(&got[n], other, "{name}: {base} cached != uncached");
            pairs += 1;
        }
    }
    assert!(pairs > 0, "{name}: no greedy cached/uncached pairs");
}

#[cfg(feature = "pte")]
fn pte_golden(name: &str) -> HashMap<String, Vec<i64>> {
    let g = load(name);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(g["pte"].as_str().unwrap());
    let got = check_golden(name, || PteModel::load(&path).unwrap());
    let meta = meta_from(&g["meta"]);
    if meta.use_kv_cache {
        check_cached_equals_uncached(name, &got);
    }
    got
}

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
