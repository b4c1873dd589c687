//! Replays the committed fuzz corpora through the fuzz targets' own harnesses, on stable Rust:
//! the seeds (`fuzz/seeds/<target>`) and the minimized corpora grown by the 30-minute runs
//! (`fuzz/corpus/<target>`, docs/reliability.md). Every input must run without a panic or a
//! crash, as it did when the fuzzer kept it; a regression that makes one of them fail or
//! kill the process fails this test. The fuzz-found crash reproducers are replayed one per
//! child process by `tests/hostile_pte.rs`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use diffulex_edge::text::TextTokenizer;

#[path = "../fuzz/harness/chat_template.rs"]
mod chat_template;
#[cfg(feature = "cli")]
#[path = "../fuzz/harness/cli.rs"]
mod cli;
#[path = "../fuzz/harness/engine.rs"]
mod engine;
#[cfg(feature = "pte")]
#[path = "../fuzz/harness/pte_load.rs"]
mod pte_load;
#[path = "../fuzz/harness/text.rs"]
mod text;

/// Every file of the target's seed and corpus directories, sorted (so a failure names the
/// same file on every run).
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [
        root.join("seeds").join(target),
        root.join("corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.sort();
    assert!(!files.is_empty(), "no fuzz inputs for {target}");
    files
}

fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let files = inputs(target);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("{target}: {}", f.display());
        run(&data);
    }
    files.len()
}

#[cfg(feature = "pte")]
#[test]
fn pte_load_corpus_replays() {
    let n = replay("pte_load", pte_load::run_bytes);
    eprintln!("pte_load: {n} inputs");
}

#[test]
fn text_corpus_replays() {
    let n = replay("text", |d| text::run_bytes(bundled_tokenizer(), d));
    eprintln!("text: {n} inputs");
}

fn bundled_tokenizer() -> &'static TextTokenizer {
    static TOK: OnceLock<TextTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/tokenizer.json");
        TextTokenizer::from_file(p).expect("bundled tokenizer")
    })
}

#[test]
fn chat_template_corpus_replays() {
    let n = replay("chat_template", |d| {
        chat_template::run_bytes(bundled_tokenizer(), d)
    });
    eprintln!("chat_template: {n} inputs");
}

#[test]
fn engine_corpus_replays() {
    let n = replay("engine", engine::run_bytes);
    eprintln!("engine: {n} inputs");
}

#[cfg(feature = "cli")]
#[test]
fn cli_corpus_replays() {
    let n = replay("cli", cli::run_bytes);
    eprintln!("cli: {n} inputs");
}
