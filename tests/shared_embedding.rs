//! Contract 4 (the shared embedding table): a tied checkpoint's matrix stored once, as the
//! lm_head's quantized weights in the program's named data, gathered by the engine. The tokens
//! are checked against the reference decoders' goldens in tests/engine_parity.rs; this file
//! covers what the engine reads from the file and what it refuses.
#![cfg(feature = "pte")]

use diffulex_edge::pte::PteModule;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, Family, ModelType,
    PteModel,
};

const SHARED: [&str; 3] = [
    "fast_dllm_v2_shared_int8",
    "fast_dllm_v2_shared_8da4w",
    "fast_dllm_v2_shared_fp32",
];

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/pte/{name}.pte",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The hex of a key method's four big-endian words, as the named data spells the key.
fn key(module: &mut PteModule, method: &str) -> String {
    module
        .constant_i64_list(method)
        .unwrap()
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_table_is_the_named_data_the_key_methods_name() {
    for name in SHARED {
        let mut module = PteModule::load(fixture(name)).unwrap();
        let weight = key(&mut module, "get_embedding_weight_key");
        let layout = module.constant_i64_list("get_embedding_layout").unwrap();
        let (vocab, hidden) = (512, 64);
        let (row, scale_row) = match layout[..] {
            [32, 64, 0] => (hidden * 4, 0),
            [8, 64, 6] => (hidden, 4),
            [4, 32, 15] => (hidden / 2, 2 * 2),
            _ => panic!("{name}: unexpected layout {layout:?}"),
        };
        assert_eq!(
            module.named_data(&weight).unwrap().unwrap().len(),
            vocab * row
        );
        // A float32 table has no scales, and no method naming them.
        assert_eq!(module.has_method("get_embedding_scale_key"), scale_row > 0);
        if scale_row > 0 {
            let scale = format!("scale_{}", key(&mut module, "get_embedding_scale_key"));
            assert_eq!(
                module.named_data(&scale).unwrap().unwrap().len(),
                vocab * scale_row
            );
        }
        let model = PteModel::from_module(module).unwrap();
        assert_eq!(model.metadata().vocab_size, vocab, "{name}");
    }
}

#[test]
fn a_token_outside_the_vocabulary_is_refused_before_the_forward() {
    for name in SHARED {
        let mut model = PteModel::load(fixture(name)).unwrap();
        for bad in [512, -1, i64::MAX] {
            match model.forward(&[5, bad, 7], Some(0)) {
                Err(EngineError::TokenOutOfVocabulary {
                    index,
                    token,
                    vocab,
                }) => {
                    assert_eq!((index, token, vocab), (1, bad, 512), "{name}")
                }
                other => panic!("{name}: token {bad}: {other:?}"),
            }
        }
        // Nothing ran: the model keeps working.
        assert_eq!(model.forward(&[5, 6, 7], Some(0)).unwrap().rows(), 3);
    }
}

/// The key methods live in the flatbuffer; a key that names no entry (a damaged or hand-edited
/// file) is refused at load with the key, never read.
#[test]
fn a_key_naming_no_entry_is_refused_at_load() {
    let path = fixture("fast_dllm_v2_shared_int8");
    let mut module = PteModule::load(&path).unwrap();
    let first_word = module
        .constant_i64_list("get_embedding_weight_key")
        .unwrap()[0];
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = first_word.to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == needle)
        .expect("the key's first word is stored as an int64");
    bytes[at] ^= 0x01;
    let module = PteModule::from_bytes(bytes).unwrap();
    let err = PteModel::from_module(module).unwrap_err();
    assert!(
        matches!(err, EngineError::Metadata(ref m) if m.contains("has no named data")),
        "{err}"
    );
}

/// A contract-4 model decodes through the engine with its KV cache and the sub-block cache.
#[test]
fn the_engine_generates_from_a_shared_table_model() {
    for name in SHARED {
        let model = PteModel::load(fixture(name)).unwrap();
        assert!(model.metadata().sub_block_cache, "{name}");
        let mask = model.metadata().mask_token_id;
        let mut engine =
            DiffusionEngine::from_model(model, ModelType::Family(Family::FastDllmV2), true)
                .unwrap();
        let config = DiffusionGenerationConfig::new(40).with_stop_ids(vec![]);
        let out = engine.generate(&[10, 11, 12, 13], &config).unwrap();
        assert_eq!(out.tokens.len(), 40, "{name}");
        assert!(!out.tokens.contains(&mask), "{name}: {:?}", out.tokens);
    }
}
