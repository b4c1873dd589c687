//! Harness of the `text` fuzz target, shared with `tests/fuzz_replay.rs`. The tokenizer /
//! prompt path on arbitrary input: encoding any UTF-8 text (as user text, raw, and as a prompt
//! through `encode_prompt`, which must never hold a control token unless raw), decoding any ids
//! (negative, out of range, special), and streaming decoding in arbitrary chunks never panic;
//! the streamed text equals the one-shot decode whenever the latter succeeds.
use arbitrary::Arbitrary;
use diffulex_edge::text::{encode_prompt, PromptOptions, StreamDecoder, TextTokenizer};

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    ids: Vec<i64>,
    chunks: Vec<u8>,
    add_special: bool,
    skip_special: bool,
}

/// One input: the bytes decoded as libFuzzer's typed targets do, then checked against `tok`
/// (the bundled tokenizer).
pub fn run_bytes(tok: &TextTokenizer, data: &[u8]) {
    let Ok(inp) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    run(tok, inp);
}

fn run(tok: &TextTokenizer, inp: Input) {
    if let Ok(ids) = tok.encode(&inp.text, inp.add_special) {
        let _ = tok.decode(&ids, inp.skip_special);
    }
    let _ = tok.encode_raw(&inp.text, inp.add_special);
    // A user's prompt never holds a control token unless raw special tokens are asked for.
    for raw in [false, true] {
        let opts = PromptOptions {
            max_seq_len: 1 + inp.chunks.len() * 4,
            chat: None,
            raw_special_tokens: raw,
        };
        if let Ok(p) = encode_prompt(tok, &inp.text, &opts) {
            assert!(
                raw || !p.ids.iter().any(|&id| tok.is_control(id)),
                "control token in {:?}: {:?}",
                inp.text,
                p.ids
            );
            assert!(inp.text.len() <= tok.max_prompt_bytes(opts.max_seq_len));
        }
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
}
