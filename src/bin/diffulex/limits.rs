//! The length flags (`--max-seq-len`, `--max-new-tokens`, bench's `--prompt-len` and
//! `--gen-len`) and how they are checked against the model's context, before anything is
//! allocated. The context arithmetic is the engine's ([`DiffusionEngine::capacity`],
//! [`DiffusionEngine::max_new_tokens_for`], [`ModelMetadata::capacity`]); this file only turns
//! its answers into messages about the flags. Pure functions (no I/O, no `crate::` paths), so
//! the `cli` fuzz target (`fuzz/harness/cli.rs`) includes this file as it is.
//!
//! Every sum of user-given numbers is checked: a request whose arithmetic overflows is
//! reported with the numbers the user typed, never with a wrapped sum.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use diffulex_edge::runtime::{DiffusionEngine, ModelMetadata};

/// Length flags of `diffulex generate`.
#[derive(Debug, Clone, Args)]
pub struct LengthArgs {
    /// Context limit for prompt + generation (default and maximum: the model's own bound).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Tokens to generate at most (default: 64, or what is left of the context if less).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
}

/// Workload flags of `diffulex bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchLengthArgs {
    /// Prompt length in tokens (random ids, never the mask or an eos id; default: 64, or half
    /// the model's context if smaller).
    #[arg(long)]
    pub prompt_len: Option<usize>,
    /// Tokens generated per run (eos does not stop a benchmark run; default: 64, or what the
    /// context leaves after the prompt if less).
    #[arg(long)]
    pub gen_len: Option<usize>,
}

/// The default of both bench lengths and of `--max-new-tokens`.
pub const DEFAULT_LEN: usize = 64;

/// How many tokens to generate: the user's number if it fits after the prompt, else the default
/// of 64 shortened to what the engine's context limit leaves.
pub fn new_token_budget(
    prompt_len: usize,
    requested: Option<usize>,
    engine: &DiffusionEngine,
) -> Result<usize> {
    if requested == Some(0) {
        bail!("--max-new-tokens must be at least 1");
    }
    let capacity = engine.capacity();
    let left = engine.room_after(prompt_len);
    if left == 0 {
        bail!(
            "the prompt ({prompt_len} tokens) fills the whole context of {capacity} positions, leaving no room to generate: shorten the prompt"
        );
    }
    match requested {
        Some(n) => engine.max_new_tokens_for(prompt_len, n).map_err(|_| anyhow!(
            "prompt ({prompt_len} tokens) + --max-new-tokens ({n}) exceeds the context limit of {capacity}: lower --max-new-tokens to at most {left} or shorten the prompt"
        )),
        None => Ok(left.min(DEFAULT_LEN)),
    }
}

/// Bench's prompt and generation lengths: checked against the model's context (with block
/// rounding) before the prompt is allocated. Unset lengths get defaults that fit: 64 each, or
/// half the context for the prompt and the rest for the generation on smaller models.
/// Returns `(prompt_len, gen_len, fitted)`, `fitted` when a default was shortened.
pub fn bench_lengths(args: &BenchLengthArgs, meta: &ModelMetadata) -> Result<(usize, usize, bool)> {
    if args.prompt_len == Some(0) || args.gen_len == Some(0) {
        bail!("--prompt-len and --gen-len must be at least 1");
    }
    let cap = meta.capacity(meta.max_seq_len);
    let blocks = if cap == meta.max_seq_len {
        String::new()
    } else {
        format!(" in whole blocks of {}", meta.block_size)
    };
    for (flag, v) in [
        ("--prompt-len", args.prompt_len),
        ("--gen-len", args.gen_len),
    ] {
        if let Some(v) = v.filter(|&v| v >= cap) {
            bail!(
                "{flag} {v} leaves no room in the model's context of {cap} positions (max_seq_len {}{blocks}): use at most {}, prompt and generation together at most {cap}",
                meta.max_seq_len,
                cap.saturating_sub(1)
            );
        }
    }
    let fits = |p: usize, g: usize| p.checked_add(g).is_some_and(|s| s <= cap);
    let (p, g) = match (args.prompt_len, args.gen_len) {
        (Some(p), Some(g)) => (p, g),
        (Some(p), None) => (p, cap.saturating_sub(p).min(DEFAULT_LEN)),
        (None, Some(g)) => (cap.saturating_sub(g).min(DEFAULT_LEN), g),
        (None, None) => {
            let p = (cap / 2).min(DEFAULT_LEN);
            (p, cap.saturating_sub(p).min(DEFAULT_LEN))
        }
    };
    if p == 0 || g == 0 || !fits(p, g) {
        let shown = |v: Option<usize>, d: usize, flag: &str| match v {
            Some(v) => format!("{flag} {v}"),
            None => format!("{flag} {d} (default)"),
        };
        bail!(
            "{} + {} does not fit the model's context of {cap} positions (max_seq_len {}{blocks}): the two must add up to at most {cap}, each at least 1",
            shown(args.prompt_len, p, "--prompt-len"),
            shown(args.gen_len, g, "--gen-len"),
            meta.max_seq_len,
        );
    }
    let fitted = (args.prompt_len.is_none() && p < DEFAULT_LEN)
        || (args.gen_len.is_none() && g < DEFAULT_LEN);
    Ok((p, g, fitted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffulex_edge::runtime::Family;

    #[test]
    fn budgets_never_wrap_and_name_the_room_left() {
        let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
        let engine = DiffusionEngine::from_model(
            diffulex_edge::runtime::HashModel::new(meta, 0),
            Family::Llada,
            false,
        )
        .unwrap();
        let engine = &engine;
        let e = new_token_budget(6, Some(usize::MAX), engine)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("18446744073709551615") && e.contains("at most 58"),
            "{e}"
        );
        assert!(!e.contains("= 5"), "{e}");
        let e = new_token_budget(64, Some(1), engine)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fills the whole context") && !e.contains("at most 0"),
            "{e}"
        );
        let e = new_token_budget(80, None, engine).unwrap_err().to_string();
        assert!(e.contains("fills the whole context"), "{e}");
        assert_eq!(new_token_budget(6, None, engine).unwrap(), 58);
        assert_eq!(new_token_budget(6, Some(3), engine).unwrap(), 3);
    }

    #[test]
    fn bench_defaults_fit_small_models_and_huge_lengths_are_refused() {
        let meta = ModelMetadata::for_family(Family::Sdar, 64, 64, 63, vec![1], 4);
        let none = BenchLengthArgs {
            prompt_len: None,
            gen_len: None,
        };
        assert_eq!(bench_lengths(&none, &meta).unwrap(), (32, 32, true));
        for (p, g) in [
            (Some(usize::MAX), Some(8)),
            (Some(8), Some(usize::MAX)),
            (Some(usize::MAX), None),
            (None, Some(usize::MAX)),
            (Some(1 << 40), Some(1)),
            (Some(64), Some(1)),
        ] {
            let args = BenchLengthArgs {
                prompt_len: p,
                gen_len: g,
            };
            let e = bench_lengths(&args, &meta).unwrap_err().to_string();
            assert!(e.contains("context of 64"), "{e}");
        }
        let big = ModelMetadata::for_family(Family::Llada, 4096, 64, 63, vec![1], 0);
        assert_eq!(bench_lengths(&none, &big).unwrap(), (64, 64, false));
    }
}
