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

/// Issue 13, item 12: contradictory model constants are refused at load with a typed error
/// naming both constants and their values. Starts from each fixture's real metadata (as
/// `PteModel::from_module` reads it, which calls `validate`) and breaks one constant at a time.
#[test]
fn contradictory_constants_are_rejected_naming_both() {
    use diffulex_edge::runtime::{DiffusionModel, EngineError, ModelMetadata, PteModel};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |m: &ModelMetadata, want: (&str, i64, &str, i64)| {
        match m.validate() {
            Err(EngineError::ConflictingConstants {
                constant,
                value,
                other,
                other_value,
                ..
            }) => assert_eq!(
                (constant.as_str(), value, other, other_value),
                want,
                "{m:?}"
            ),
            other => panic!("{want:?}: expected ConflictingConstants, got {other:?}"),
        }
        let text = m.validate().unwrap_err().to_string();
        assert!(
            text.contains(&format!("{} = {}", want.0, want.1))
                && text.contains(&format!("{} = {}", want.2, want.3)),
            "{text}"
        );
    };
    for file in [
        "models/default/model.pte",
        "tests/fixtures/pte/sdar_cached.pte",
        "tests/fixtures/pte/fast_dllm_v2_uncached.pte",
        "tests/fixtures/pte/llada.pte",
        "tests/fixtures/pte/dream_rows.pte",
    ] {
        let good = PteModel::load(root.join(file)).unwrap().metadata().clone();
        good.validate().unwrap();
        let (v, mask) = (good.vocab_size as i64, good.mask_token_id);
        let vocab = v;
        // eos: -1, == vocab size, 2^40, == mask id (in first and in a later position)
        for bad in [-1, v, 1 << 40] {
            let mut m = good.clone();
            m.eos_ids[0] = bad;
            check(&m, ("get_eos_ids[0]", bad, "get_vocab_size", vocab));
        }
        let mut m = good.clone();
        m.eos_ids[0] = mask;
        check(&m, ("get_eos_ids[0]", mask, "get_mask_token_id", mask));
        let mut m = good.clone();
        m.eos_ids.push(mask);
        let k = m.eos_ids.len() - 1;
        check(
            &m,
            (
                &format!("get_eos_ids[{k}]"),
                mask,
                "get_mask_token_id",
                mask,
            ),
        );
        // mask == eos is the same pair seen from the mask's side: moving the mask onto the eos.
        let mut m = good.clone();
        m.mask_token_id = good.eos_ids[0];
        check(
            &m,
            (
                "get_eos_ids[0]",
                good.eos_ids[0],
                "get_mask_token_id",
                good.eos_ids[0],
            ),
        );
        // mask == pad (pad moved onto the mask, and the mask moved onto the pad)
        let mut m = good.clone();
        m.pad_id = mask;
        check(&m, ("get_pad_id", mask, "get_mask_token_id", mask));
        let mut m = good.clone();
        m.mask_token_id = good.pad_id;
        if !good.eos_ids.contains(&good.pad_id) {
            check(
                &m,
                ("get_pad_id", good.pad_id, "get_mask_token_id", good.pad_id),
            );
        } else {
            assert!(m.validate().is_err());
        }
        // pad and mask outside the vocabulary
        for bad in [-1, v, 1 << 40] {
            let mut m = good.clone();
            m.pad_id = bad;
            check(&m, ("get_pad_id", bad, "get_vocab_size", vocab));
            let mut m = good.clone();
            m.mask_token_id = bad;
            check(&m, ("get_mask_token_id", bad, "get_vocab_size", vocab));
        }
        // structural constants against the family and the context
        let family = good.family.id();
        let mut m = good.clone();
        m.shift_logits = !m.shift_logits;
        check(
            &m,
            (
                "shift_logits",
                i64::from(m.shift_logits),
                "get_family_id",
                family,
            ),
        );
        let mut m = good.clone();
        if good.family.block_causal() {
            m.block_size = good.max_seq_len + 1;
            let max = good.max_seq_len as i64;
            check(&m, ("get_block_size", max + 1, "get_max_seq_len", max));
            let mut m = good.clone();
            m.block_size = 0;
            check(&m, ("get_block_size", 0, "get_family_id", family));
        } else {
            m.block_size = 4;
            check(&m, ("get_block_size", 4, "get_family_id", family));
            // A cached llada/dream is contract 3 (Fast-dLLM's prefix and dual caches): the
            // constants agree; the program's version and inputs are checked by PteModel.
            let mut m = good.clone();
            m.use_kv_cache = true;
            assert!(m.validate().is_ok() && m.has_bidirectional_cache());
            let mut m = good.clone();
            m.sub_block_size = 2;
            check(&m, ("get_sub_block_size", 2, "get_family_id", family));
        }
        let mut m = good.clone();
        m.eos_ids.clear();
        assert!(matches!(m.validate(), Err(EngineError::Metadata(_))));
    }
}

