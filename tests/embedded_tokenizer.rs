//! One-file models: `tests/fixtures/pte/sdar_embedded.pte` is `sdar_cached_rows.pte` exported with
//! `--embed-tokenizer` (tools/make_fixtures.py). Its embedded files must be the checkpoint's,
//! byte for byte; copied alone into an empty directory it must decode, chat and verify as its
//! twin does with the checkpoint's files beside it; and the weights digest must cover the
//! embedded files.
#![cfg(all(feature = "cli", feature = "pte"))]

use diffulex_edge::pte::PteModule;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn diffulex(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory holding nothing but a copy of the embedded fixture.
fn alone() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "diffulex-embedded-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.pte");
    std::fs::copy(fixtures().join("pte/sdar_embedded.pte"), &model).unwrap();
    (dir, model)
}

#[test]
fn embedded_files_are_the_checkpoints_byte_for_byte() {
    let module = PteModule::load(fixtures().join("pte/sdar_embedded.pte")).unwrap();
    let mut names: Vec<&str> = module.embedded_files().collect();
    names.sort_unstable();
    assert_eq!(names, ["tokenizer.json", "tokenizer_config.json"]);
    for name in names {
        let want = std::fs::read(fixtures().join("ckpt/sdar").join(name)).unwrap();
        assert_eq!(module.embedded_file(name).unwrap().unwrap(), want, "{name}");
    }
    assert!(module
        .embedded_file("chat_template.jinja")
        .unwrap()
        .is_none());
    // The same from a copy in memory.
    let bytes = std::fs::read(fixtures().join("pte/sdar_embedded.pte")).unwrap();
    let copy = PteModule::from_bytes(bytes).unwrap();
    let want = std::fs::read(fixtures().join("ckpt/sdar/tokenizer.json")).unwrap();
    assert_eq!(copy.embedded_file("tokenizer.json").unwrap().unwrap(), want);
}

#[test]
fn one_file_decodes_chats_and_verifies_as_its_twin_with_files_beside_it() {
    let (dir, model) = alone();
    let model = model.to_str().unwrap();
    let twin = fixtures().join("pte/sdar_cached_rows.pte");
    let tokenizer = fixtures().join("ckpt/sdar/tokenizer.json");
    let config = fixtures().join("ckpt/sdar/tokenizer_config.json");
    let (twin, tokenizer, config) = (
        twin.to_str().unwrap(),
        tokenizer.to_str().unwrap(),
        config.to_str().unwrap(),
    );
    let json = |args: &[&str]| -> Value {
        let (ok, stdout, stderr) =
            diffulex(&[&["generate", "--json", "--max-new-tokens", "16"], args].concat());
        assert!(ok, "{args:?}: {stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    for prompt in ["hello there", "the cat sat"] {
        let one = json(&["--model", model, "--prompt", prompt]);
        let two = json(&[
            "--model",
            twin,
            "--tokenizer",
            tokenizer,
            "--prompt",
            prompt,
        ]);
        assert_eq!(one["prompt_tokens"], two["prompt_tokens"], "{prompt}");
        assert_eq!(one["tokens"], two["tokens"], "{prompt}");
        let one = json(&["--model", model, "--chat", "--prompt", prompt]);
        let two = json(&[
            "--model",
            twin,
            "--tokenizer",
            tokenizer,
            "--chat-template",
            config,
            "--prompt",
            prompt,
        ]);
        assert_eq!(one["prompt_tokens"], two["prompt_tokens"], "chat {prompt}");
        assert_eq!(one["tokens"], two["tokens"], "chat {prompt}");
    }
    let (ok, stdout, stderr) = diffulex(&["inspect", model]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("embedded file: tokenizer.json") && stdout.contains("chat template:"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = diffulex(&["verify", model]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("embedded tokenizer.json") && stdout.contains("belongs to it"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Named data is segment data: one changed byte of the embedded tokenizer is a weights-digest
/// mismatch for `verify`.
#[test]
fn the_weights_digest_covers_the_embedded_files() {
    let (dir, model) = alone();
    let mut bytes = std::fs::read(&model).unwrap();
    let tokenizer = std::fs::read(fixtures().join("ckpt/sdar/tokenizer.json")).unwrap();
    let at = find(&bytes, &tokenizer).expect("the tokenizer's bytes are in the file");
    bytes[at + tokenizer.len() / 2] ^= 0x01;
    std::fs::write(&model, &bytes).unwrap();
    let (ok, _, stderr) = diffulex(&["verify", model.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("the weights are corrupt"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
