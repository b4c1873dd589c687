//! Property tests of every family and mode of the engine, driven through
//! `DiffusionEngine::from_model` over a test double whose logits are arbitrary (NaN, ±inf,
//! huge values, ties, a boosted mask token, rows with no finite entry).
//!
//! Checked on every generation: no panic; errors only of the documented kinds (invalid config,
//! no valid token, sequence too long); every forward honours the `.pte` contract (tokens inside
//! the vocabulary, prompt positions unchanged, length and position within max_seq_len); every
//! step commits only positions that were masked, never the mask token, never overwrites; the
//! output is at most max_new_tokens long, mask-free, and equals the final canvas; per-step
//! commit counts follow the algorithm where it defines them (SDAR static / sequential /
//! dynamic, LLaDA quotas); a cancelled generation leaves the engine reusable.

use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDARemasking, LLaDASampler,
    SDARSampler, SdarStrategy,
};
use diffulex_edge::runtime::{
    Control, DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, Family,
    GenerationObserver, LogitsView, ModelMetadata, StepEvent, StopReason,
};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

const MAX_SEQ: usize = 64;

fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser (independent of the crate's own hash).
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How hostile the double's logits are (percentages per entry / per row).
#[derive(Debug, Clone, Copy)]
struct Hostility {
    seed: u64,
    nan: u64,
    inf: u64,
    tie: u64,
    huge: u64,
    dead_row: u64,
    mask_boost: bool,
}

/// Logits are a pure function of (seed, forward input, position): the same calls give the
/// same logits, so a rerun must reproduce a run. Contract violations are recorded.
struct Hostile {
    meta: ModelMetadata,
    h: Hostility,
    prompt: Vec<i64>,
    out: Vec<f32>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl DiffusionModel for Hostile {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn forward(
        &mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
    ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
        let m = &self.meta;
        let start = input_pos.unwrap_or(0);
        let mut bad = Vec::new();
        if input_pos.is_some() != m.use_kv_cache {
            bad.push(format!(
                "input_pos {input_pos:?} on use_kv_cache = {}",
                m.use_kv_cache
            ));
        }
        if tokens.is_empty() || start + tokens.len() > m.max_seq_len {
            bad.push(format!(
                "{} tokens at {start} exceed {}",
                tokens.len(),
                m.max_seq_len
            ));
        }
        for (i, &t) in tokens.iter().enumerate() {
            if t < 0 || t as usize >= m.vocab_size {
                bad.push(format!("token {t} at {} outside vocabulary", start + i));
            }
            if let Some(&p) = self.prompt.get(start + i) {
                // LLaDA's classifier-free guidance pass masks the prompt by design.
                if p != t && t != m.mask_token_id {
                    bad.push(format!("prompt position {} changed {p} -> {t}", start + i));
                }
            }
        }
        let v = m.vocab_size;
        let mut h0 = self.h.seed ^ (start as u64) << 40;
        for &t in tokens {
            h0 = mix(h0 ^ t as u64);
        }
        self.out.clear();
        for r in 0..tokens.len() {
            let hr = mix(h0 ^ ((start + r) as u64).wrapping_mul(0xA24B_AED4_963E_E407));
            let dead = hr % 100 < self.h.dead_row;
            for j in 0..v {
                let x = mix(hr ^ (j as u64 + 1) << 20);
                let k = x % 100;
                let y = if dead {
                    [f32::NEG_INFINITY, f32::NAN, f32::INFINITY][(x >> 8) as usize % 3]
                } else if k < self.h.nan {
                    f32::NAN
                } else if k < self.h.nan + self.h.inf {
                    if x & 256 == 0 {
                        f32::INFINITY
                    } else {
                        f32::NEG_INFINITY
                    }
                } else if k < self.h.nan + self.h.inf + self.h.tie {
                    ((x >> 8) % 3) as f32
                } else if k < self.h.nan + self.h.inf + self.h.tie + self.h.huge {
                    if x & 256 == 0 {
                        f32::MAX
                    } else {
                        -f32::MAX
                    }
                } else {
                    ((x >> 11) as f64 / (1u64 << 53) as f64 * 16.0 - 8.0) as f32
                };
                self.out.push(
                    if self.h.mask_boost && j as i64 == m.mask_token_id && !dead {
                        1e30
                    } else {
                        y
                    },
                );
            }
        }
        if !bad.is_empty() {
            self.violations.lock().unwrap().extend(bad);
        }
        LogitsView::new(&self.out, tokens.len(), v)
    }

    /// Returns only the asked-for rows, packed, as a contract-2 `.pte` does: a decoder that
    /// reads a row it did not ask for panics here, on any random configuration.
    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
        rows: &'s [usize],
    ) -> diffulex_edge::runtime::Result<LogitsView<'s>> {
        let sorted = rows.windows(2).all(|w| w[0] < w[1]);
        if !sorted || rows.last().is_some_and(|&r| r >= tokens.len()) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("rows {rows:?} for {} tokens", tokens.len()));
        }
        self.forward(tokens, input_pos)?;
        let v = self.meta.vocab_size;
        pack_rows(&mut self.out, rows, v);
        LogitsView::selected(&self.out, rows, tokens.len(), v)
    }
}

