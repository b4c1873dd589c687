//! The runtime's thread-pool size through the library API (`diffulex_edge::pte::threads`): it
//! reads back what was set, it is refused while a model is loaded, and the XNNPACK fixtures
//! decode the Python reference tokens (goldens from tools/make_goldens.py) with 1 and with 2
//! threads alike.
//!
//! The pool is process-wide, so these tests live in their own test binary (other binaries load
//! models concurrently) and take a lock so they do not resize it under each other.
#![cfg(feature = "pte")]

mod common;

use common::golden_sampler::sampler_from;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use diffulex_edge::pte::threads::{set_thread_count, thread_count, ThreadsError};
use diffulex_edge::pte::{PteModule, Tensor};
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, Family, ModelType, PteModel,
};
use serde_json::Value;

static POOL: Mutex<()> = Mutex::new(());

fn pool() -> MutexGuard<'static, ()> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn set_count_reads_back() {
    let _pool = pool();
    for n in [1, 2, 1] {
        set_thread_count(n).unwrap();
        assert_eq!(thread_count().unwrap(), n);
    }
    // Asking for the current size again is allowed and changes nothing.
    set_thread_count(1).unwrap();
    assert_eq!(thread_count().unwrap(), 1);
}

#[test]
fn zero_is_refused_with_what_to_pass() {
    let _pool = pool();
    set_thread_count(2).unwrap();
    let e = set_thread_count(0).unwrap_err();
    assert!(matches!(e, ThreadsError::Zero), "{e:?}");
    assert!(e.to_string().contains("at least 1"), "{e}");
    assert_eq!(thread_count().unwrap(), 2, "a refused call keeps the pool");
}

#[test]
fn refused_while_a_model_is_loaded() {
    let _pool = pool();
    set_thread_count(1).unwrap();
    let module = PteModule::load(root().join("tests/fixtures/pte/sdar_cached.pte")).unwrap();
    match set_thread_count(2) {
        Err(ThreadsError::ModulesAlive { alive }) => assert_eq!(alive, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(thread_count().unwrap(), 1);
    drop(module);
    set_thread_count(2).unwrap();
    assert_eq!(thread_count().unwrap(), 2);
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Decodes every case of an SDAR golden with a freshly loaded model (so the model's XNNPACK
/// methods are loaded with the current pool) and returns the mismatches.
fn golden_mismatches(name: &str) -> Vec<String> {
    let path = root().join(format!("tests/fixtures/goldens/{name}.json"));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let pte = root().join(g["pte"].as_str().unwrap());
    let mut mismatches = Vec::new();
    for use_kv in [true, false] {
        let model = PteModel::load(&pte).unwrap();
        let mut engine = DiffusionEngine::from_model(model, ModelType::Auto, use_kv).unwrap();
        for c in g["cases"].as_array().unwrap() {
            if c["use_kv_cache"].as_bool() != Some(use_kv) {
                continue;
            }
            let mut config =
                DiffusionGenerationConfig::new(c["max_new_tokens"].as_u64().unwrap() as usize)
                    .with_seed(c["seed"].as_u64().unwrap())
                    .with_sampler(sampler_from(Family::Sdar, &c["sampler"]));
            if c["stop_ids"].is_array() {
                config = config.with_stop_ids(ids(&c["stop_ids"]));
            }
            let out = engine.generate(&ids(&c["prompt"]), &config).unwrap();
            let want = ids(&c["expected"]["tokens"]);
            if out.tokens != want {
                mismatches.push(format!(
                    "{name} {}: got {:?}, want {want:?}",
                    c["name"], out.tokens
                ));
            }
        }
    }
    mismatches
}

#[test]
fn one_and_two_threads_decode_the_reference_tokens() {
    let _pool = pool();
    for n in [1, 2] {
        set_thread_count(n).unwrap();
        assert_eq!(thread_count().unwrap(), n);
        for name in ["sdar_cached", "sdar_cached_int8"] {
            let bad = golden_mismatches(name);
            assert!(bad.is_empty(), "{n} thread(s):\n{}", bad.join("\n"));
        }
    }
}

/// Logits of one forward over a full block-aligned prompt, loaded and run with `n` threads.
fn logits_with(n: usize, pte: &str) -> Vec<f32> {
    set_thread_count(n).unwrap();
    let mut m = PteModule::load(root().join("tests/fixtures/pte").join(pte)).unwrap();
    let tokens: Vec<i64> = (0..32).map(|i| (i * 37 + 11) % 500 + 4).collect();
    let pos = [0i64];
    let out = m
        .execute(
            "forward",
            &[
                Tensor::i64(&tokens, &[1, tokens.len()]),
                Tensor::i64(&pos, &[1]),
            ],
        )
        .unwrap();
    let logits = out.get(0).unwrap().as_f32().unwrap().to_vec();
    logits
}

/// XNNPACK gives each output element to one thread, which reduces it in the same order
/// whatever the thread count: so the logits are bit-identical, not just close.
#[test]
fn logits_are_bit_identical_across_thread_counts() {
    let _pool = pool();
    for pte in ["sdar_cached.pte", "sdar_cached_int8.pte"] {
        let one = logits_with(1, pte);
        let two = logits_with(2, pte);
        assert_eq!(one.len(), two.len());
        let differing = one
            .iter()
            .zip(&two)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{pte}: {differing} of {} logits differ",
            one.len()
        );
    }
}
