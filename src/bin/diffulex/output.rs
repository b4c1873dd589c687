//! Writing to stdout and stderr the way Unix tools do, and the one-line error format.
//!
//! `print!` panics when stdout is a closed pipe (`diffulex generate | head -c 1`) or a full
//! disk (`> /dev/full`). Every write of the CLI goes through [`write_stdout`] instead: a closed
//! pipe becomes [`StdoutClosed`], which `main` turns into a quiet exit 0 (the reader has what
//! it wanted), and any other failure an ordinary error (one `error:` line, exit 1). Writes to
//! stderr ignore failures: there is nowhere left to report them.

use std::io::Write;

/// The reader of stdout went away (EPIPE): stop quietly.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to stdout and flushes it (output is streamed as it is produced).
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// Whether `e` is (or was caused by) a closed stdout.
pub fn stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// Writes one line to stderr, ignoring failures (a closed or full stderr must not panic).
pub fn eprint_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// `text` on one line, safe to show on a terminal: control characters (newlines, escape
/// sequences) and the invisible characters that reorder or hide text (bidirectional overrides,
/// zero-width characters) become their Rust escapes (`\n`, `\u{1b}`, `\u{202e}`), so a path or
/// value chosen by someone else cannot break the line or drive the terminal. Other text,
/// non-ASCII included, is kept as it is.
pub fn one_line(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        );
        if c.is_control() || hidden {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

/// A clap error as one line for `error: …`: clap's message (the text before its first blank
/// line, without the `error: ` prefix) and its tips, with control characters escaped. Clap's
/// indented `[possible values: …]` line joins the message ("invalid value 'x' for
/// '--model-type <TYPE>' [possible values: …]"); other newlines, such as one inside a value
/// the user typed, are escaped like any control character.
pub fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts = rendered.split("\n\n");
    let head = parts.next().unwrap_or_default();
    let head = head.strip_prefix("error: ").unwrap_or(head);
    let mut msg = one_line(&head.trim_end().replace("\n  [", " ["));
    for tip in parts.filter_map(|p| p.trim().strip_prefix("tip: ")) {
        msg.push_str("; tip: ");
        msg.push_str(&one_line(tip.trim_end()));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(
            one_line("a\nb\x1b[31mc\u{202e}é\"\\\te\u{301}"),
            "a\\nb\\u{1b}[31mc\\u{202e}é\"\\\\te\u{301}"
        );
    }
}
