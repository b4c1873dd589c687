//! The tokenizer / prompt path on arbitrary input: encoding any UTF-8 text, decoding any ids
//! (negative, out of range, special), and streaming decoding in arbitrary chunks never panic;
//! the streamed text equals the one-shot decode whenever the latter succeeds.
#![no_main]

use arbitrary::Arbitrary;
use diffulex_edge::text::{StreamDecoder, TextTokenizer};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    ids: Vec<i64>,
    chunks: Vec<u8>,
    add_special: bool,
    skip_special: bool,
}

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

fuzz_target!(|inp: Input| {
    let tok = tokenizer();
    if let Ok(ids) = tok.encode(&inp.text, inp.add_special) {
        let _ = tok.decode(&ids, inp.skip_special);
    }
    // Ids: arbitrary, and also folded into the vocabulary so decoding succeeds often.
    let v = tok.vocab_size().max(1) as i64;
    for ids in [
        inp.ids.clone(),
        inp.ids.iter().map(|i| i.rem_euclid(v)).collect(),
    ] {
        let whole = tok.decode(&ids, inp.skip_special);
        let mut s = StreamDecoder::new(inp.skip_special);
        let mut streamed = String::new();
        let mut rest: &[i64] = &ids;
        let mut ok = true;
        for &c in inp.chunks.iter().chain(std::iter::once(&u8::MAX)) {
            let n = (c as usize % 4).min(rest.len());
            let n = if c == u8::MAX { rest.len() } else { n };
            match s.push(tok, &rest[..n]) {
                Ok(t) => streamed.push_str(&t),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
        }
        if ok {
            match s.finish(tok) {
                Ok(t) => streamed.push_str(&t),
                Err(_) => ok = false,
            }
        }
        if let (true, Ok(w)) = (ok, whole) {
            assert_eq!(streamed, w, "stream != decode for {ids:?}");
        }
    }
});
