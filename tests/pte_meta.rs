//! Metadata, constants, state and loading variants.
#![cfg(feature = "pte")]

mod common;

use common::{fixture, spec};
use diffulex_edge::pte::{DType, Dynamism, PteModule, Tensor, ValueKind};

#[test]
fn backends_match_the_export() {
    for name in ["mlp", "xnnpack", "dtypes", "quantized"] {
        let spec = spec(name);
        let m = PteModule::load(fixture(&spec.file)).unwrap();
        for (method, backends) in &spec.backends {
            assert_eq!(
                &m.method_meta(method).unwrap().backends,
                backends,
                "{name}::{method}"
            );
        }
    }
    let m = PteModule::load(fixture("xnnpack.pte")).unwrap();
    assert_eq!(
        m.method_meta("forward").unwrap().backends,
        ["XnnpackBackend"]
    );
}

#[test]
fn static_and_dynamic_inputs() {
    let m = PteModule::load(fixture("mlp.pte")).unwrap();
    let meta = m.method_meta("forward").unwrap();
    assert_eq!(meta.name, "forward");
    assert_eq!(meta.inputs.len(), 1);
    assert_eq!(meta.inputs[0].dtype, DType::F32);
    assert_eq!(meta.inputs[0].shape, [2, 8]);
    assert!(!meta.inputs[0].dynamic);
    assert_eq!(meta.outputs[0].shape, [2, 4]);

    let d = PteModule::load(fixture("dynamic.pte")).unwrap();
    let meta = d.method_meta("forward").unwrap();
    assert_eq!(meta.inputs[0].dtype, DType::I64);
    assert_eq!(meta.inputs[0].shape, [1, 16]);
    assert!(meta.inputs[0].dynamic);
    assert_eq!(meta.inputs[0].dynamism, Dynamism::Bounded);
    assert_eq!(meta.outputs[0].shape, [1, 16, 12]);
    assert_eq!(meta.inputs[0].to_string(), "i64[1, <=16]");
}

#[test]
fn constant_methods() {
    let mut m = PteModule::load(fixture("mlp.pte")).unwrap();
    let mut constants = m.constant_method_names().unwrap();
    constants.sort();
    assert_eq!(
        constants,
        ["get_answer", "get_eos_ids", "get_scale", "use_kv_cache"]
    );
    let meta = m.method_meta("get_answer").unwrap();
    assert!(meta.inputs.is_empty());
    assert_eq!(meta.outputs[0].kind, ValueKind::Int);
    assert_eq!(m.constant_i64("get_answer").unwrap(), 42);
    assert_eq!(m.constant_i64_list("get_eos_ids").unwrap(), [3, 7]);
    assert!(!m.constant_bool("use_kv_cache").unwrap());
    assert_eq!(m.constant_f64("get_scale").unwrap(), 0.5);
    let mut d = PteModule::load(fixture("dynamic.pte")).unwrap();
    assert_eq!(d.constant_i64("get_max_seq_len").unwrap(), 16);
}

#[test]
fn state_persists_across_calls_and_is_per_module() {
    let one = [1.0f32; 4];
    let mut a = PteModule::load(fixture("stateful.pte")).unwrap();
    let mut totals = Vec::new();
    for _ in 0..3 {
        let out = a.execute("forward", &[Tensor::f32(&one, &[4])]).unwrap();
        totals.push(out.get(0).unwrap().as_f32().unwrap().to_vec());
        let calls = out.get(1).unwrap().as_i64().unwrap()[0];
        assert_eq!(calls as usize, totals.len());
    }
    // Initial state arange(4), plus one per call.
    assert_eq!(totals[2], [3.0, 4.0, 5.0, 6.0]);
    let mut b = PteModule::load(fixture("stateful.pte")).unwrap();
    let out = b.execute("forward", &[Tensor::f32(&one, &[4])]).unwrap();
    assert_eq!(out.get(0).unwrap().as_f32().unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn from_bytes_matches_load() {
    let x: Vec<f32> = (0..16).map(|i| i as f32 / 7.0 - 1.0).collect();
    let mut a = PteModule::load(fixture("xnnpack.pte")).unwrap();
    let mut b = PteModule::from_bytes(std::fs::read(fixture("xnnpack.pte")).unwrap()).unwrap();
    assert_eq!(a.method_names().unwrap(), b.method_names().unwrap());
    assert_eq!(a.file_size(), b.file_size());
    let ya = a
        .execute("forward", &[Tensor::f32(&x, &[2, 8])])
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned()
        .unwrap();
    let yb = b
        .execute("forward", &[Tensor::f32(&x, &[2, 8])])
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned()
        .unwrap();
    assert_eq!(ya, yb);
}

#[test]
fn owned_copies_survive_the_next_call() {
    let mut m = PteModule::load(fixture("dynamic.pte")).unwrap();
    let t3 = [1i64, 2, 3];
    let first = m
        .execute("forward", &[Tensor::i64(&t3, &[1, 3])])
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned()
        .unwrap();
    let t5 = [4i64, 5, 6, 7, 8];
    let second = m
        .execute("forward", &[Tensor::i64(&t5, &[1, 5])])
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned()
        .unwrap();
    assert_eq!(first.shape(), &[1, 3, 12]);
    assert_eq!(second.shape(), &[1, 5, 12]);
    let again = m
        .execute("forward", &[Tensor::i64(&t3, &[1, 3])])
        .unwrap()
        .get(0)
        .unwrap()
        .to_owned()
        .unwrap();
    assert_eq!(first, again);
    // The owned copy can be fed back as an input elsewhere.
    assert_eq!(first.as_tensor().dtype(), DType::F32);
}

#[test]
fn module_moves_across_threads() {
    let m = PteModule::load(fixture("mlp.pte")).unwrap();
    let answer = std::thread::spawn(move || {
        let mut m = m;
        m.constant_i64("get_answer").unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(answer, 42);
}