/// Keeps only the rows `rows` (ascending, unique) of a row-major `[_, vocab]` buffer, packed in
/// that order: the layout `LogitsView::selected` wraps (what a row-selecting `.pte` returns).
fn pack_rows(buf: &mut Vec<f32>, rows: &[usize], vocab: usize) {
    for (k, &r) in rows.iter().enumerate() {
        // Ascending rows: a destination never overtakes its source.
        buf.copy_within(r * vocab..(r + 1) * vocab, k * vocab);
    }
    buf.truncate(rows.len() * vocab);
}

#[derive(Debug, Clone)]
struct Case {
    family: Family,
    cached_model: bool,
    use_kv: bool,
    block_size: usize,
    sub_block: usize,
    vocab: usize,
    prompt: Vec<i64>,
    max_new: usize,
    clamp: bool,
    stop_ids: Option<Vec<i64>>,
    seed: u64,
    sampler: BlockSampler,
    h: Hostility,
    stop_at: Option<usize>,
}

fn hostility() -> impl Strategy<Value = Hostility> {
    (
        any::<u64>(),
        0u64..15,
        0u64..15,
        0u64..40,
        0u64..5,
        prop_oneof![4 => Just(0u64), 1 => 1u64..4],
        any::<bool>(),
    )
        .prop_map(
            |(seed, nan, inf, tie, huge, dead_row, mask_boost)| Hostility {
                seed,
                nan,
                inf,
                tie,
                huge,
                dead_row,
                mask_boost,
            },
        )
}

fn opt_f(lo: f64, hi: f64) -> impl Strategy<Value = Option<f64>> {
    prop_oneof![Just(None), (lo..hi).prop_map(Some)]
}

fn temperature() -> impl Strategy<Value = f64> {
    prop_oneof![8 => Just(0.0), 8 => 0.05f64..2.0, 1 => Just(-1.0), 1 => Just(f64::NAN)]
}

