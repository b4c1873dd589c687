//! Harness of the `cli` fuzz target, shared with `tests/fuzz_replay.rs`: the CLI's
//! flag-to-config path. Arbitrary flags go through the CLI's own clap definitions (the
//! length, bench-length and decoding flags of `src/bin/diffulex/{limits,sampling}.rs`, included
//! as they are), then through the same checks `diffulex generate` and `diffulex bench` run
//! (the engine's `with_max_seq_len`, `new_token_budget`, `bench_lengths`, `sampler_for`) and into the engine
//! over a hash test model. Must hold for every input:
//! - a parser error renders as one line without control characters (`output::clap_message`);
//! - no panic, no huge allocation, no unbounded loop, whatever the numbers;
//! - what the CLI's length checks accept, the engine accepts too (never `SequenceTooLong`),
//!   and the output is at most the budget; the only engine errors are `InvalidConfig` and
//!   `NoValidToken`.
//!
//! Input: byte 0 picks the family, byte 1 the prompt length (1..=80 tokens), byte 2 the KV
//! cache mode; the rest are the flags, separated by NUL bytes.

use clap::Parser;
use diffulex_edge::runtime::{
    DiffusionEngine, DiffusionGenerationConfig, EngineError, Family, HashModel, ModelMetadata,
};

#[allow(dead_code)]
#[path = "../../src/bin/diffulex/limits.rs"]
mod limits;
#[allow(dead_code)]
#[path = "../../src/bin/diffulex/output.rs"]
mod output;
#[allow(dead_code)]
#[path = "../../src/bin/diffulex/sampling.rs"]
mod sampling;

/// The flags whose values become the generation config.
#[derive(Debug, Parser)]
#[command(name = "diffulex-flags")]
struct Flags {
    #[command(flatten)]
    lengths: limits::LengthArgs,
    #[command(flatten)]
    bench: limits::BenchLengthArgs,
    #[command(flatten)]
    decode: sampling::DecodeArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

const FAMILIES: [Family; 4] = [
    Family::Sdar,
    Family::FastDllmV2,
    Family::Llada,
    Family::Dream,
];

fn meta(family: Family, cached: bool) -> ModelMetadata {
    let mut m = ModelMetadata::for_family(family, 64, 32, 31, vec![1], 4);
    m.use_kv_cache = cached && family.block_causal();
    m
}

/// An engine over the hash test model.
fn engine(meta: &ModelMetadata) -> DiffusionEngine {
    DiffusionEngine::from_model(
        HashModel::new(meta.clone(), 7),
        meta.family,
        meta.use_kv_cache,
    )
    .expect("a valid test model")
}

/// Generates and checks the outcome against the budget the CLI computed.
fn generate(engine: &mut DiffusionEngine, prompt_len: usize, config: &DiffusionGenerationConfig) {
    let prompt: Vec<i64> = (0..prompt_len as i64).map(|i| 2 + i % 28).collect();
    match engine.generate(&prompt, config) {
        Ok(out) => assert!(
            out.tokens.len() <= config.max_new_tokens,
            "{} tokens for a budget of {}",
            out.tokens.len(),
            config.max_new_tokens
        ),
        Err(EngineError::InvalidConfig { .. } | EngineError::NoValidToken { .. }) => {}
        Err(e) => panic!("the CLI accepted lengths the engine refuses: {e}"),
    }
}

pub fn run_bytes(data: &[u8]) {
    let [f, p, c, rest @ ..] = data else {
        return;
    };
    let family = FAMILIES[usize::from(*f) % 4];
    let meta = meta(family, c % 2 == 1);
    let prompt_len = usize::from(*p) % 80 + 1;
    let args = rest
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let flags =
        match Flags::try_parse_from(std::iter::once("diffulex-flags".to_string()).chain(args)) {
            Ok(flags) => flags,
            Err(e) => {
                let line = output::clap_message(&e);
                assert!(!line.chars().any(char::is_control), "{line:?}");
                return;
            }
        };
    let Ok(sampler) = flags.decode.sampler_for(family) else {
        return;
    };
    // `diffulex generate`.
    let limit = flags.lengths.max_seq_len.unwrap_or(meta.max_seq_len);
    if let Ok(mut engine) = engine(&meta).with_max_seq_len(limit) {
        let cap = engine.capacity();
        if let Ok(n) = limits::new_token_budget(prompt_len, flags.lengths.max_new_tokens, &engine) {
            assert!(
                prompt_len + n <= cap,
                "budget {n} after {prompt_len} > {cap}"
            );
            let config = DiffusionGenerationConfig {
                max_new_tokens: n,
                seed: flags.seed,
                sampler: Some(sampler.clone()),
                ..Default::default()
            };
            generate(&mut engine, prompt_len, &config);
        }
    }
    // `diffulex bench` (no early stop).
    if let Ok((p, g, _)) = limits::bench_lengths(&flags.bench, &meta) {
        assert!(p >= 1 && g >= 1 && p + g <= meta.max_seq_len);
        let config = DiffusionGenerationConfig {
            max_new_tokens: g,
            seed: flags.seed,
            stop_ids: Some(vec![]),
            clamp_to_max_seq_len: false,
            sampler: Some(sampler),
        };
        generate(&mut engine(&meta), p, &config);
    }
}
