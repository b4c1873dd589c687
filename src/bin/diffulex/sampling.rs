//! The decoding flags of `diffulex generate` and `bench`: a thin clap face over the library's
//! [`SamplerOptions`]. Each flag is the option of the same name (`--block-size` is
//! `block_size`); the defaults and which family uses which option live in the library
//! ([`BlockSampler::from_options`]). The library names options by field; this file turns its
//! refusals back into the flag names the user typed.
//!
//! Included as it is by the `cli` fuzz target (`fuzz/harness/cli.rs`): no `crate::` paths.

use anyhow::{anyhow, Result};
use clap::Args;
use diffulex_edge::runtime::sampler::{BlockSampler, CacheMode, SamplerOptions};
use diffulex_edge::runtime::{EngineError, Family};

/// Decoding flags shared by `generate` and `bench`; unset flags keep the family's defaults.
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Block length (SDAR, Fast-dLLM v2: must equal the model's; LLaDA: semi-autoregressive
    /// block; Dream: Fast-dLLM v1's block).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Denoising steps (SDAR: per block; LLaDA, Dream: in total).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Confidence threshold for parallel commits (SDAR dynamic, Fast-dLLM v2, LLaDA's and
    /// Dream's Fast-dLLM mode).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Commit rule. SDAR: low_confidence_dynamic | low_confidence_static | sequential |
    /// entropy_bounded. LLaDA: low_confidence | random. Dream: origin | maskgit_plus |
    /// topk_margin | entropy.
    #[arg(long, visible_alias = "alg", value_name = "NAME")]
    pub strategy: Option<String>,
    /// Sampling temperature; 0 (the default) decodes greedily.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Keep only the k most likely tokens when sampling (SDAR, Dream).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass in (0, 1] (SDAR, Fast-dLLM v2, Dream).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Entropy bound of SDAR's entropy_bounded strategy.
    #[arg(long)]
    pub eb_threshold: Option<f64>,
    /// LLaDA classifier-free guidance scale.
    #[arg(long)]
    pub cfg_scale: Option<f64>,
    /// Dream schedule's final time.
    #[arg(long)]
    pub eps: Option<f64>,
    /// Dream: sample positions from softmax(confidence / alg_temp).
    #[arg(long)]
    pub alg_temp: Option<f64>,
    /// LLaDA, Dream: Fast-dLLM v1's KV cache, none | prefix | dual (default: dual when the
    /// model was exported with --kv-cache, else none).
    #[arg(long, value_name = "MODE")]
    pub cache: Option<CacheMode>,
    /// Fast-dLLM v2: the official sub-block cache (`use_block_cache`): a sub-block's later
    /// forwards recompute only its 8 tokens against the block's cached K/V. Needs a .pte
    /// exported with --kv-cache by this release (contract 3).
    #[arg(long)]
    pub sub_block_cache: bool,
    /// Fast-dLLM v2: commit at least N positions per forward, the most confident first
    /// (default 1, the official rule).
    #[arg(long, value_name = "N")]
    pub min_tokens_per_step: Option<usize>,
}

impl From<&DecodeArgs> for SamplerOptions {
    fn from(args: &DecodeArgs) -> Self {
        SamplerOptions {
            block_size: args.block_size,
            steps: args.steps,
            threshold: args.threshold,
            strategy: args.strategy.clone(),
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            eb_threshold: args.eb_threshold,
            cfg_scale: args.cfg_scale,
            eps: args.eps,
            alg_temp: args.alg_temp,
            cache: args.cache,
            sub_block_cache: args.sub_block_cache.then_some(true),
            min_tokens_per_step: args.min_tokens_per_step,
        }
    }
}

impl DecodeArgs {
    /// The sampler for `family`, or an error naming the first flag the family cannot use.
    pub fn sampler_for(&self, family: Family) -> Result<BlockSampler> {
        BlockSampler::from_options(family, &SamplerOptions::from(self)).map_err(|e| match e {
            EngineError::OptionNotApplicable {
                option,
                family,
                reason,
            } => anyhow!(
                "{} does not apply to {family} models ({reason}); run `diffulex generate --help` for the flags each family takes",
                flag(option)
            ),
            EngineError::OptionNeedsSampling { .. } => anyhow!(
                "--top-k/--top-p only matter when sampling: add --temperature > 0 (0 decodes greedily)"
            ),
            other => other.into(),
        })
    }
}

/// The flag of a [`SamplerOptions`] field: `cfg_scale` is `--cfg-scale`.
fn flag(option: &str) -> String {
    format!("--{}", option.replace('_', "-"))
}
