//! `diffulex chat` with its input piped: each line is a user turn, and each answer must be what
//! `diffulex generate --messages` gives for the whole conversation so far (a fresh run on the
//! transcript), so the conversation state, the template and any reuse of the KV cache between
//! turns cannot change an answer.
#![cfg(all(feature = "cli", feature = "pte"))]

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

fn chat(args: &[&str], input: &str) -> (Vec<String>, String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .arg("chat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A chat that refuses its flags exits before reading: its stdin is then closed (EPIPE),
    // which is the program's business, not the test's.
    let written = child.stdin.take().unwrap().write_all(input.as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    let answers = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (
        answers,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn fresh_answer(messages: &Value) -> String {
    let path = std::env::temp_dir().join(format!(
        "diffulex-chat-{}-{}.json",
        std::process::id(),
        messages.to_string().len()
    ));
    std::fs::write(&path, messages.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["generate", "--json", "--messages", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn every_turn_answers_as_a_fresh_run_on_the_transcript() {
    let turns = ["12+34=", "7+8=", "905+88="];
    let (answers, stderr, code) = chat(&["--system", "1+1=2"], &(turns.join("\n") + "\n"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(answers.len(), turns.len(), "{answers:?} {stderr}");
    let mut messages = vec![json!({ "role": "system", "content": "1+1=2" })];
    for (turn, answer) in turns.iter().zip(&answers) {
        messages.push(json!({ "role": "user", "content": turn }));
        assert_eq!(
            answer,
            &fresh_answer(&Value::from(messages.clone())),
            "turn {turn}"
        );
        messages.push(json!({ "role": "assistant", "content": answer }));
    }
    assert_eq!(
        stderr.matches("tokens/s").count(),
        turns.len(),
        "one stats line per turn: {stderr}"
    );
}

#[test]
fn reset_starts_over_and_exit_stops_reading() {
    let (answers, stderr, code) = chat(&[], "12+34=\n/reset\n12+34=\n/exit\n7+8=\n");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        answers[0], answers[1],
        "after /reset the same question gets the same answer"
    );
    assert!(stderr.contains("[new conversation]"));
}

#[test]
fn a_turn_that_does_not_fit_is_an_error_naming_the_way_out() {
    let long = "1+".repeat(400) + "1=";
    let (_, stderr, code) = chat(&[], &format!("{long}\n"));
    assert_eq!(code, 1);
    assert!(stderr.contains("/reset"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

/// A flag error names the flag only (it used to be reported as the conversation's lack of room).
#[test]
fn a_zero_answer_length_is_the_flags_error() {
    let (_, stderr, code) = chat(&["--max-new-tokens", "0"], "1+1=\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--max-new-tokens must be at least 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("conversation"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
