//! Programs found by fuzzing (fuzz/crashes/pte_load) must give errors, not kill the process.
//!
//! Each file is loaded with `PteModule::from_bytes` and every method executed with zero inputs
//! shaped as its metadata says, in a child process so that an abort inside ExecuTorch shows
//! up as a test failure instead of taking the test harness down.
#![cfg(feature = "pte")]

use diffulex_edge::pte::{DType, PteModule, Tensor};
use std::path::{Path, PathBuf};

fn crashes() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/crashes/pte_load");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Child half: runs one file (only when the parent asks for it).
#[test]
fn hostile_pte_child() {
    let Ok(path) = std::env::var("DIFFULEX_HOSTILE_PTE") else {
        return;
    };
    let Ok(mut m) = PteModule::from_bytes(std::fs::read(path).unwrap()) else {
        return;
    };
    for name in m.method_names().unwrap_or_default() {
        let Ok(meta) = m.method_meta(&name) else {
            continue;
        };
        let shapes: Vec<(DType, Vec<usize>)> = meta
            .inputs
            .iter()
            .map(|i| {
                (
                    i.dtype,
                    i.shape.iter().map(|&d| d.clamp(0, 64) as usize).collect(),
                )
            })
            .collect();
        let (f, l, b) = (
            vec![0f32; 1 << 16],
            vec![0i64; 1 << 16],
            vec![false; 1 << 16],
        );
        let inputs: Vec<Tensor<'_>> = shapes
            .iter()
            .map(|(dt, s)| {
                let n: usize = s.iter().product();
                match dt {
                    DType::I64 => Tensor::new(&l[..n.min(1 << 16)], s),
                    DType::Bool => Tensor::new(&b[..n.min(1 << 16)], s),
                    _ => Tensor::new(&f[..n.min(1 << 16)], s),
                }
            })
            .collect();
        let _ = m.execute(&name, &inputs);
    }
}

#[test]
fn fuzz_found_programs_fail_cleanly() {
    use std::os::unix::process::ExitStatusExt;
    let mut dead = Vec::new();
    for path in crashes() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "hostile_pte_child", "--test-threads=1"])
            .env("DIFFULEX_HOSTILE_PTE", &path)
            .output()
            .unwrap();
        if !out.status.success() {
            dead.push(format!(
                "{}: {:?} (signal {:?}) {}",
                path.display(),
                out.status,
                out.status.signal(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .find(|l| l.contains("executorch"))
                    .unwrap_or("")
            ));
        }
    }
    assert!(dead.is_empty(), "processes killed: {dead:#?}");
}
