//! Engine behaviour on the hash test model: KV cache vs recompute, forward shapes and
//! positions, stopping, streaming control, limits and config validation.

use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamSampler, FastdLLMV2Sampler, LLaDASampler, SDARSampler, SdarStrategy,
};
use diffulex_edge::runtime::{
    BlockEvent, Control, DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError,
    Family, GenerationObserver, HashModel, LogitsView, ModelMetadata, ModelType, StepEvent,
    StopReason,
};

const MASK: i64 = 47;

/// Shared log of (token count, input_pos) per forward.
type CallLog = std::sync::Arc<std::sync::Mutex<Vec<(usize, Option<usize>)>>>;

fn meta(family: Family, cached: bool) -> ModelMetadata {
    let bs = match family {
        Family::Sdar => 4,
        Family::FastDllmV2 => 16,
        _ => 0,
    };
    let mut m = ModelMetadata::for_family(family, 128, 48, MASK, vec![2], bs);
    if family == Family::FastDllmV2 {
        m.sub_block_size = 4;
    }
    m.use_kv_cache = cached;
    m
}

/// Records every forward call (token count, position) around a HashModel; optionally pushes
/// the mask token's logit to the top and poisons some logits with NaN.
struct Recorder {
    inner: HashModel,
    poison: bool,
    buf: Vec<f32>,
}

impl Recorder {
    fn new(meta: ModelMetadata, poison: bool) -> Self {
        Recorder {
            inner: HashModel::new(meta, 77),
            poison,
            buf: vec![],
        }
    }
}

impl DiffusionModel for Recorder {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }
    fn forward(
        &mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
    ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
        let v = self.inner.metadata().vocab_size;
        let view = self.inner.forward(tokens, input_pos)?;
        self.buf.clear();
        for r in 0..view.rows() {
            self.buf.extend_from_slice(view.row(r));
        }
        if self.poison {
            for r in 0..tokens.len() {
                self.buf[r * v + MASK as usize] = 100.0;
                self.buf[r * v + 5] = f32::NAN;
            }
        }
        LogitsView::new(&self.buf, tokens.len(), v)
    }
}

fn run(
    family: Family,
    cached_model: bool,
    use_kv: bool,
    prompt: &[i64],
    cfg: &DiffusionGenerationConfig,
) -> Vec<i64> {
    let mut e = DiffusionEngine::from_model(
        HashModel::new(meta(family, cached_model), 5),
        family,
        use_kv,
    )
    .unwrap();
    e.generate(prompt, cfg).unwrap().tokens
}

fn prompt(n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| 10 + (i * 7) % 30).collect()
}

#[test]
fn kv_cache_equals_recompute_at_temperature_zero() {
    for family in [Family::Sdar, Family::FastDllmV2] {
        let samplers: Vec<BlockSampler> = match family {
            Family::Sdar => [
                SdarStrategy::LowConfidenceDynamic,
                SdarStrategy::LowConfidenceStatic,
                SdarStrategy::Sequential,
                SdarStrategy::EntropyBounded,
            ]
            .into_iter()
            .map(|s| {
                SDARSampler {
                    strategy: s,
                    threshold: 0.3,
                    ..SDARSampler::default()
                }
                .into()
            })
            .collect(),
            _ => vec![
                FastdLLMV2Sampler::new(0.95, 0.0).into(),
                FastdLLMV2Sampler::new(0.3, 0.0).into(),
            ],
        };
        for s in samplers {
            for lp in [1, 3, 4, 16, 17, 35] {
                let cfg = DiffusionGenerationConfig::new(40)
                    .with_sampler(s.clone())
                    .with_stop_ids(vec![]);
                let cached = run(family, true, true, &prompt(lp), &cfg);
                let recompute = run(family, true, false, &prompt(lp), &cfg);
                let uncached = run(family, false, false, &prompt(lp), &cfg);
                assert_eq!(cached, recompute, "{family} {s:?} lp={lp}");
                assert_eq!(cached, uncached, "{family} {s:?} lp={lp}");
                assert_eq!(cached.len(), 40);
            }
        }
    }
}

