//! A corrupted XNNPACK delegate payload gives a typed error or runs; it never kills the process.
//!
//! `tests/fixtures/basic/xnnpack.pte` (payload in a segment) and `xnnpack_inline.pte` (the
//! same model, payload inline in the program) are loaded with one bit flipped at every byte
//! offset of their XNNPACK payload (found from the payload's own header, not hard-coded) and
//! `forward` is run on the fixture's input. The flips run in child processes (this test
//! binary re-run with an environment variable), so a segfault, abort or hang inside
//! ExecuTorch or XNNPACK shows up as a failure naming the offset instead of taking the
//! harness down. Before the payload
//! checks (`src/pte/verify/xnnpack_blob.rs`) 7 of these flips segfaulted the process (and flipping
//! each bit of every offset, with `DIFFULEX_XNN_FLIP_MASK`, killed it 78 times).
#![cfg(feature = "pte")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{fixture, spec, tensor, Store, Value};
use diffulex_edge::pte::{PteError, PteModule, Tensor};

const FROM_VAR: &str = "DIFFULEX_XNN_FLIP_FROM";
const FIXTURE_VAR: &str = "DIFFULEX_XNN_FLIP_FIXTURE";
/// Optional for manual sweeps: flip this mask at every offset instead of bit `offset % 8`.
const MASK_VAR: &str = "DIFFULEX_XNN_FLIP_MASK";

/// A flip that produces no result for this long is counted as a hang (a normal load and run
/// of this 2 KB model takes milliseconds).
const HANG: Duration = Duration::from_secs(60);

fn original(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("{name}.pte"))).expect("fixture")
}

fn le(bytes: &[u8], at: usize, n: usize) -> usize {
    bytes[at..at + n]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
}

/// The byte range of the (single) XNNPACK payload: it starts 4 bytes before the header magic
/// `XH00` and ends where the later of its flatbuffer and constant data ends.
fn payload_range(bytes: &[u8]) -> Range<usize> {
    let hits: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"XH00")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "expected one XNNPACK payload header");
    let start = hits[0] - 4;
    let h = &bytes[start..];
    let flatbuffer_end = le(h, 10, 4) + le(h, 14, 4);
    let constants_end = le(h, 18, 4) + le(h, 22, 8);
    let end = start + flatbuffer_end.max(constants_end);
    assert!(end <= bytes.len(), "payload ends inside the file");
    start..end
}

/// What loading and running one mutated file did.
fn outcome(bytes: Vec<u8>, inputs: &[Value]) -> String {
    let kind = |e: &PteError| match e {
        PteError::CorruptProgram { .. } => "corrupt".to_string(),
        other => format!("{:?}", other.code()),
    };
    let mut m = match PteModule::from_bytes(bytes) {
        Ok(m) => m,
        Err(e) => return format!("load-error {}", kind(&e)),
    };
    let stores: Vec<Store> = inputs.iter().map(Value::store).collect();
    let tensors: Vec<Tensor<'_>> = stores
        .iter()
        .zip(inputs)
        .map(|(s, v)| tensor(s, &v.shape))
        .collect();
    match m.execute("forward", &tensors) {
        Ok(out) => match out.get(0).and_then(|o| o.to_owned()) {
            Ok(_) => "ran".to_string(),
            Err(e) => format!("output-error {}", kind(&e)),
        },
        Err(e) => format!("run-error {}", kind(&e)),
    }
}

/// Child half: flips offsets from `$DIFFULEX_XNN_FLIP_FROM` to the payload's end, printing a
/// line before and after each, so the parent knows which offset a crash happened at.
#[test]
fn xnnpack_flip_child() {
    let Ok(from) = std::env::var(FROM_VAR) else {
        return;
    };
    let from: usize = from.parse().expect("offset");
    let name = std::env::var(FIXTURE_VAR).expect("fixture name");
    let bytes = original(&name);
    let mask: Option<u8> = std::env::var(MASK_VAR)
        .ok()
        .map(|m| m.parse().expect("mask"));
    let inputs = spec(&name).calls[0].inputs.clone();
    let mut out = std::io::stdout();
    for pos in from..payload_range(&bytes).end {
        let mut mutated = bytes.clone();
        mutated[pos] ^= mask.unwrap_or(1 << (pos % 8));
        writeln!(out, "flip-start {pos}").unwrap();
        out.flush().unwrap();
        let result = outcome(mutated, &inputs);
        writeln!(out, "flip-done {pos} {result}").unwrap();
        out.flush().unwrap();
    }
}