fn sampler(family: Family, bs: usize) -> BoxedStrategy<BlockSampler> {
    match family {
        Family::Sdar => (
            prop_oneof![
                Just(SdarStrategy::LowConfidenceDynamic),
                Just(SdarStrategy::LowConfidenceStatic),
                Just(SdarStrategy::Sequential),
                Just(SdarStrategy::EntropyBounded)
            ],
            -0.1f64..1.1,
            prop_oneof![9 => 0.01f64..3.0, 1 => Just(0.0)],
            prop_oneof![Just(None), (0usize..=bs + 1).prop_map(Some)],
            temperature(),
            prop_oneof![Just(None), (0usize..6).prop_map(Some)],
            opt_f(0.0, 1.05),
        )
            .prop_map(|(strategy, threshold, eb, steps, t, k, p)| {
                let mut s = SDARSampler::new(threshold, t);
                s.strategy = strategy;
                s.eb_threshold = eb;
                s.denoising_steps = steps;
                s.top_k = k;
                s.top_p = p;
                s.into()
            })
            .boxed(),
        Family::FastDllmV2 => (-0.1f64..1.1, temperature(), opt_f(0.0, 1.05))
            .prop_map(|(thr, t, p)| {
                let mut s = FastdLLMV2Sampler::new(thr, t);
                s.top_p = p;
                s.into()
            })
            .boxed(),
        Family::Llada => (
            prop_oneof![Just(None), (0usize..40).prop_map(Some)],
            prop_oneof![Just(None), (0usize..20).prop_map(Some)],
            temperature(),
            prop_oneof![3 => Just(0.0), 1 => 0.1f64..3.0],
            prop_oneof![
                Just(LLaDARemasking::LowConfidence),
                Just(LLaDARemasking::Random)
            ],
            any::<bool>(),
            any::<bool>(),
            opt_f(-0.1, 1.1),
        )
            .prop_map(|(steps, bl, t, cfg, remasking, lei, ceei, threshold)| {
                LLaDASampler {
                    steps,
                    block_length: bl,
                    temperature: t,
                    cfg_scale: cfg,
                    remasking,
                    logits_eos_inf: lei,
                    confidence_eos_eot_inf: ceei,
                    threshold,
                    ..Default::default()
                }
                .into()
            })
            .boxed(),
        Family::Dream => (
            prop_oneof![Just(None), (0usize..40).prop_map(Some)],
            prop_oneof![Just(1e-3f64), 0.0f64..1.0],
            prop_oneof![
                Just(DreamAlg::Origin),
                Just(DreamAlg::MaskgitPlus),
                Just(DreamAlg::TopkMargin),
                Just(DreamAlg::Entropy)
            ],
            opt_f(0.0, 2.0),
            temperature(),
            opt_f(0.0, 1.05),
            prop_oneof![Just(None), (0usize..6).prop_map(Some)],
            // Fast-dLLM v1's block loop (block length, threshold); the hash model has no
            // bidirectional cache, so the cache stays at its default (none).
            prop_oneof![Just(None), (0usize..12).prop_map(Some)],
            opt_f(-0.1, 1.1),
        )
            .prop_map(
                |(steps, eps, alg, alg_temp, t, p, k, block_length, threshold)| {
                    DreamSampler {
                        steps,
                        eps,
                        alg,
                        alg_temp,
                        temperature: t,
                        top_p: p,
                        top_k: k,
                        block_length,
                        threshold,
                        cache: None,
                    }
                    .into()
                },
            )
            .boxed(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(Family::Sdar),
            Just(Family::FastDllmV2),
            Just(Family::Llada),
            Just(Family::Dream)
        ],
        prop_oneof![Just(4usize), Just(8)],
        8usize..40,
        prop_oneof![
            9 => any::<bool>().prop_map(|c| (c, c)),
            3 => Just((true, false)),
            1 => Just((false, true)),
        ],
    )
        .prop_flat_map(|(family, bs, vocab, (cached_model, use_kv))| {
            let sub = if family == Family::FastDllmV2 {
                bs / 2
            } else {
                0
            };
            (
                Just((family, bs, sub, vocab, cached_model, use_kv)),
                prop_oneof![
                    20 => prop::collection::vec(0i64..vocab as i64 - 1, 1..24),
                    1 => Just(Vec::new()),
                ],
                0usize..48,
                any::<bool>(),
                prop_oneof![
                    Just(None),
                    prop::collection::vec(0i64..vocab as i64, 0..3).prop_map(Some)
                ],
                any::<u64>(),
                sampler(family, bs),
                hostility(),
                prop_oneof![3 => Just(None), 1 => (0usize..6).prop_map(Some)],
            )
        })
        .prop_map(
            |(
                (family, block_size, sub_block, vocab, cached_model, use_kv),
                prompt,
                max_new,
                clamp,
                stop_ids,
                seed,
                sampler,
                h,
                stop_at,
            )| Case {
                family,
                cached_model,
                use_kv,
                block_size,
                sub_block,
                vocab,
                prompt,
                max_new,
                clamp,
                stop_ids,
                seed,
                sampler,
                h,
                stop_at,
            },
        )
}

/// Mask id: the last vocabulary entry (prompts are drawn below it).
fn mask_of(c: &Case) -> i64 {
    c.vocab as i64 - 1
}

fn metadata(c: &Case) -> ModelMetadata {
    let mut m = ModelMetadata::for_family(
        c.family,
        MAX_SEQ,
        c.vocab,
        mask_of(c),
        vec![1, 2],
        c.block_size,
    );
    if c.family == Family::FastDllmV2 {
        m.sub_block_size = c.sub_block;
    }
    // A KV cache on a bidirectional family is a contradictory constant (validate refuses it).
    m.use_kv_cache = c.cached_model && c.family.block_causal();
    m
}

fn engine(c: &Case, violations: &Arc<Mutex<Vec<String>>>) -> Result<DiffusionEngine, EngineError> {
    let model = Hostile {
        meta: metadata(c),
        h: c.h,
        prompt: c.prompt.clone(),
        out: Vec::new(),
        violations: violations.clone(),
    };
    DiffusionEngine::from_model(model, c.family, c.use_kv)
}

/// Checks every step event against the previous canvas.
struct Checker {
    case: Case,
    prev: Vec<i64>,
    steps: usize,
    block: Option<usize>,
    step_in_block: usize,
    block_masked_at_start: usize,
    failures: Vec<String>,
}

