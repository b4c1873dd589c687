//! Drives `diffulex bench` on committed fixtures: the JSON report's shape and the counts that do
//! not depend on timing (no timing assertions: the machine may be shared).
#![cfg(all(feature = "cli", feature = "pte"))]

use std::process::Command;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/pte/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .arg("bench")
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run diffulex")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = bench(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn json_report_has_every_measurement() {
    let model = fixture("sdar_cached.pte");
    let v = json(&[
        "--model",
        &model,
        "--prompt-len",
        "8",
        "--gen-len",
        "8",
        "--runs",
        "2",
        "--json",
    ]);
    assert_eq!(v["file_size"], std::fs::metadata(&model).unwrap().len());
    assert_eq!(v["family"], "sdar");
    assert_eq!(v["kv_cache"], true);
    assert_eq!(
        (v["prompt_len"].as_u64(), v["gen_len"].as_u64()),
        (Some(8), Some(8))
    );
    assert!(v["load_ms"].as_f64().unwrap() > 0.0);
    assert!(v["method_load_ms"].as_f64().unwrap() > 0.0);
    let runs = v["per_run"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        // eos never stops a benchmark run, so every run does the same work.
        assert_eq!(r["tokens"], 8);
        let overhead = r["engine_overhead"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&overhead), "{overhead}");
        let (exec, engine, total) = (
            r["execute_ms"].as_f64().unwrap(),
            r["engine_ms"].as_f64().unwrap(),
            r["total_ms"].as_f64().unwrap(),
        );
        assert!((exec + engine - total).abs() < 1e-6 * total.max(1.0), "{r}");
        assert!(r["first_token_ms"].as_f64().unwrap() <= total);
    }
    assert_eq!(v["tokens"].as_array().unwrap().len(), 8);
    let prompt = v["prompt_tokens"].as_array().unwrap();
    assert_eq!(prompt.len(), 8);
    // Each run carries the engine's serialized stats (as `generate --json` does) beside the
    // bench's own numbers.
    for key in [
        "prefill_forwards",
        "decode_forwards",
        "commit_forwards",
        "cfg_forwards",
        "tokens_generated",
        "tokens_committed",
        "tokens_per_forward",
        "logit_rows",
        "tokens_per_second",
        "prefill_ms",
        "decode_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
    ] {
        assert!(runs[0][key].is_number(), "per_run.{key}: {}", runs[0]);
    }
    assert_eq!(runs[0]["tokens_generated"], runs[0]["tokens"]);
    // Greedy decoding of a fixed prompt does the same forwards every run.
    assert_eq!(runs[0]["forwards"], runs[1]["forwards"]);
    let m = &v["median"];
    for key in [
        "total_ms",
        "first_token_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "tokens_per_forward",
        "forwards",
        "engine_overhead",
    ] {
        assert!(m[key].as_f64().is_some_and(f64::is_finite), "{key}: {m}");
    }
    let mem = &v["memory"];
    for stage in ["start", "after_load", "after_method_load", "end"] {
        for key in ["rss", "peak_rss", "anonymous", "private"] {
            assert!(mem[stage][key].as_u64().is_some(), "{stage}.{key}: {mem}");
        }
    }
    assert!(mem["peak_rss"].as_u64().unwrap() >= mem["end"]["rss"].as_u64().unwrap());
    assert!(mem["private_after_load_over_file"].as_f64().is_some());
}

#[test]
fn uncached_and_other_families_run() {
    for (name, extra) in [
        ("sdar_cached.pte", vec!["--no-kv-cache"]),
        ("fast_dllm_v2_cached.pte", vec![]),
        ("llada.pte", vec!["--steps", "4"]),
        ("dream.pte", vec!["--steps", "4"]),
    ] {
        let model = fixture(name);
        let mut args = vec![
            "--model",
            &model,
            "--prompt-len",
            "5",
            "--gen-len",
            "4",
            "--runs",
            "1",
            "--json",
        ];
        args.extend(extra);
        let v = json(&args);
        assert_eq!(v["per_run"][0]["tokens"], 4, "{name}");
        if name == "sdar_cached.pte" {
            assert_eq!(v["kv_cache"], false);
        }
    }
}