#[test]
fn cached_sdar_feeds_only_the_current_block_at_its_position() {
    let m = meta(Family::Sdar, true);
    let mut e = DiffusionEngine::from_model(Recorder::new(m, false), Family::Sdar, true).unwrap();
    let out = e
        .generate(
            &prompt(10),
            &DiffusionGenerationConfig::new(12).with_stop_ids(vec![]),
        )
        .unwrap();
    assert_eq!(out.tokens.len(), 12);
    assert_eq!(out.stats.prefill_forwards, 1);
    // Blocks [8,12) [12,16) [16,20) [20,24): each but the last is committed by the next block's
    // first denoising forward, so none needs a forward of its own.
    assert_eq!(out.stats.commit_forwards, 0);
    assert_eq!(
        out.stats.forwards,
        out.stats.prefill_forwards + out.stats.decode_forwards + out.stats.commit_forwards
    );
}

#[test]
fn forward_calls_have_block_shapes() {
    // Drive the decoder directly with the recorder to inspect calls.
    struct Shared(CallLog, Recorder);
    impl DiffusionModel for Shared {
        fn metadata(&self) -> &ModelMetadata {
            self.1.metadata()
        }
        fn forward(
            &mut self,
            t: &[i64],
            p: Option<usize>,
        ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
            self.0.lock().unwrap().push((t.len(), p));
            self.1.forward(t, p)
        }
    }
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let model = Shared(log.clone(), Recorder::new(meta(Family::Sdar, true), false));
    let mut e = DiffusionEngine::from_model(model, Family::Sdar, true).unwrap();
    e.generate(
        &prompt(10),
        &DiffusionGenerationConfig::new(12).with_stop_ids(vec![]),
    )
    .unwrap();
    let calls = log.lock().unwrap().clone();
    assert_eq!(
        calls[0],
        (8, Some(0)),
        "prefill of the two whole prompt blocks"
    );
    // Then each block's denoising forwards feed it alone at its position, except the first
    // forward of blocks 2..4, which starts one block earlier to write the finished block's K/V.
    let (mut prev_end, mut carried) = (0, 0);
    for (i, &(t, p)) in calls.iter().enumerate().skip(1) {
        let end = p.unwrap() + t;
        assert!(
            end % 4 == 0 && end >= 12 && end >= prev_end,
            "call {i}: {calls:?}"
        );
        let first_of_later_block = end != prev_end && end > 12;
        assert_eq!(
            t,
            if first_of_later_block { 8 } else { 4 },
            "call {i}: {calls:?}"
        );
        carried += usize::from(t == 8);
        prev_end = end;
    }
    assert_eq!(carried, 3, "{calls:?}");
}

#[test]
fn mask_token_and_nan_are_never_emitted() {
    for family in [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ] {
        let mut e =
            DiffusionEngine::from_model(Recorder::new(meta(family, false), true), family, false)
                .unwrap();
        let out = e
            .generate(
                &prompt(5),
                &DiffusionGenerationConfig::new(16).with_stop_ids(vec![]),
            )
            .unwrap();
        assert_eq!(out.tokens.len(), 16, "{family}");
        assert!(
            !out.tokens.contains(&MASK) && !out.tokens.contains(&5),
            "{family}: {:?}",
            out.tokens
        );
    }
}

#[test]
fn output_is_truncated_after_the_first_stop_id() {
    for family in [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ] {
        let mut e =
            DiffusionEngine::from_model(HashModel::new(meta(family, false), 5), family, false)
                .unwrap();
        let full = e
            .generate(
                &prompt(5),
                &DiffusionGenerationConfig::new(32).with_stop_ids(vec![]),
            )
            .unwrap();
        // Use the 3rd generated token as a stop id: decoding must end right after its first occurrence.
        let stop = full.tokens[2];
        let first = full.tokens.iter().position(|&t| t == stop).unwrap();
        let out = e
            .generate(
                &prompt(5),
                &DiffusionGenerationConfig::new(32).with_stop_ids(vec![stop]),
            )
            .unwrap();
        assert_eq!(out.stop_reason, StopReason::Eos(stop), "{family}");
        assert_eq!(out.tokens, full.tokens[..=first].to_vec(), "{family}");
        assert!(out.stats.forwards <= full.stats.forwards);
    }
}

struct StopAfter {
    steps: usize,
    seen: usize,
    blocks: Vec<i64>,
}

