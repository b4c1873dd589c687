//! The golden files of tools/make_goldens.py (Python reference decoders' tokens) and the
//! engine runs that must reproduce them, shared by engine_parity.rs and vulkan.rs.
#![allow(dead_code)]

use super::golden_sampler::{n, sampler_from};
#[cfg(feature = "pte")]
use diffulex_edge::runtime::PteModel;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, Family, ModelMetadata, ModelType,
    StopReason,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

pub fn goldens_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/goldens")
}

pub fn load(name: &str) -> Value {
    let p = goldens_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("golden json")
}

pub fn meta_from(v: &Value) -> ModelMetadata {
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
        // get_cache_modes bit 2 (contract 3 Fast-dLLM v2).
        sub_block_cache: v["cache_modes"].as_i64().is_some_and(|m| m & 4 != 0),
    }
}

pub fn config_from(family: Family, c: &Value) -> DiffusionGenerationConfig {
    let mut cfg = DiffusionGenerationConfig::new(n(c, "max_new_tokens").unwrap())
        .with_seed(c["seed"].as_u64().unwrap())
        .with_sampler(sampler_from(family, &c["sampler"]));
    if let Some(ids) = c["stop_ids"].as_array() {
        cfg.stop_ids = Some(ids.iter().map(|x| x.as_i64().unwrap()).collect());
    }
    cfg
}

pub fn prompt(c: &Value) -> Vec<i64> {
    c["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Runs every case of a golden file with one engine per KV-cache mode built from `make()`
/// (so engines are also exercised across many generations); returns tokens by case name.
/// Prints each case's time (shown with `--nocapture`: slow devices, such as lavapipe).
pub fn check_golden<M, F>(name: &str, mut make: F) -> HashMap<String, Vec<i64>>
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
        let started = std::time::Instant::now();
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
        eprintln!(
            "{name}: {} done in {:.1} s",
            c["name"],
            started.elapsed().as_secs_f64()
        );
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
pub fn check_cached_equals_uncached(name: &str, got: &HashMap<String, Vec<i64>>) {
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
pub fn pte_golden(name: &str) -> HashMap<String, Vec<i64>> {
    let g = load(name);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(g["pte"].as_str().unwrap());
    let got = check_golden(name, || PteModel::load(&path).unwrap());
    let meta = meta_from(&g["meta"]);
    if meta.use_kv_cache {
        check_cached_equals_uncached(name, &got);
    }
    got
}
