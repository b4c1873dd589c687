//! A tokenizer that does not belong to the model (issue 13, item 9).
//!
//! Before: the bundled model's tokenizer.json with a fixture `.pte` was accepted (its 16 ids are
//! below the fixture's 512) and decoded every generated id to "". Now exports record the
//! SHA-256 of their tokenizer's vocabulary (`get_tokenizer_digest`), the engine compares it
//! with the tokenizer it is given, files without the digest have their special ids compared,
//! and ids the tokenizer cannot decode are shown as `<id:N>`.
//!
//! Independent reference: the digests in tests/fixtures/pte/manifest.json are computed by the
//! Python exporter (`diffulex_export.export.tokenizer_digest`, with the Python `tokenizers`
//! package) when tools/make_fixtures.py writes the fixtures.
#![cfg(all(feature = "cli", feature = "pte"))]

use diffulex_edge::runtime::{DiffusionModel, PteModel};
use diffulex_edge::text::{StreamDecoder, TextError, TextTokenizer};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn manifest() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/pte/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tokenizer(rel: &str) -> TextTokenizer {
    TextTokenizer::from_file(root().join(rel)).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const FAMILIES: [&str; 4] = ["sdar", "fast_dllm_v2", "llada", "dream"];

#[test]
fn recorded_digest_equals_the_python_and_rust_computations() {
    let m = manifest();
    assert_eq!(m.len(), 19);
    for (name, entry) in &m {
        let python = entry["tokenizer_digest"].as_str().unwrap();
        let ckpt = entry["checkpoint"].as_str().unwrap();
        let rust = tokenizer(&format!("{ckpt}/tokenizer.json")).vocab_digest();
        assert_eq!(hex(&rust), python, "{name}: Rust and Python digests differ");
        let model = PteModel::load(root().join(format!("tests/fixtures/pte/{name}.pte"))).unwrap();
        let recorded = model
            .tokenizer_digest()
            .expect("fixture records its tokenizer");
        assert_eq!(hex(recorded), python, "{name}: get_tokenizer_digest");
    }
}

#[test]
fn only_the_models_own_tokenizer_is_accepted() {
    for (name, entry) in &manifest() {
        let model = PteModel::load(root().join(format!("tests/fixtures/pte/{name}.pte"))).unwrap();
        let own = entry["checkpoint"].as_str().unwrap();
        for family in FAMILIES {
            let rel = format!("tests/fixtures/ckpt/{family}/tokenizer.json");
            let got = tokenizer(&rel).check_model(model.metadata(), model.tokenizer_digest());
            if rel.starts_with(own) {
                got.unwrap();
            } else {
                let e = got.unwrap_err();
                assert!(
                    matches!(e, TextError::Mismatch { .. }),
                    "{name} + {rel}: {e}"
                );
                assert!(e.to_string().contains("vocabulary digest"), "{e}");
            }
        }
        // The case: the bundled tokenizer (16 ids, all below 512) with a fixture.
        let e = tokenizer("models/default/tokenizer.json")
            .check_model(model.metadata(), model.tokenizer_digest())
            .unwrap_err();
        assert!(matches!(e, TextError::Mismatch { .. }), "{name}: {e}");
    }
}

#[test]
fn without_a_digest_the_special_ids_are_compared() {
    // The bundled model predates the digest: it has none, and its own tokenizer passes.
    let bundled = PteModel::load(root().join("models/default/model.pte")).unwrap();
    assert!(bundled.tokenizer_digest().is_none());
    let own = tokenizer("models/default/tokenizer.json");
    own.check_model(bundled.metadata(), None).unwrap();
    for family in FAMILIES {
        // Larger tokenizers: ids past the bundled model's 16.
        let other = tokenizer(&format!("tests/fixtures/ckpt/{family}/tokenizer.json"));
        let e = other.check_model(bundled.metadata(), None).unwrap_err();
        assert!(e.to_string().contains("ids up to 511"), "{e}");
        // Fixture metadata as an older file without the digest would have it: each fixture
        // family's mask id (3 or 5) is "<|unk|>" or an ordinary digit in the bundled tokenizer.
        let fixture = PteModel::load(root().join(format!(
            "tests/fixtures/pte/{}.pte",
            if family == "sdar" {
                "sdar_cached"
            } else if family == "fast_dllm_v2" {
                "fast_dllm_v2_cached"
            } else {
                family
            }
        )))
        .unwrap();
        let e = own.check_model(fixture.metadata(), None).unwrap_err();
        assert!(e.to_string().contains("mask id"), "{e}");
        // ... while the fixture's own tokenizer passes the fallback rule too.
        other.check_model(fixture.metadata(), None).unwrap();
        // Another fixture family's tokenizer: same size, but the mask id is not its mask
        // (llada's mask 5 is an ordinary token of the others; theirs, 3, is llada's
        // "<|end_header_id|>").
        let llada = tokenizer("tests/fixtures/ckpt/llada/tokenizer.json");
        if family != "llada" {
            assert!(
                llada.check_model(fixture.metadata(), None).is_err(),
                "{family}"
            );
            assert!(other
                .check_model(
                    PteModel::load(root().join("tests/fixtures/pte/llada.pte"))
                        .unwrap()
                        .metadata(),
                    None
                )
                .is_err());
        }
    }
}

#[test]
fn ids_the_tokenizer_cannot_decode_are_visible() {
    let tok = tokenizer("models/default/tokenizer.json");
    let ids = tok.encode("12+34=46", false).unwrap();
    let plain = tok.decode(&ids, true).unwrap();
    assert_eq!(plain, "12+34=46");
    // 16 and 151935 are past the tokenizer's 16 ids (a model's padded vocabulary).
    let mut with_unknown = ids.clone();
    with_unknown.insert(2, 16);
    with_unknown.push(151_935);
    assert_eq!(
        tok.decode(&with_unknown, true).unwrap(),
        "12<id:16>+34=46<id:151935>"
    );
    let only_unknown = [20i64, 21];
    assert_eq!(tok.decode(&only_unknown, true).unwrap(), "<id:20><id:21>");
    // Streaming shows the same text.
    let mut stream = StreamDecoder::new(true);
    let mut out = String::new();
    for id in &with_unknown {
        out += &stream.push(&tok, &[*id]).unwrap();
    }
    out += &stream.finish(&tok).unwrap();
    assert_eq!(out, "12<id:16>+34=46<id:151935>");
}

fn diffulex(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_refuses_another_models_tokenizer_in_one_line() {
    let fixture: PathBuf = ["tests", "fixtures", "pte", "sdar_cached.pte"]
        .iter()
        .collect();
    let out = diffulex(&[
        "generate",
        "--model",
        fixture.to_str().unwrap(),
        "--tokenizer",
        "models/default/tokenizer.json",
        "--prompt",
        "12+34=",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not belong to the model"), "{err}");
    // Its own tokenizer works.
    let out = diffulex(&[
        "generate",
        "--model",
        fixture.to_str().unwrap(),
        "--tokenizer",
        "tests/fixtures/ckpt/sdar/tokenizer.json",
        "--prompt",
        "hello",
        "--max-new-tokens",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
