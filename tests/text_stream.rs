//! Streaming detokenization with a byte-level BPE tokenizer (the fixtures' 512-token vocab):
//! multi-byte characters are split across tokens, and the stream must never print a broken
//! character, while the concatenated chunks equal the tokenizer's own full decode.

use diffulex_edge::text::{StreamDecoder, TextTokenizer};

fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ckpt/sdar/tokenizer.json"
    ))
    .unwrap()
}

#[test]
fn multibyte_characters_are_never_split() {
    let tok = tokenizer();
    for text in [
        "héllo wörld",
        "日本語のテキスト",
        "emoji 🦀 and ∑ math",
        "plain ascii",
    ] {
        let ids = tok.encode(text, false).unwrap();
        // The vocabulary is tiny, so non-ASCII characters are split across tokens: decoding
        // such a token alone gives a replacement character. Make sure the test exercises that.
        let partial = ids
            .iter()
            .filter(|&&id| tok.decode(&[id], true).unwrap().contains('\u{FFFD}'))
            .count();
        assert_eq!(partial > 0, !text.is_ascii(), "{text}: {ids:?}");
        let mut stream = StreamDecoder::new(true);
        let mut out = String::new();
        for &id in &ids {
            let chunk = stream.push(&tok, &[id]).unwrap();
            assert!(
                !chunk.contains('\u{FFFD}'),
                "{text}: broken chunk {chunk:?}"
            );
            out += &chunk;
        }
        out += &stream.finish(&tok).unwrap();
        assert_eq!(out, tok.decode(&ids, true).unwrap(), "{text}");
        assert_eq!(out, text);
    }
}

#[test]
fn blocks_of_tokens_stream_like_single_tokens() {
    let tok = tokenizer();
    let text = "naïve café — déjà vu";
    let ids = tok.encode(text, false).unwrap();
    let mut stream = StreamDecoder::new(true);
    let mut out = String::new();
    for block in ids.chunks(4) {
        out += &stream.push(&tok, block).unwrap();
    }
    out += &stream.finish(&tok).unwrap();
    assert_eq!(out, text);
}