impl GenerationObserver for StopAfter {
    fn on_step(&mut self, e: &StepEvent<'_>) -> Control {
        self.seen += 1;
        assert!(e.committed.iter().all(|&(o, t)| e.canvas[o] == t));
        if self.seen >= self.steps {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn on_block(&mut self, e: &BlockEvent<'_>) -> Control {
        self.blocks.extend_from_slice(e.tokens);
        Control::Continue
    }
}

#[test]
fn callbacks_stream_blocks_and_can_stop_and_engine_is_reusable() {
    for family in [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ] {
        let mut e =
            DiffusionEngine::from_model(HashModel::new(meta(family, false), 5), family, false)
                .unwrap();
        let cfg = DiffusionGenerationConfig::new(32).with_stop_ids(vec![]);
        let reference = e.generate(&prompt(6), &cfg).unwrap();
        let mut all = StopAfter {
            steps: usize::MAX,
            seen: 0,
            blocks: vec![],
        };
        let out = e.generate_with(&prompt(6), &cfg, &mut all).unwrap();
        assert_eq!(out.tokens, reference.tokens);
        if family != Family::Dream {
            assert_eq!(all.blocks[..out.tokens.len()], out.tokens[..], "{family}");
        }
        let mut obs = StopAfter {
            steps: 3,
            seen: 0,
            blocks: vec![],
        };
        let stopped = e.generate_with(&prompt(6), &cfg, &mut obs).unwrap();
        assert_eq!(stopped.stop_reason, StopReason::Cancelled);
        assert!(!stopped.tokens.contains(&MASK));
        assert!(reference.tokens.starts_with(&stopped.tokens), "{family}");
        let again = e.generate(&prompt(6), &cfg).unwrap();
        assert_eq!(
            again.tokens, reference.tokens,
            "{family}: engine reusable after a stop"
        );
    }
}

#[test]
fn too_long_is_an_error_naming_both_numbers_and_clamp_is_opt_in() {
    let mut e = DiffusionEngine::from_model(
        HashModel::new(meta(Family::Sdar, true), 5),
        Family::Sdar,
        true,
    )
    .unwrap();
    let err = e
        .generate(&prompt(10), &DiffusionGenerationConfig::new(200))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::SequenceTooLong { .. }));
    assert!(
        msg.contains("(10)") && msg.contains("(200)") && msg.contains("128"),
        "{msg}"
    );
    let mut cfg = DiffusionGenerationConfig::new(200).with_stop_ids(vec![]);
    cfg.clamp_to_max_seq_len = true;
    let out = e.generate(&prompt(10), &cfg).unwrap();
    assert_eq!(out.tokens.len(), 118);
}