/// Issue 17: contract 3 marks the LLaDA/Dream programs with Fast-dLLM's caches; the engine
/// reads that they have one, and older files still load without.
#[test]
fn bidirectional_cache_is_read_from_contract_3_files() {
    use diffulex_edge::runtime::{DiffusionModel, PteModel};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pte");
    for (file, cached) in [
        ("llada_cached.pte", true),
        ("dream_cached.pte", true),
        ("llada.pte", false),
        ("dream_rows.pte", false),
        ("sdar_cached.pte", false),
    ] {
        let model = PteModel::load(root.join(file)).unwrap();
        assert_eq!(model.metadata().has_bidirectional_cache(), cached, "{file}");
        let mut module = diffulex_edge::pte::PteModule::load(root.join(file)).unwrap();
        let version = module.constant_i64("get_contract_version").unwrap();
        assert_eq!(version == 3, cached, "{file}: contract {version}");
        assert_eq!(module.has_method("get_cache_modes"), cached, "{file}");
    }
}

/// Fast-dLLM v2's sub-block cache: a cached contract-3 Fast-dLLM v2 program says so with
/// `get_cache_modes` = 4 and the engine reads it; older cached files (contract 1 and 2) load
/// without it, and no other family may claim it.
#[test]
fn sub_block_cache_is_read_from_contract_3_fast_dllm_v2_files() {
    use diffulex_edge::runtime::{DiffusionModel, EngineError, Family, ModelMetadata, PteModel};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pte");
    for (file, sub_block) in [
        ("fast_dllm_v2_cached_rows.pte", true),
        ("fast_dllm_v2_cached.pte", false),
        ("fast_dllm_v2_uncached.pte", false),
        ("sdar_cached_rows.pte", false),
        ("llada_cached.pte", false),
    ] {
        let model = PteModel::load(root.join(file)).unwrap();
        let meta = model.metadata();
        assert_eq!(meta.sub_block_cache, sub_block, "{file}");
        assert_eq!(
            meta.takes_kv_end(),
            sub_block || meta.has_bidirectional_cache(),
            "{file}"
        );
        if sub_block {
            let mut module = diffulex_edge::pte::PteModule::load(root.join(file)).unwrap();
            assert_eq!(module.constant_i64("get_contract_version").unwrap(), 3);
            assert_eq!(module.constant_i64("get_cache_modes").unwrap(), 4);
        }
    }
    let mut sdar = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    sdar.use_kv_cache = true;
    sdar.sub_block_cache = true;
    assert!(matches!(
        sdar.validate(),
        Err(EngineError::ConflictingConstants {
            other: "get_family_id",
            ..
        })
    ));
    let mut fast = ModelMetadata::for_family(Family::FastDllmV2, 64, 32, 31, vec![1], 32);
    fast.sub_block_cache = true;
    assert!(matches!(
        fast.validate(),
        Err(EngineError::ConflictingConstants {
            other: "use_kv_cache",
            ..
        })
    ));
    fast.use_kv_cache = true;
    assert!(fast.validate().is_ok());
}
