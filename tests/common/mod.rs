//! Shared helpers for the PTE integration tests: fixture paths and the JSON expectations
//! written by tools/make_pte_fixtures.py (PyTorch eager outputs).
#![allow(dead_code)]

pub mod golden_sampler;

use std::path::PathBuf;

use diffulex_edge::pte::{DType, Output, PteModule, Tensor};
use half::{bf16, f16};
use serde::Deserialize;

/// Path of a committed fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/basic")
        .join(name)
}

#[derive(Debug, Deserialize)]
pub struct Spec {
    pub file: String,
    pub backends: std::collections::BTreeMap<String, Vec<String>>,
    pub calls: Vec<Call>,
}

#[derive(Debug, Deserialize)]
pub struct Call {
    pub method: String,
    pub inputs: Vec<Value>,
    pub outputs: Vec<Value>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Value {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<serde_json::Value>,
}

pub fn spec(name: &str) -> Spec {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).expect("fixture JSON");
    serde_json::from_str(&text).expect("valid fixture JSON")
}

/// Typed storage for one input, kept alive while the `Tensor` borrows it.
pub enum Store {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

impl Value {
    pub fn numbers(&self) -> Vec<f64> {
        self.data
            .iter()
            .map(|v| match v {
                serde_json::Value::Bool(b) => f64::from(u8::from(*b)),
                other => other.as_f64().expect("number"),
            })
            .collect()
    }

    pub fn store(&self) -> Store {
        let n = self.numbers();
        match self.dtype.as_str() {
            "f32" => Store::F32(n.iter().map(|&v| v as f32).collect()),
            "f16" => Store::F16(n.iter().map(|&v| f16::from_f64(v)).collect()),
            "bf16" => Store::BF16(n.iter().map(|&v| bf16::from_f64(v)).collect()),
            "i64" => Store::I64(n.iter().map(|&v| v as i64).collect()),
            "i32" => Store::I32(n.iter().map(|&v| v as i32).collect()),
            "bool" => Store::Bool(n.iter().map(|&v| v != 0.0).collect()),
            other => panic!("unsupported fixture dtype {other}"),
        }
    }
}

pub fn tensor<'a>(store: &'a Store, shape: &[usize]) -> Tensor<'a> {
    match store {
        Store::F32(v) => Tensor::f32(v, shape),
        Store::F16(v) => Tensor::f16(v, shape),
        Store::BF16(v) => Tensor::bf16(v, shape),
        Store::I64(v) => Tensor::i64(v, shape),
        Store::I32(v) => Tensor::i32(v, shape),
        Store::Bool(v) => Tensor::bool(v, shape),
    }
}

/// Compares one output with its expectation: dtype, shape, and every value within `tol`
/// (absolute, relative to max(1, |expected|)).
pub fn assert_output(out: &Output<'_>, want: &Value, tol: f64, what: &str) {
    assert_eq!(
        out.dtype(),
        DType::parse(&want.dtype).expect("dtype"),
        "{what}: dtype"
    );
    assert_eq!(out.shape(), want.shape.as_slice(), "{what}: shape");
    let got = out.to_owned().expect("readable output").to_f64_vec();
    let exp = want.numbers();
    assert_eq!(got.len(), exp.len(), "{what}: element count");
    for (i, (g, e)) in got.iter().zip(&exp).enumerate() {
        let err = (g - e).abs() / e.abs().max(1.0);
        assert!(
            err <= tol,
            "{what}: element {i}: got {g}, expected {e} (error {err:e} > {tol:e})"
        );
    }
}

/// Replays every call of a fixture on one loaded module, in order.
pub fn replay(name: &str, tol: f64) -> PteModule {
    let spec = spec(name);
    let mut module = PteModule::load(fixture(&spec.file)).expect("load fixture");
    for (k, call) in spec.calls.iter().enumerate() {
        let stores: Vec<Store> = call.inputs.iter().map(Value::store).collect();
        let inputs: Vec<Tensor<'_>> = stores
            .iter()
            .zip(&call.inputs)
            .map(|(s, v)| tensor(s, &v.shape))
            .collect();
        let outputs = module
            .execute(&call.method, &inputs)
            .unwrap_or_else(|e| panic!("{name} call {k} ({}): {e}", call.method));
        assert_eq!(
            outputs.len(),
            call.outputs.len(),
            "{name} call {k}: output count"
        );
        for (i, want) in call.outputs.iter().enumerate() {
            let out = outputs.get(i).expect("output");
            assert_output(
                &out,
                want,
                tol,
                &format!("{name} call {k} `{}` output {i}", call.method),
            );
        }
    }
    module
}