#[test]
fn invalid_configs_are_typed_errors() {
    let bad: Vec<(Family, BlockSampler)> = vec![
        (Family::Sdar, SDARSampler::new(1.5, 0.0).into()),
        (Family::Sdar, SDARSampler::new(0.9, -1.0).into()),
        (Family::Sdar, SDARSampler::new(0.9, f64::NAN).into()),
        (
            Family::Sdar,
            SDARSampler {
                top_p: Some(0.0),
                ..SDARSampler::new(0.9, 1.0)
            }
            .into(),
        ),
        (
            Family::Sdar,
            SDARSampler {
                top_p: Some(1.5),
                ..SDARSampler::new(0.9, 1.0)
            }
            .into(),
        ),
        (
            Family::Sdar,
            SDARSampler {
                top_k: Some(0),
                ..SDARSampler::new(0.9, 1.0)
            }
            .into(),
        ),
        (
            Family::Sdar,
            SDARSampler {
                block_length: Some(8),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Sdar,
            SDARSampler {
                denoising_steps: Some(5),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Sdar,
            SDARSampler {
                denoising_steps: Some(0),
                ..Default::default()
            }
            .into(),
        ),
        (Family::FastDllmV2, FastdLLMV2Sampler::new(-0.1, 0.0).into()),
        (
            Family::FastDllmV2,
            FastdLLMV2Sampler {
                block_length: Some(32),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Llada,
            LLaDASampler {
                block_length: Some(5),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Llada,
            LLaDASampler {
                block_length: Some(4),
                steps: Some(6),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Llada,
            LLaDASampler {
                threshold: Some(2.0),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Dream,
            DreamSampler {
                eps: 0.0,
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Dream,
            DreamSampler {
                steps: Some(0),
                ..Default::default()
            }
            .into(),
        ),
        (
            Family::Dream,
            DreamSampler {
                top_k: Some(0),
                ..Default::default()
            }
            .into(),
        ),
    ];
    for (family, s) in bad {
        let mut e =
            DiffusionEngine::from_model(HashModel::new(meta(family, false), 5), family, false)
                .unwrap();
        let err = e
            .generate(
                &prompt(4),
                &DiffusionGenerationConfig::new(16).with_sampler(s.clone()),
            )
            .unwrap_err();
        assert!(
            matches!(err, EngineError::InvalidConfig { .. }),
            "{s:?}: {err}"
        );
    }
    let mut e = DiffusionEngine::from_model(
        HashModel::new(meta(Family::Sdar, false), 5),
        Family::Sdar,
        false,
    )
    .unwrap();
    let cfg = DiffusionGenerationConfig::new(8).with_sampler(DreamSampler::default());
    assert!(matches!(
        e.generate(&prompt(4), &cfg),
        Err(EngineError::FamilyMismatch { .. })
    ));
    assert!(matches!(
        e.generate(&[1, MASK], &DiffusionGenerationConfig::new(8)),
        Err(EngineError::InvalidPromptToken { index: 1, .. })
    ));
    assert!(matches!(
        e.generate(&[1, 48], &DiffusionGenerationConfig::new(8)),
        Err(EngineError::InvalidPromptToken { index: 1, .. })
    ));
    assert!(matches!(
        e.generate(&[], &DiffusionGenerationConfig::new(8)),
        Err(EngineError::EmptyPrompt { .. })
    ));
    assert!(matches!(
        DiffusionEngine::from_model(
            HashModel::new(meta(Family::Sdar, false), 5),
            Family::Sdar,
            true
        ),
        Err(EngineError::NoKvCache)
    ));
    assert!(matches!(
        DiffusionEngine::from_model(
            HashModel::new(meta(Family::Sdar, false), 5),
            ModelType::Family(Family::Dream),
            false
        ),
        Err(EngineError::FamilyMismatch { .. })
    ));
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    for family in [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ] {
        let s: BlockSampler = match family {
            Family::Sdar => SDARSampler::new(0.9, 1.0).into(),
            Family::FastDllmV2 => FastdLLMV2Sampler::new(0.9, 1.0).into(),
            Family::Llada => LLaDASampler {
                temperature: 1.0,
                ..Default::default()
            }
            .into(),
            Family::Dream => DreamSampler {
                temperature: 1.0,
                ..Default::default()
            }
            .into(),
        };
        let cfg = |seed| {
            DiffusionGenerationConfig::new(24)
                .with_sampler(s.clone())
                .with_seed(seed)
                .with_stop_ids(vec![])
        };
        let a = run(family, false, false, &prompt(5), &cfg(1));
        assert_eq!(
            a,
            run(family, false, false, &prompt(5), &cfg(1)),
            "{family}"
        );
        let differs = (2..6).any(|seed| run(family, false, false, &prompt(5), &cfg(seed)) != a);
        assert!(differs, "{family}: seed has no effect");
    }
}

/// Issue 13, item 1: a step count is bounded by the tokens to generate (a Dream step or a LLaDA
/// block step that commits nothing is a wasted forward), checked before the schedule is built:
/// huge counts are one `InvalidConfig` naming the field, the value and the allowed range, and
/// no forward runs. They used to panic (index out of bounds, capacity overflow), abort on a
/// 36 PB allocation, or run for minutes.
#[test]
fn unbounded_step_counts_are_invalid_config_before_any_forward() {
    let huge = [
        usize::MAX,
        1usize << 63,
        (1usize << 53) + 1,
        1_000_000_000,
        17,
    ];
    for family in [Family::Dream, Family::Llada] {
        for steps in huge {
            let sampler: BlockSampler = match family {
                Family::Dream => DreamSampler {
                    steps: Some(steps),
                    ..Default::default()
                }
                .into(),
                _ => LLaDASampler {
                    steps: Some(steps),
                    ..Default::default()
                }
                .into(),
            };
            for threshold_mode in [false, true] {
                let sampler = match (&sampler, threshold_mode) {
                    (BlockSampler::LLaDA(s), true) => LLaDASampler {
                        threshold: Some(0.9),
                        ..s.clone()
                    }
                    .into(),
                    (_, true) => continue,
                    _ => sampler.clone(),
                };
                let log = CallLog::default();
                let model = Logged {
                    inner: HashModel::new(meta(family, false), 5),
                    log: log.clone(),
                };
                let mut e = DiffusionEngine::from_model(model, family, false).unwrap();
                let cfg = DiffusionGenerationConfig::new(16).with_sampler(sampler);
                let err = e.generate(&prompt(4), &cfg).unwrap_err();
                match &err {
                    EngineError::InvalidConfig {
                        field,
                        value,
                        reason,
                    } => {
                        assert_eq!(*field, "steps", "{err}");
                        assert_eq!(value, &steps.to_string(), "{err}");
                        assert!(reason.contains("1..=16"), "{err}");
                    }
                    other => panic!("{family} steps {steps}: {other:?}"),
                }
                assert!(log.lock().unwrap().is_empty(), "a forward ran: {err}");
            }
        }
        // The bound itself is allowed.
        let sampler: BlockSampler = match family {
            Family::Dream => DreamSampler {
                steps: Some(16),
                ..Default::default()
            }
            .into(),
            _ => LLaDASampler {
                steps: Some(16),
                ..Default::default()
            }
            .into(),
        };
        let cfg = DiffusionGenerationConfig::new(16).with_sampler(sampler);
        let mut e =
            DiffusionEngine::from_model(HashModel::new(meta(family, false), 5), family, false)
                .unwrap();
        assert!(e.generate(&prompt(4), &cfg).is_ok());
    }
}

/// Logs the forwards of a HashModel.
struct Logged {
    inner: HashModel,
    log: CallLog,
}

impl DiffusionModel for Logged {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }
    fn forward(
        &mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
    ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
        self.log.lock().unwrap().push((tokens.len(), input_pos));
        self.inner.forward(tokens, input_pos)
    }
}

/// Issue 13, item 3: `prompt + max_new_tokens` is checked arithmetic. A sum that overflows is
/// `SequenceTooLong` with the numbers as given and `needed` saturated (shown as "at least"),
/// never a wrapped sum that could pass the check or appear in the message; clamping still works.
#[test]
fn overflowing_lengths_are_too_long_not_wrapped() {
    for family in [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ] {
        let mut e =
            DiffusionEngine::from_model(HashModel::new(meta(family, false), 5), family, false)
                .unwrap();
        for n in [usize::MAX, usize::MAX - 3, usize::MAX - 10] {
            let err = e
                .generate(&prompt(10), &DiffusionGenerationConfig::new(n))
                .unwrap_err();
            let msg = err.to_string();
            match err {
                EngineError::SequenceTooLong {
                    prompt_len,
                    max_new_tokens,
                    needed,
                    ..
                } => {
                    assert_eq!((prompt_len, max_new_tokens), (10, n), "{msg}");
                    assert!(needed == usize::MAX || needed > n, "{family}: {msg}");
                }
                other => panic!("{family}: {other:?}"),
            }
            assert!(msg.contains(&format!("({n})")), "{msg}");
            // The wrapped sum 10 + n (mod 2^64) is a small number; it must not be shown.
            let wrapped = 10usize.wrapping_add(n);
            assert!(
                !msg.contains(&format!("needs {wrapped} ")),
                "wrapped sum in {msg}"
            );
        }
        let mut cfg = DiffusionGenerationConfig::new(usize::MAX).with_stop_ids(vec![]);
        cfg.clamp_to_max_seq_len = true;
        let out = e.generate(&prompt(10), &cfg).unwrap();
        assert!(!out.tokens.is_empty() && out.tokens.len() <= 118);
    }
}

/// Issue 13, item 3: a forward's `input_pos + tokens` is checked arithmetic, so a position near
/// `usize::MAX` is `ForwardArgs` (it used to overflow: a panic in debug builds, a wrapped sum
/// that passed the bound in release builds), for the test model and a real `.pte`.
#[test]
fn forward_positions_near_usize_max_are_refused() {
    let mut m = meta(Family::Sdar, true);
    m.use_kv_cache = true;
    let mut models: Vec<Box<dyn DiffusionModel>> = vec![Box::new(HashModel::new(m, 1))];
    #[cfg(feature = "pte")]
    {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pte/sdar_cached.pte"
        );
        models.push(Box::new(
            diffulex_edge::runtime::PteModel::load(path).unwrap(),
        ));
    }
    for pos in [usize::MAX, usize::MAX - 2, 1 << 63] {
        for model in &mut models {
            let err = model
                .forward(&[5, 6, 7, 8], Some(pos))
                .map(|_| ())
                .unwrap_err();
            assert!(matches!(err, EngineError::ForwardArgs(_)), "{err}");
            assert!(err.to_string().contains(&pos.to_string()), "{err}");
        }
    }
}
