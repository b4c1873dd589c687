//! Cancellation and files changing under a loaded model.
//!
//! - A generation stopped from the step callback (`Control::Stop`) leaves the engine reusable:
//!   the next generation gives exactly the tokens of a fresh engine (real `.pte` KV caches).
//! - A `.pte` replaced on disk (new file renamed over the path) does not affect a loaded
//!   module: the mapping keeps the old inode.
//! - A `.pte` truncated in place while mapped kills the process with SIGBUS when the runtime
//!   touches the missing pages (checked in a child process); a module loaded with
//!   `PteModule::from_bytes(std::fs::read(path)?)` owns a copy and is immune.
#![cfg(feature = "pte")]

use diffulex_edge::pte::{PteModule, Tensor};
use diffulex_edge::runtime::{
    Control, DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, ModelType, PteModel,
    StepEvent, StepFn, StopReason,
};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn engine(path: &Path) -> DiffusionEngine {
    let model = PteModel::load(path).unwrap();
    let cached = model.metadata().use_kv_cache;
    DiffusionEngine::from_model(model, ModelType::Auto, cached).unwrap()
}

#[test]
fn cancelled_generation_leaves_engine_reusable() {
    let models = [
        "tests/fixtures/pte/sdar_cached.pte",
        "tests/fixtures/pte/fast_dllm_v2_cached.pte",
        "tests/fixtures/pte/llada.pte",
        "tests/fixtures/pte/dream.pte",
        "models/default/model.pte",
    ];
    let cfg = DiffusionGenerationConfig::new(24).with_stop_ids(vec![]);
    let tok =
        diffulex_edge::text::TextTokenizer::from_file(root().join("models/default/tokenizer.json"))
            .unwrap();
    for m in models {
        let path = root().join(m);
        let (first, second): (Vec<i64>, Vec<i64>) = if m.starts_with("models/") {
            (
                tok.encode("12+34=", false).unwrap(),
                tok.encode("905+77=", false).unwrap(),
            )
        } else {
            ((10..19).collect(), (30..37).collect())
        };
        let want = engine(&path).generate(&second, &cfg).unwrap().tokens;
        assert_eq!(want.len(), 24, "{m}");
        for stop_at in [0usize, 1, 5] {
            let mut e = engine(&path);
            let mut steps = 0;
            let mut obs = StepFn(|_: &StepEvent<'_>| {
                steps += 1;
                if steps > stop_at {
                    Control::Stop
                } else {
                    Control::Continue
                }
            });
            let out = e.generate_with(&first, &cfg, &mut obs).unwrap();
            assert_eq!(
                out.stop_reason,
                StopReason::Cancelled,
                "{m} stop at {stop_at}"
            );
            assert!(out.tokens.len() < 24, "{m}: cancelled output is partial");
            let got = e.generate(&second, &cfg).unwrap().tokens;
            assert_eq!(got, want, "{m}: reuse after a stop at step {stop_at}");
        }
    }
}

fn logits(m: &mut PteModule) -> Vec<f32> {
    let tokens: Vec<i64> = (10..26).collect();
    let input = [Tensor::i64(&tokens, &[1, 16])];
    let out = m.execute("forward", &input).unwrap();
    out.get(0).unwrap().as_f32().unwrap().to_vec()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("control");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn replacing_the_file_does_not_affect_a_loaded_module() {
    let src = root().join("tests/fixtures/pte/llada.pte");
    let path = scratch("replaced.pte");
    std::fs::copy(&src, &path).unwrap();
    let mut m = PteModule::load(&path).unwrap();
    let before = logits(&mut m);
    // Atomic replace: a new inode with different content takes the name.
    let tmp = scratch("replaced.pte.new");
    std::fs::write(&tmp, b"not a program").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(logits(&mut m), before);
    assert!(PteModule::load(&path).is_err(), "the new file is garbage");
}

/// Child-process half of the truncation test (runs only when the parent asks for it).
#[test]
fn truncation_child() {
    let Ok(mode) = std::env::var("DIFFULEX_TRUNCATION_CHILD") else {
        return;
    };
    let path = PathBuf::from(std::env::var("DIFFULEX_TRUNCATION_FILE").unwrap());
    let mut m = if mode == "copy" {
        PteModule::from_bytes(std::fs::read(&path).unwrap()).unwrap()
    } else {
        PteModule::load(&path).unwrap()
    };
    let before = logits(&mut m);
    // Truncate in place (same inode): the mapped pages past the end disappear.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // The next execute reads constant weights straight from the mapped pages.
    let after = logits(&mut m);
    assert_eq!(before, after);
    println!("TRUNCATION-SURVIVED");
}

fn child(mode: &str) -> std::process::Output {
    let path = scratch(&format!("truncated-{mode}.pte"));
    std::fs::copy(root().join("tests/fixtures/pte/sdar_uncached.pte"), &path).unwrap();
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "truncation_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DIFFULEX_TRUNCATION_CHILD", mode)
        .env("DIFFULEX_TRUNCATION_FILE", &path)
        .output()
        .unwrap()
}

#[test]
fn truncating_a_mapped_file_is_fatal_but_a_copy_is_immune() {
    use std::os::unix::process::ExitStatusExt;
    let copy = child("copy");
    assert!(
        copy.status.success()
            && String::from_utf8_lossy(&copy.stdout).contains("TRUNCATION-SURVIVED"),
        "copy-on-load module must survive truncation: {copy:?}"
    );
    let mapped = child("mmap");
    // Documented risk (docs/reliability.md): SIGBUS (7) when the runtime touches a page that
    // no longer exists. If the runtime happened not to touch the file again the child survives;
    // record which one happened.
    println!(
        "mapped child: {:?} signal {:?}",
        mapped.status,
        mapped.status.signal()
    );
    assert!(
        mapped.status.signal() == Some(7) || mapped.status.success(),
        "unexpected outcome {mapped:?}"
    );
}
