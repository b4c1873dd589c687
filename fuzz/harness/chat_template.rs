//! Harness of the `chat_template` fuzz target, shared with `tests/fuzz_replay.rs`. Hostile chat
//! templates: the input is a template source, then optionally a 0 byte and the user's message
//! (both lossy UTF-8, so seeds are readable text). Rendering with a small step budget and
//! output bound never panics, hangs or allocates past the bounds; a marked rendering (user text
//! kept apart from the markup) has the same text as the plain one, its user ranges hold the
//! message verbatim (or trimmed), and no token of the user's text is a control token.
use diffulex_edge::text::{ChatTemplate, TextTokenizer};

/// Step budget per render: enough for every real template, small enough for fast runs.
pub const FUEL: u64 = 50_000;
/// Output bound per render.
pub const MAX_OUTPUT: usize = 1 << 16;

/// One input, checked against `tok` (the bundled tokenizer).
pub fn run_bytes(tok: &TextTokenizer, data: &[u8]) {
    let (source, content) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let source = String::from_utf8_lossy(source);
    let content = String::from_utf8_lossy(content);
    let tmpl = ChatTemplate::from_source(source.as_ref())
        .with_fuel(FUEL)
        .with_max_output_bytes(MAX_OUTPUT);
    let plain = tmpl.render_user(&content);
    if let Ok(text) = &plain {
        assert!(text.len() <= MAX_OUTPUT, "output past the bound");
    }
    let marked = tmpl.render_user_marked(&content);
    let Ok(marked) = marked else {
        return;
    };
    let plain = plain.expect("marked rendering succeeded where the plain one failed");
    assert_eq!(marked.text(), plain, "marked text != plain text");
    for r in marked.user_ranges() {
        let user = &marked.text()[r.clone()];
        assert!(
            user == content.as_ref() || user == content.trim(),
            "user range {r:?} holds {user:?}, not the message"
        );
    }
    if let Ok(tokens) = tok.encode_marked(&marked) {
        for t in tokens {
            assert!(
                !(t.from_user && tok.is_control(t.id)),
                "user text made control token {t:?}"
            );
        }
    }
}