/// How each offset ended, from the parent's side.
#[derive(Debug)]
enum Ending {
    /// The child reported a result.
    Result(String),
    /// The child died while handling the offset.
    Killed(String),
    /// The child stopped answering.
    Hung,
}

/// Runs children from `range.start` on, restarting after each crash, until every offset of
/// `range` has an ending.
fn flip_all(name: &str, range: Range<usize>) -> Vec<(usize, Ending)> {
    let mut endings = Vec::new();
    let mut next = range.start;
    while next < range.end {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "xnnpack_flip_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FROM_VAR, next.to_string())
            .env(FIXTURE_VAR, name)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut current = None;
        loop {
            match rx.recv_timeout(HANG) {
                Ok(line) => {
                    // The harness prints "test xnnpack_flip_child ... " before the first line.
                    let Some(at) = line.find("flip-") else {
                        continue;
                    };
                    let mut words = line[at..].splitn(3, ' ');
                    match (words.next(), words.next().and_then(|p| p.parse().ok())) {
                        (Some("flip-start"), Some(pos)) => current = Some(pos),
                        (Some("flip-done"), Some(pos)) => {
                            endings.push((pos, Ending::Result(words.next().unwrap_or("").into())));
                            current = None;
                            next = pos + 1;
                        }
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    if let Some(pos) = current {
                        endings.push((pos, Ending::Killed(format!("{status:?}"))));
                        next = pos + 1;
                    } else {
                        // The child finished its range (or died between offsets).
                        assert!(status.success() || next >= range.end, "child: {status:?}");
                        next = next.max(range.end);
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    let pos = current.unwrap_or(next);
                    endings.push((pos, Ending::Hung));
                    next = pos + 1;
                    break;
                }
            }
        }
    }
    endings
}

/// Flips every offset of `name`'s payload; returns the outcome counts (after asserting that
/// nothing was killed or hung).
fn flip_fixture(name: &str) -> std::collections::BTreeMap<String, usize> {
    let bytes = original(name);
    let range = payload_range(&bytes);
    let endings = flip_all(name, range.clone());
    assert_eq!(endings.len(), range.len(), "every offset has an ending");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut dead = Vec::new();
    for (pos, ending) in &endings {
        match ending {
            Ending::Result(r) => *counts.entry(r.clone()).or_default() += 1,
            Ending::Killed(status) => dead.push(format!("offset {pos}: killed ({status})")),
            Ending::Hung => dead.push(format!("offset {pos}: no answer (hung)")),
        }
    }
    eprintln!(
        "{name}: {} offsets flipped ({}..{}): {counts:?}, killed or hung: {}",
        endings.len(),
        range.start,
        range.end,
        dead.len()
    );
    assert!(
        dead.is_empty(),
        "{name}: flips that killed the process: {dead:#?}"
    );
    let corrupt: usize = counts
        .iter()
        .filter(|(k, _)| k.contains("corrupt"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        corrupt > 0,
        "{name}: the payload checks rejected nothing: {counts:?}"
    );
    assert!(
        counts.contains_key("ran"),
        "{name}: no flip left a runnable program"
    );
    counts
}

#[test]
fn every_segment_payload_bit_flip_loads_runs_or_fails_typed() {
    flip_fixture("xnnpack");
}

#[test]
fn every_inline_payload_bit_flip_loads_runs_or_fails_typed() {
    flip_fixture("xnnpack_inline");
}

/// The inline-payload fixture is a valid export: it loads, passes the checks, and matches
/// PyTorch's outputs.
#[test]
fn inline_payload_fixture_matches_pytorch() {
    common::replay("xnnpack_inline", 1e-5);
}

/// `PteModule::load` reads a segment payload from disk for the checks (only its header and
/// graph), and rejects a corrupted one before the backend sees it.
#[test]
fn load_from_disk_checks_segment_payloads() {
    let mut bytes = original("xnnpack");
    let start = payload_range(&bytes).start;
    // The header's flatbuffer size, made larger than the payload.
    bytes[start + 14..start + 18].copy_from_slice(&u32::MAX.to_le_bytes());
    let path = std::env::temp_dir().join(format!("xnn-payload-{}.pte", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let err = match PteModule::load(&path) {
        Ok(_) => panic!("corrupt payload must be rejected"),
        Err(e) => e,
    };
    std::fs::remove_file(&path).ok();
    match &err {
        PteError::CorruptProgram { file, method, .. } => {
            assert_eq!(file.as_deref(), Some(path.as_path()));
            assert_eq!(method.as_deref(), Some("forward"));
        }
        other => panic!("expected CorruptProgram, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("XnnpackBackend") && text.contains("flatbuffer range"),
        "{text}"
    );
}