impl Checker {
    fn new(case: &Case) -> Self {
        Checker {
            case: case.clone(),
            prev: Vec::new(),
            steps: 0,
            block: None,
            step_in_block: 0,
            block_masked_at_start: 0,
            failures: Vec::new(),
        }
    }

    fn was_masked(&self, i: usize, mask: i64) -> bool {
        self.prev.get(i).is_none_or(|&t| t == mask)
    }

    /// Relative canvas range of SDAR event block `b` (blocks aligned at absolute 0).
    fn sdar_block(&self, b: usize, len: usize) -> std::ops::Range<usize> {
        let (lp, bs) = (self.case.prompt.len(), self.case.block_size);
        let s = (lp / bs + b) * bs;
        s.saturating_sub(lp).min(len)..(s + bs - lp).min(len)
    }

    fn check(&mut self, ev: &StepEvent<'_>) {
        let mask = ev.mask_token_id;
        let mut errs: Vec<String> = Vec::new();
        let mut fail = |m: String| errs.push(format!("step {}: {m}", ev.step));
        let mut newly: Vec<usize> = Vec::new();
        for (i, &t) in ev.canvas.iter().enumerate() {
            let before = self.prev.get(i).copied().unwrap_or(mask);
            if before != mask && before != t {
                fail(format!("position {i} overwritten {before} -> {t}"));
            }
            if before == mask && t != mask {
                newly.push(i);
            }
        }
        if ev.canvas.len() < self.prev.len() {
            fail(format!(
                "canvas shrank {} -> {}",
                self.prev.len(),
                ev.canvas.len()
            ));
        }
        let mut reported: Vec<usize> = ev.committed.iter().map(|c| c.0).collect();
        for &(p, t) in ev.committed {
            if t == mask || t < 0 || t as usize >= self.case.vocab {
                fail(format!("committed token {t} at {p}"));
            }
            if !self.was_masked(p, mask) {
                fail(format!("committed non-masked position {p}"));
            }
            if ev.canvas.get(p) != Some(&t) {
                fail(format!("committed ({p}, {t}) not on the canvas"));
            }
        }
        reported.sort_unstable();
        if reported != newly {
            fail(format!(
                "reported commits {reported:?} but canvas changed at {newly:?}"
            ));
        }
        // Algorithm-defined commit counts.
        if self.block != Some(ev.block) {
            self.block = Some(ev.block);
            self.step_in_block = 0;
            self.block_masked_at_start = match self.case.family {
                Family::Sdar => {
                    let r = self.sdar_block(ev.block, ev.canvas.len());
                    r.filter(|&i| self.was_masked(i, mask)).count()
                }
                _ => 0,
            };
        }
        let n = ev.committed.len();
        match (&self.case.sampler, self.case.family) {
            (BlockSampler::Sdar(s), Family::Sdar) => {
                let bs = self.case.block_size;
                let steps = s.denoising_steps.unwrap_or(bs);
                let r = self.sdar_block(ev.block, ev.canvas.len());
                let masked: Vec<usize> = r.filter(|&i| self.was_masked(i, mask)).collect();
                let quota =
                    bs / steps + usize::from(self.step_in_block.min(steps - 1) < bs % steps);
                let q = quota.min(masked.len());
                let mut fail = |m: String| errs.push(format!("step {}: {m}", ev.step));
                match s.strategy {
                    SdarStrategy::LowConfidenceStatic if n != q => {
                        fail(format!("static committed {n}, quota {q}"))
                    }
                    SdarStrategy::Sequential if newly != masked[..q] => fail(format!(
                        "sequential committed {newly:?}, leftmost masked {:?}",
                        &masked[..q]
                    )),
                    SdarStrategy::LowConfidenceDynamic if n < q => {
                        fail(format!("dynamic committed {n} < quota {q}"))
                    }
                    SdarStrategy::EntropyBounded if n == 0 => {
                        fail("entropy_bounded committed nothing".into())
                    }
                    _ => {}
                }
                if newly.iter().any(|p| !masked.contains(p)) {
                    fail(format!("committed {newly:?} outside block {}", ev.block));
                }
            }
            (BlockSampler::FastdLLMV2(_), _) if n == 0 => {
                errs.push(format!("step {}: fast_dllm_v2 committed nothing", ev.step))
            }
            _ => {}
        }
        self.failures.extend(errs);
        self.step_in_block += 1;
        self.steps += 1;
        self.prev = ev.canvas.to_vec();
    }
}

