//! Fuzz target: hostile chat templates (harness in `fuzz/harness/chat_template.rs`).
#![no_main]

use std::sync::OnceLock;

use diffulex_edge::text::TextTokenizer;

#[path = "../harness/chat_template.rs"]
mod harness;

fn tokenizer() -> &'static TextTokenizer {
    static TOK: OnceLock<TextTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/default/tokenizer.json"
        );
        TextTokenizer::from_file(p).expect("bundled tokenizer")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run_bytes(tokenizer(), data));
