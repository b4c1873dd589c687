//! Silent weight corruption (issue 13, "Beyond"): flipping bytes in the weight segments changed
//! the answer with no error in 26 of 250 tries. Exports now record the SHA-256 of their
//! segments (`get_weights_digest`); `PteModel::verify_weights`, `LoadOptions::verify_weights`,
//! `diffulex verify` and `diffulex generate --verify` compare it with the bytes.
//!
//! Independent reference: the recorded digests are computed by the Python exporter
//! (`diffulex_export.export.weights_digest`, hashlib) from the bytes it writes.
#![cfg(all(feature = "cli", feature = "pte"))]

use diffulex_edge::pte::{weights_digest_of_bytes, PteModule};
use diffulex_edge::runtime::LoadOptions;
use diffulex_edge::runtime::{EngineError, PteModel};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/pte"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pte"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 19);
    v
}

#[test]
fn every_fixture_matches_the_digest_python_recorded() {
    for path in fixtures() {
        let mapped = PteModel::load(&path).unwrap();
        let recorded = *mapped.weights_digest().expect("fixture records its digest");
        let got = mapped.verify_weights().unwrap();
        assert_eq!(got.sha256, recorded, "{}", path.display());
        assert_eq!(
            got.offset + got.bytes,
            std::fs::metadata(&path).unwrap().len()
        );
        // The same through a module that owns its bytes, and through the plain function.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(weights_digest_of_bytes(&bytes).unwrap().sha256, recorded);
        let copied = PteModel::from_module(PteModule::from_bytes(bytes).unwrap()).unwrap();
        assert_eq!(copied.verify_weights().unwrap().sha256, recorded);
        PteModel::load_with(&path, &LoadOptions::default().with_verify_weights(true)).unwrap();
    }
}

#[test]
fn every_flipped_segment_byte_is_detected() {
    // 250 single-bit flips at seeded offsets across the segments of each of two fixtures (an
    // XNNPACK and a portable program): each is refused at load (a payload header the integrity
    // check rejects) or by the weights check; none loads as intact.
    for name in ["llada.pte", "sdar_cached_portable.pte"] {
        let path = root().join("tests/fixtures/pte").join(name);
        let bytes = std::fs::read(&path).unwrap();
        let d = weights_digest_of_bytes(&bytes).unwrap();
        let (base, n) = (d.offset as usize, d.bytes as usize);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let (mut corrupt, mut refused) = (0, 0);
        for k in 0..250 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = base + (state >> 33) as usize % n;
            let mut b = bytes.clone();
            b[off] ^= 1 << (k % 8);
            match PteModule::from_bytes(b) {
                Err(_) => refused += 1,
                Ok(m) => match PteModel::from_module(m).unwrap().verify_weights() {
                    Err(EngineError::WeightsCorrupt { .. }) => corrupt += 1,
                    other => panic!("{name}: flip at {off} not detected: {other:?}"),
                },
            }
        }
        assert_eq!(corrupt + refused, 250, "{name}");
        assert!(
            corrupt > 200,
            "{name}: {corrupt} flips reached the weights check"
        );
    }
}

#[test]
fn a_file_without_a_digest_cannot_be_verified() {
    let path = root().join("models/default/model.pte");
    let m = PteModel::load(&path).unwrap();
    assert!(m.weights_digest().is_none());
    assert!(matches!(
        m.verify_weights(),
        Err(EngineError::NoWeightsDigest { .. })
    ));
    // Loading without verification still works: older files keep loading.
    assert!(PteModel::load_with(&path, &LoadOptions::default()).is_ok());
}

fn diffulex(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_verify_and_generate_verify() {
    let out = diffulex(&["verify", "tests/fixtures/pte/dream.pte"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("weights intact"), "{stdout}");

    let dir = std::env::temp_dir().join(format!("diffulex-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("model.pte");
    let mut bytes = std::fs::read(root().join("tests/fixtures/pte/dream.pte")).unwrap();
    let last = bytes.len() - 4096;
    bytes[last] ^= 0x40;
    std::fs::write(&bad, &bytes).unwrap();
    let bad_s = bad.to_str().unwrap();
    for args in [
        vec!["verify", bad_s],
        vec![
            "generate",
            "--model",
            bad_s,
            "--tokenizer",
            "tests/fixtures/ckpt/dream/tokenizer.json",
            "--prompt",
            "hello",
            "--max-new-tokens",
            "4",
            "--verify",
        ],
    ] {
        let out = diffulex(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("weights are corrupt"), "{err}");
    }
    // The bundled model predates the digest: verify says so.
    let out = diffulex(&["verify", "models/default/model.pte"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("records no weights digest"));
    std::fs::remove_dir_all(&dir).unwrap();
}
