//! Drives the `diffulex inspect` binary on committed fixtures.
#![cfg(all(feature = "cli", feature = "pte"))]

use std::process::Command;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/basic/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn inspect(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .arg("inspect")
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run diffulex")
}

#[test]
fn text_report_lists_methods_shapes_delegates_and_constants() {
    let out = inspect(&[&fixture("mlp.pte")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(fixture("mlp.pte")).unwrap().len();
    assert!(text.contains(&format!("({size} bytes)")), "{text}");
    assert!(text.contains("methods: 5"), "{text}");
    assert!(
        text.contains("method forward\n  inputs:\n    0: f32[2, 8]\n  outputs:\n    0: f32[2, 4]"),
        "{text}"
    );
    assert!(text.contains("method get_answer\n  inputs: none"), "{text}");
    assert!(text.contains("  value: 42\n"), "{text}");
    assert!(text.contains("  value: [3, 7]\n"), "{text}");
    assert!(text.contains("  value: false\n"), "{text}");
    assert!(text.contains("  value: 0.5\n"), "{text}");
    // Quiet by default: no runtime log lines.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn text_report_shows_dynamic_bounds_and_delegates() {
    let out = inspect(&[&fixture("dynamic.pte")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("0: i64[1, <=16]  (dynamic, upper bounds)"),
        "{text}"
    );
    let out = inspect(&[&fixture("xnnpack.pte")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("delegates: XnnpackBackend"), "{text}");
    // XNNPACK's thread pool logs cpuinfo lines at Info level; they must stay quiet.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn log_level_from_the_environment() {
    // Inspecting loads no method (so no delegate logs anything); a generation does.
    let root = env!("CARGO_MANIFEST_DIR");
    let generate = |level: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_diffulex"));
        cmd.args(["generate", "--model"])
            .arg(format!("{root}/tests/fixtures/pte/sdar_cached.pte"))
            .arg("--tokenizer")
            .arg(format!("{root}/tests/fixtures/ckpt/sdar/tokenizer.json"))
            .args(["--prompt", "ab", "--max-new-tokens", "4"])
            .env_remove("DIFFULEX_ET_LOG");
        if let Some(level) = level {
            cmd.env("DIFFULEX_ET_LOG", level);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = generate(Some("info"));
    assert!(
        err.contains("[executorch I "),
        "Info lines are shown on request: {err}"
    );
    let err = generate(None);
    assert!(!err.contains("[executorch I "), "and not by default: {err}");
}

#[test]
fn json_report() {
    let out = inspect(&[&fixture("mlp.pte"), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["file_size"],
        std::fs::metadata(fixture("mlp.pte")).unwrap().len()
    );
    let methods = v["methods"].as_array().unwrap();
    let forward = methods.iter().find(|m| m["name"] == "forward").unwrap();
    assert_eq!(forward["inputs"][0]["dtype"], "f32");
    assert_eq!(forward["inputs"][0]["shape"], serde_json::json!([2, 8]));
    assert_eq!(forward["inputs"][0]["dynamic"], false);
    assert_eq!(forward["backends"], serde_json::json!([]));
    assert!(forward.get("value").is_none());
    let eos = methods.iter().find(|m| m["name"] == "get_eos_ids").unwrap();
    assert_eq!(eos["value"], serde_json::json!([3, 7]));
    let scale = methods.iter().find(|m| m["name"] == "get_scale").unwrap();
    assert_eq!(scale["value"], serde_json::json!([0.5]));
}

#[test]
fn bad_file_fails_with_a_message() {
    let out = inspect(&[&fixture("mlp.json")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading") && err.contains("mlp.json"), "{err}");
    let out = inspect(&["/no/such/model.pte"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model.pte"));
}