#[test]
fn unsupported_requests_fail_with_a_reason() {
    let model = fixture("sdar_cached.pte");
    let out = bench(&["--model", &model, "--runs", "0"]);
    assert!(!out.status.success());
    let out = bench(&["--model", "/no/such.pte"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.pte"));
    let out = bench(&["--model", &model, "--cfg-scale", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cfg-scale"));
}

#[test]
fn threads_are_set_and_reported() {
    let model = fixture("sdar_cached.pte");
    let run = |n: &str| {
        json(&[
            "--model",
            &model,
            "--prompt-len",
            "6",
            "--gen-len",
            "8",
            "--runs",
            "1",
            "--threads",
            n,
            "--json",
        ])
    };
    let one = run("1");
    let two = run("2");
    assert_eq!(one["threads"], 1);
    assert_eq!(two["threads"], 2);
    assert_eq!(one["prompt_tokens"], two["prompt_tokens"]);
    assert_eq!(one["tokens"], two["tokens"], "1 vs 2 threads");
}

#[test]
fn zero_threads_is_a_one_line_error() {
    let model = fixture("sdar_cached.pte");
    let out = bench(&["--model", &model, "--threads", "0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: --threads 0:"), "{stderr}");
    assert!(stderr.contains("at least 1"), "{stderr}");
}

#[test]
fn kv_cache_and_recompute_decode_the_same_tokens() {
    let model = fixture("sdar_cached.pte");
    let args = [
        "--model",
        &model,
        "--prompt-len",
        "6",
        "--gen-len",
        "12",
        "--runs",
        "1",
        "--json",
    ];
    let cached = json(&args);
    let mut uncached_args = args.to_vec();
    uncached_args.push("--no-kv-cache");
    let uncached = json(&uncached_args);
    assert_eq!(cached["prompt_tokens"], uncached["prompt_tokens"]);
    assert_eq!(cached["tokens"], uncached["tokens"]);
    assert_eq!(cached["tokens"].as_array().unwrap().len(), 12);
}

/// Asserts the one-line error contract: exit 1, a single `error:` line containing every
/// needle, no panic.
#[track_caller]
fn one_error_line(out: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "should mention {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// Issue 13, items 2 and 3: `--prompt-len` and `--gen-len` are checked against the model's
/// context with checked arithmetic before the prompt is allocated. These panicked (capacity
/// overflow), aborted, took 800 MB before the error, or (the wrapped sum) exited 0 with
/// "0 tokens, first token NaN ms".
#[test]
fn lengths_are_checked_before_anything_is_allocated() {
    let bundled = format!("{}/models/default/model.pte", env!("CARGO_MANIFEST_DIR"));
    for (args, flag) in [
        (vec!["--prompt-len", "18446744073709551615"], "--prompt-len"),
        (vec!["--gen-len", "18446744073709551615"], "--gen-len"),
        (vec!["--prompt-len", "1099511627776"], "--prompt-len"),
        (vec!["--prompt-len", "100000000"], "--prompt-len"),
        (
            vec!["--gen-len", "18446744073709551615", "--prompt-len", "8"],
            "--gen-len 18446744073709551615",
        ),
        (
            vec!["--gen-len", "40", "--prompt-len", "40"],
            "--prompt-len 40 + --gen-len 40",
        ),
        (vec!["--gen-len", "0"], "--gen-len"),
    ] {
        let mut full = vec!["--model", bundled.as_str()];
        full.extend(args.iter().copied());
        let out = bench(&full);
        one_error_line(&out, &[flag]);
        if !args.contains(&"0") {
            one_error_line(&out, &["context of 64"]);
        }
    }
}

/// Issue 13, item 13: the README's `diffulex bench --model models/default/model.pte` runs on
/// the bundled model (a 64-token context): the default lengths shrink to fit and say so.
#[test]
fn readme_example_runs_on_the_bundled_model() {
    let bundled = format!("{}/models/default/model.pte", env!("CARGO_MANIFEST_DIR"));
    let out = bench(&["--model", &bundled]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("prompt 32 + 32 new tokens (defaults shortened"),
        "{table}"
    );
    let v = json(&["--model", &bundled, "--runs", "1", "--json"]);
    assert_eq!(
        (v["prompt_len"].as_u64(), v["gen_len"].as_u64()),
        (Some(32), Some(32))
    );
    assert_eq!(v["lengths_fitted"], true);
    // A large-context model keeps the documented 64 + 64.
    let v = json(&[
        "--model",
        &fixture("llada.pte"),
        "--runs",
        "1",
        "--json",
        "--steps",
        "8",
    ]);
    assert_eq!(
        (v["prompt_len"].as_u64(), v["gen_len"].as_u64()),
        (Some(64), Some(64))
    );
    assert_eq!(v["lengths_fitted"], false);
}

/// Runs `bench` on `path` while `replace` rewrites the file over and over, until the bench
/// ends; returns its output and how many replacements were made.
fn bench_while_replacing(
    args: &[&str],
    path: &std::path::Path,
    replace: impl Fn(),
) -> (std::process::Output, usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .arg("bench")
        .args(args)
        .arg("--model")
        .arg(path)
        .env_remove("LD_LIBRARY_PATH")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut n = 0;
    while child.try_wait().unwrap().is_none() {
        replace();
        n += 1;
    }
    (child.wait_with_output().unwrap(), n)
}

/// Issue 13, item 7: replacing a model while it is in use. By atomic rename (the documented
/// way: `cp new.pte model.pte.tmp && mv model.pte.tmp model.pte`) the mapped file keeps its old
/// inode: no SIGBUS, same tokens. Overwritten in place (`cp new.pte model.pte`), a mapped file
/// can die of SIGBUS (tests/control.rs), so `--no-mmap` reads it into memory: no signal, and
/// either the same tokens or, if the read caught the file half-written, one error line.
#[test]
fn a_model_replaced_during_use_gives_no_sigbus() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-bench-replace");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(fixture("sdar_uncached.pte")).unwrap();
    let args = [
        "--prompt-len",
        "8",
        "--gen-len",
        "8",
        "--runs",
        "20",
        "--json",
    ];
    let reference = {
        let path = dir.join("reference.pte");
        std::fs::write(&path, &bytes).unwrap();
        json(&[&args[..], &["--model", path.to_str().unwrap()]].concat())
    };

    let path = dir.join("renamed.pte");
    std::fs::write(&path, &bytes).unwrap();
    let tmp = dir.join("renamed.pte.tmp");
    let (out, replaced) = bench_while_replacing(&args, &path, || {
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "atomic rename must not kill a mapped model ({replaced} replacements): {out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tokens"], reference["tokens"]);

    let path = dir.join("in_place.pte");
    std::fs::write(&path, &bytes).unwrap();
    let mut no_mmap = args.to_vec();
    no_mmap.push("--no-mmap");
    let (out, replaced) = bench_while_replacing(&no_mmap, &path, || {
        // What `cp` does: truncate the same inode, then write.
        std::fs::write(&path, &bytes).unwrap();
    });
    assert!(
        out.status.code().is_some(),
        "--no-mmap killed by a signal ({replaced} in-place rewrites): {out:?}"
    );
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["tokens"], reference["tokens"]);
        assert_eq!(v["no_mmap"], true);
    } else {
        one_error_line(&out, &["in_place.pte"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn autoregressive_bench_decodes_one_token_per_forward() {
    let model = fixture("sdar_cached.pte");
    let v = json(&[
        "--model",
        &model,
        "--prompt-len",
        "8",
        "--gen-len",
        "6",
        "--runs",
        "2",
        "--autoregressive",
        "--json",
    ]);
    assert_eq!(v["decoder"], "autoregressive");
    for r in v["per_run"].as_array().unwrap() {
        assert_eq!(
            (
                &r["prefill_forwards"],
                &r["decode_forwards"],
                &r["tokens_per_forward"]
            ),
            (&1.into(), &6.into(), &1.0.into()),
            "{r}"
        );
        assert_eq!(r["tokens"], 6);
    }
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 6);
    let vocab = v["vocab_size"].as_i64().unwrap();
    assert!(tokens
        .iter()
        .all(|t| (0..vocab).contains(&t.as_i64().unwrap())));
}

#[test]
fn autoregressive_bench_needs_a_kv_cache() {
    let out = bench(&[
        "--model",
        &fixture("llada.pte"),
        "--autoregressive",
        "--runs",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a model with a KV cache") && err.contains("--kv-cache"),
        "{err}"
    );
}
