//! Several engines decoding at once in several threads give exactly the tokens of sequential
//! runs: every family fixture (tests/fixtures/pte/*.pte) and the bundled default model, each
//! thread with its own engines (a `PteModule` is `Send` but not `Sync`, so engines are moved,
//! never shared), all threads released together by a barrier.
#![cfg(feature = "pte")]

use diffulex_edge::pte::PteModule;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, ModelType, PteModel,
};
use diffulex_edge::text::TextTokenizer;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

const THREADS: usize = 4;

/// Compile-time: engines and modules can move to another thread.
#[allow(dead_code)]
fn assert_send() {
    fn send<T: Send>() {}
    send::<PteModule>();
    send::<DiffusionEngine>();
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/pte"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pte"))
        .collect();
    v.sort();
    v.push(root().join("models/default/model.pte"));
    assert!(v.len() >= 5, "fixtures missing: {v:?}");
    v
}

fn engine(path: &Path) -> DiffusionEngine {
    let model = PteModel::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cached = model.metadata().use_kv_cache;
    DiffusionEngine::from_model(model, ModelType::Auto, cached).unwrap()
}

/// Two prompts per model: for the default model real questions, otherwise ids clear of the
/// mask token.
fn prompts(path: &Path, e: &DiffusionEngine) -> Vec<Vec<i64>> {
    if path.ends_with("models/default/model.pte") {
        let tok = TextTokenizer::from_file(root().join("models/default/tokenizer.json")).unwrap();
        return ["12+34=", "905+77="]
            .iter()
            .map(|q| tok.encode(q, false).unwrap())
            .collect();
    }
    let mask = e.metadata().mask_token_id;
    let base: Vec<i64> = (10..60).filter(|&t| t != mask).collect();
    vec![base[..5].to_vec(), base[7..20].to_vec()]
}

fn run(e: &mut DiffusionEngine, prompts: &[Vec<i64>]) -> Vec<Vec<i64>> {
    let cfg = DiffusionGenerationConfig::new(16).with_stop_ids(vec![]);
    prompts
        .iter()
        .map(|p| e.generate(p, &cfg).unwrap().tokens)
        .collect()
}

#[test]
fn parallel_engines_reproduce_sequential_tokens() {
    let paths = models();
    let mut jobs = Vec::new();
    for p in &paths {
        let mut e = engine(p);
        let pr = prompts(p, &e);
        let want = run(&mut e, &pr);
        assert!(want.iter().all(|t| t.len() == 16));
        jobs.push((p.clone(), pr, want));
    }
    let jobs = Arc::new(jobs);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (jobs, barrier) = (jobs.clone(), barrier.clone());
            // Engines are built here and moved into the thread (PteModule: Send).
            let mut engines: Vec<DiffusionEngine> = jobs.iter().map(|j| engine(&j.0)).collect();
            std::thread::spawn(move || {
                barrier.wait();
                let mut mismatches = Vec::new();
                // Each thread walks the models in a different order, twice, so the same file is
                // decoded by several threads at the same moment.
                for round in 0..2 {
                    for k in 0..jobs.len() {
                        let i = (k + t * 3 + round) % jobs.len();
                        let (path, pr, want) = &jobs[i];
                        let got = run(&mut engines[i], pr);
                        if &got != want {
                            mismatches.push(format!("{}: {got:?} != {want:?}", path.display()));
                        }
                    }
                }
                mismatches
            })
        })
        .collect();
    let mismatches: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("worker panicked"))
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// One module loaded in memory (`from_bytes`) and one memory-mapped (`load`) from the same
/// file, executed from two threads at once, give bit-identical logits.
#[test]
fn mapped_and_copied_modules_agree_across_threads() {
    let path = root().join("tests/fixtures/pte/llada.pte");
    let run = |mut m: PteModule| {
        std::thread::spawn(move || {
            let tokens: Vec<i64> = (10..42).collect();
            let input = diffulex_edge::pte::Tensor::i64(&tokens, &[1, 32]);
            let out = m.execute("forward", &[input]).unwrap();
            out.get(0).unwrap().as_f32().unwrap().to_vec()
        })
    };
    let a = run(PteModule::load(&path).unwrap());
    let b = run(PteModule::from_bytes(std::fs::read(&path).unwrap()).unwrap());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(a.len(), 32 * 512);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}
