//! A binary copied to another machine: `diffulex runtime --copy-to DIR` puts the runtime's files
//! in DIR, and a copy of the binary in DIR runs from there with an empty environment, finding
//! the runtime beside itself. A runtime directory that does not hold one is a one-line error.
#![cfg(all(feature = "cli", feature = "pte"))]

use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("diffulex-shipping-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn a_copied_binary_runs_from_an_empty_directory_with_no_environment() {
    let dir = scratch("copy");
    let copied = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["runtime", "--copy-to"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let binary = dir.join("diffulex");
    std::fs::copy(env!("CARGO_BIN_EXE_diffulex"), &binary).unwrap();
    for model_file in ["model.pte", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(
            repo(&format!("models/default/{model_file}")),
            dir.join(model_file),
        )
        .unwrap();
    }

    let run = |args: &[&str]| {
        Command::new(&binary)
            .args(args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            // The dynamic loader reports every library file it opens: the runtime must come
            // from the copy, not from where the build put it.
            .env("LD_DEBUG", "libs")
            .output()
            .unwrap()
    };
    let shown = run(&["runtime", "--json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let linked = report["link_kind"] == "static";
    if linked {
        // A source build: the runtime is linked in, nothing to copy, nothing opened.
        assert_eq!(report["source"], "linked into the binary", "{report}");
        assert_eq!(report["files"], serde_json::json!([]), "{report}");
        let loader_log = String::from_utf8_lossy(&shown.stderr);
        assert!(!loader_log.contains("libexecutorch"), "{loader_log}");
        assert!(!loader_log.contains("libdiffulex_et"), "{loader_log}");
    }
    // Integer addition is the reference: the bundled model is trained to answer it.
    let out = run(&["generate", "--model", "model.pte", "--prompt", "123+456="]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "579");
    if linked {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    assert_eq!(report["source"], "beside the binary", "{report}");
    let shim = PathBuf::from(report["shim"].as_str().unwrap());
    assert_eq!(
        shim.parent().unwrap().canonicalize().unwrap(),
        dir.canonicalize().unwrap()
    );
    let loader_log = String::from_utf8_lossy(&shown.stderr);
    let opened: Vec<&str> = loader_log
        .lines()
        .filter_map(|l| l.split("trying file=").nth(1))
        .filter(|f| {
            Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libexecutorch"))
        })
        .collect();
    assert!(!opened.is_empty(), "{loader_log}");
    for file in &opened {
        assert!(
            Path::new(file).starts_with(&dir),
            "{file} opened outside the copy"
        );
    }

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_runtime_directory_without_the_runtime_is_a_one_line_error() {
    if diffulex_edge::pte::runtime()
        .is_ok_and(|r| r.source() == diffulex_edge::pte::RuntimeSource::Linked)
    {
        eprintln!("skipped: the runtime is linked into the binary (source build); DIFFULEX_RUNTIME_DIR does not apply");
        return;
    }
    let dir = scratch("empty");
    let out = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["generate", "--prompt", "1+1="])
        .env("DIFFULEX_RUNTIME_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DIFFULEX_RUNTIME_DIR"), "{stderr}");
    assert!(stderr.contains("libdiffulex_et.so"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