impl GenerationObserver for Checker {
    fn on_step(&mut self, ev: &StepEvent<'_>) -> Control {
        self.check(ev);
        if self.case.stop_at == Some(self.steps - 1) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

fn config(c: &Case) -> DiffusionGenerationConfig {
    let mut cfg = DiffusionGenerationConfig::new(c.max_new)
        .with_seed(c.seed)
        .with_sampler(c.sampler.clone());
    cfg.clamp_to_max_seq_len = c.clamp;
    cfg.stop_ids = c.stop_ids.clone();
    cfg
}

fn documented(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::InvalidConfig { .. }
            | EngineError::NoValidToken { .. }
            | EngineError::SequenceTooLong { .. }
            | EngineError::EmptyPrompt { .. }
            | EngineError::NoKvCache
    )
}

/// What one case ended with (to check that the generator exercises real decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Generated(Family),
    Rejected(&'static str),
}

fn run_case(c: &Case) -> Result<Outcome, TestCaseError> {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let mut e = match engine(c, &violations) {
        Ok(e) => e,
        Err(EngineError::NoKvCache) => {
            prop_assert!(c.use_kv && !(c.cached_model && c.family.block_causal()));
            return Ok(Outcome::Rejected("no kv cache"));
        }
        Err(other) => return Err(TestCaseError::fail(format!("from_model: {other}"))),
    };
    let cfg = config(c);
    let mut checker = Checker::new(c);
    let res = e.generate_with(&c.prompt, &cfg, &mut checker);
    prop_assert!(
        violations.lock().unwrap().is_empty(),
        "contract violations: {:?}",
        violations.lock().unwrap()
    );
    prop_assert!(
        checker.failures.is_empty(),
        "step failures: {:?}",
        checker.failures
    );
    let out = match res {
        Ok(out) => out,
        Err(err) => {
            prop_assert!(documented(&err), "undocumented error {err:?}");
            return Ok(Outcome::Rejected(match err {
                EngineError::InvalidConfig { field, .. } => field,
                EngineError::NoValidToken { .. } => "no valid token",
                EngineError::SequenceTooLong { .. } => "too long",
                _ => "other",
            }));
        }
    };
    let mask = mask_of(c);
    prop_assert!(
        out.tokens.len() <= c.max_new,
        "{} tokens > max_new {}",
        out.tokens.len(),
        c.max_new
    );
    prop_assert!(
        !out.tokens.contains(&mask),
        "mask in output {:?}",
        out.tokens
    );
    prop_assert!(out.tokens.iter().all(|&t| t >= 0 && (t as usize) < c.vocab));
    prop_assert_eq!(out.prompt_len, c.prompt.len());
    // Output is the canvas prefix (up to a stop id) as the observer last saw it.
    if checker.steps > 0 {
        prop_assert_eq!(&checker.prev[..out.tokens.len()], &out.tokens[..]);
    }
    match out.stop_reason {
        StopReason::Eos(t) => {
            let stops = c.stop_ids.clone().unwrap_or(vec![1, 2]);
            prop_assert!(stops.contains(&t) && out.tokens.last() == Some(&t));
        }
        StopReason::Cancelled => prop_assert!(c.stop_at.is_some()),
        StopReason::MaxNewTokens => {
            if !c.clamp {
                prop_assert_eq!(
                    out.tokens.len(),
                    c.max_new,
                    "finished early without a stop id"
                );
            }
        }
    }
    // A cancelled (or finished) engine is reusable: the next generation equals a fresh engine's.
    if c.stop_at.is_some() {
        let plain = config(c);
        let again = e.generate(&c.prompt, &plain);
        let fresh = engine(c, &violations).unwrap().generate(&c.prompt, &plain);
        match (again, fresh) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.tokens, b.tokens),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "reuse {a:?} vs fresh {b:?}"),
        }
    }
    Ok(Outcome::Generated(c.family))
}

#[test]
fn engine_invariants_hold_on_hostile_logits() {
    use proptest::test_runner::{Config, TestRunner};
    let outcomes = Mutex::new(std::collections::HashMap::<Outcome, usize>::new());
    let mut runner = TestRunner::new(Config {
        cases: 2048,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |c| {
        let o = run_case(&c)?;
        *outcomes.lock().unwrap().entry(o).or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let outcomes = outcomes.into_inner().unwrap();
    eprintln!("outcomes: {outcomes:?}");
    // The generator must reach real decoding of every family, not only config rejections.
    for f in [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ] {
        let n = outcomes.get(&Outcome::Generated(f)).copied().unwrap_or(0);
        assert!(n >= 40, "only {n} successful {f} generations: {outcomes:?}");
    }
}
