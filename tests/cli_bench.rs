//! Drives `diffulex bench` on committed fixtures: the JSON report's shape and the counts that do
//! not depend on timing (no timing assertions: the machine may be shared).

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
