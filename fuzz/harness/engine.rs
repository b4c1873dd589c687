//! Harness of the `engine` fuzz target, shared with `tests/fuzz_replay.rs`. Sampler configs
//! and logits through the engine with a test double: any family, any settings,
//! any logits (the fuzzer's bytes, including NaN/inf) must give a documented error or an output
//! of at most max_new_tokens tokens, without the mask token, inside the vocabulary.
use arbitrary::Arbitrary;
use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDARemasking, LLaDASampler,
    SDARSampler, SdarStrategy,
};
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, DiffusionModel, EngineError, Family, LogitsView,
    ModelMetadata,
};

#[derive(Debug, Arbitrary)]
struct Input {
    family: u8,
    cached: bool,
    block_pow: u8,
    vocab: u8,
    prompt: Vec<u8>,
    max_new: u8,
    clamp: bool,
    stop_ids: Option<Vec<i8>>,
    seed: u64,
    strategy: u8,
    f: [f64; 4],
    n: [Option<u8>; 3],
    flags: [bool; 3],
    logits: Vec<f32>,
}

struct Bytes {
    meta: ModelMetadata,
    logits: Vec<f32>,
    out: Vec<f32>,
    calls: usize,
}

impl DiffusionModel for Bytes {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }
    fn forward(
        &mut self,
        tokens: &[i64],
        pos: Option<usize>,
    ) -> diffulex_edge::runtime::Result<LogitsView<'_>> {
        let m = &self.meta;
        assert_eq!(
            pos.is_some(),
            m.use_kv_cache,
            "input_pos on the wrong model kind"
        );
        assert!(!tokens.is_empty() && pos.unwrap_or(0) + tokens.len() <= m.max_seq_len);
        assert!(tokens
            .iter()
            .all(|&t| t >= 0 && (t as usize) < m.vocab_size));
        let n = tokens.len() * m.vocab_size;
        self.out.clear();
        let src = &self.logits;
        let off = self.calls.wrapping_mul(7919);
        self.out.extend((0..n).map(|i| {
            if src.is_empty() {
                0.0
            } else {
                src[(i + off) % src.len()]
            }
        }));
        self.calls += 1;
        LogitsView::new(&self.out, tokens.len(), m.vocab_size)
    }
    /// Packs the asked-for rows as a contract-2 `.pte` returns them, so a decoder reading a row
    /// it did not ask for panics under the fuzzer.
    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        pos: Option<usize>,
        rows: &'s [usize],
    ) -> diffulex_edge::runtime::Result<LogitsView<'s>> {
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows.iter().all(|&r| r < tokens.len()));
        self.forward(tokens, pos)?;
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

fn sampler(family: Family, inp: &Input) -> BlockSampler {
    let [a, b, c, d] = inp.f;
    let [n0, n1, n2] = inp.n.map(|x| x.map(usize::from));
    match family {
        Family::Sdar => {
            let mut s = SDARSampler::new(a, b);
            s.strategy = match inp.strategy % 4 {
                0 => SdarStrategy::LowConfidenceDynamic,
                1 => SdarStrategy::LowConfidenceStatic,
                2 => SdarStrategy::Sequential,
                _ => SdarStrategy::EntropyBounded,
            };
            s.eb_threshold = c;
            s.top_p = inp.flags[0].then_some(d);
            s.denoising_steps = n0;
            s.top_k = n1;
            s.block_length = n2;
            s.into()
        }
        Family::FastDllmV2 => {
            let mut s = FastdLLMV2Sampler::new(a, b);
            s.top_p = inp.flags[0].then_some(c);
            s.into()
        }
        Family::Llada => LLaDASampler {
            steps: n0,
            block_length: n1,
            temperature: b,
            cfg_scale: c,
            remasking: if inp.strategy.is_multiple_of(2) {
                LLaDARemasking::LowConfidence
            } else {
                LLaDARemasking::Random
            },
            logits_eos_inf: inp.flags[0],
            confidence_eos_eot_inf: inp.flags[1],
            threshold: inp.flags[2].then_some(a),
            eos_id: n2.map(|x| x as i64),
            eot_id: None,
            // The default: the harness's model has no bidirectional cache, so none.
            cache: None,
        }
        .into(),
        Family::Dream => DreamSampler {
            steps: n0,
            eps: a,
            alg: match inp.strategy % 4 {
                0 => DreamAlg::Origin,
                1 => DreamAlg::MaskgitPlus,
                2 => DreamAlg::TopkMargin,
                _ => DreamAlg::Entropy,
            },
            alg_temp: inp.flags[0].then_some(c),
            temperature: b,
            top_p: inp.flags[1].then_some(d),
            top_k: n1,
            // Fast-dLLM v1's block loop from bytes the other fields leave unused.
            block_length: n2,
            threshold: inp.flags[2].then_some(d),
            cache: None,
        }
        .into(),
    }
}

/// One input: the bytes decoded as libFuzzer's typed targets do, then one generation.
pub fn run_bytes(data: &[u8]) {
    let Ok(inp) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    run(inp);
}

fn run(inp: Input) {
    let family = Family::from_id(i64::from(inp.family % 4)).unwrap();
    let vocab = 4 + usize::from(inp.vocab % 60);
    let bs = 1usize << (1 + inp.block_pow % 4);
    let mut meta = ModelMetadata::for_family(family, 96, vocab, vocab as i64 - 1, vec![1], bs);
    meta.use_kv_cache = inp.cached && family.block_causal();
    let prompt: Vec<i64> = inp
        .prompt
        .iter()
        .take(40)
        .map(|&t| i64::from(t) % (vocab as i64 - 1))
        .collect();
    let model = Bytes {
        meta,
        logits: inp.logits.clone(),
        out: Vec::new(),
        calls: 0,
    };
    let cached = inp.cached && family.block_causal();
    let mut e = DiffusionEngine::from_model(model, family, cached).expect("valid metadata");
    let mut cfg = DiffusionGenerationConfig::new(usize::from(inp.max_new % 64))
        .with_seed(inp.seed)
        .with_sampler(sampler(family, &inp));
    cfg.clamp_to_max_seq_len = inp.clamp;
    cfg.stop_ids = inp
        .stop_ids
        .as_ref()
        .map(|v| v.iter().map(|&x| i64::from(x)).collect());
    match e.generate(&prompt, &cfg) {
        Ok(out) => {
            assert!(out.tokens.len() <= cfg.max_new_tokens);
            assert!(out
                .tokens
                .iter()
                .all(|&t| t >= 0 && (t as usize) < vocab && t != vocab as i64 - 1));
        }
        Err(
            EngineError::InvalidConfig { .. }
            | EngineError::NoValidToken { .. }
            | EngineError::SequenceTooLong { .. }
            | EngineError::EmptyPrompt { .. },
        ) => {}
        Err(other) => panic!("undocumented error: {other}"),
    }
}
