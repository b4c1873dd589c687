//! Turns the decoding flags of `diffulex generate` into the family's sampler settings, refusing
//! flags that mean nothing for the family instead of silently ignoring them.

use anyhow::{bail, Result};
use clap::Args;
use diffulex_edge::runtime::sampler::{
    BlockSampler, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDARemasking, LLaDASampler,
    SDARSampler, SdarStrategy,
};
use diffulex_edge::runtime::Family;

/// Decoding flags shared by `generate` (and later `bench`).
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Block length (SDAR, Fast-dLLM v2: must equal the model's; LLaDA: semi-autoregressive block).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Denoising steps (SDAR: per block; LLaDA, Dream: in total).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Confidence threshold for parallel commits (SDAR dynamic, Fast-dLLM v2, LLaDA's Fast-dLLM mode).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Commit rule. SDAR: low_confidence_dynamic | low_confidence_static | sequential |
    /// entropy_bounded. LLaDA: low_confidence | random. Dream: origin | maskgit_plus |
    /// topk_margin | entropy.
    #[arg(long, visible_alias = "alg", value_name = "NAME")]
    pub strategy: Option<String>,
    /// Sampling temperature; 0 decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
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
}

impl DecodeArgs {
    /// The sampler for `family`, or an error naming the first flag the family cannot use.
    pub fn sampler_for(&self, family: Family) -> Result<BlockSampler> {
        let unsupported = |flag: &str| -> Result<BlockSampler> {
            bail!(
                "{flag} does not apply to {} models; run `diffulex generate --help` for the flags each family takes",
                family.name()
            )
        };
        // Dream filters with top-p/top-k even when greedy (it changes the confidence), so only
        // there do they mean something at temperature 0.
        if (self.top_k.is_some() || self.top_p.is_some())
            && self.temperature == 0.0
            && family != Family::Dream
        {
            bail!("--top-k/--top-p only matter when sampling: add --temperature > 0 (0 decodes greedily)");
        }
        Ok(match family {
            Family::Sdar => {
                if self.cfg_scale.is_some() {
                    return unsupported("--cfg-scale");
                }
                if self.eps.is_some() || self.alg_temp.is_some() {
                    return unsupported("--eps/--alg-temp");
                }
                let mut s = SDARSampler::new(self.threshold.unwrap_or(0.9), self.temperature);
                if let Some(name) = &self.strategy {
                    s.strategy = name.parse::<SdarStrategy>()?;
                }
                if let Some(eb) = self.eb_threshold {
                    s.eb_threshold = eb;
                }
                s.denoising_steps = self.steps;
                s.block_length = self.block_size;
                s.top_k = self.top_k;
                s.top_p = self.top_p;
                s.into()
            }
            Family::FastDllmV2 => {
                if self.strategy.is_some() {
                    return unsupported("--strategy");
                }
                if self.top_k.is_some() {
                    return unsupported("--top-k");
                }
                if self.steps.is_some() {
                    return unsupported("--steps (Fast-dLLM v2 decodes until the block is done)");
                }
                if self.cfg_scale.is_some() || self.eps.is_some() || self.alg_temp.is_some() {
                    return unsupported("--cfg-scale/--eps/--alg-temp");
                }
                let mut s =
                    FastdLLMV2Sampler::new(self.threshold.unwrap_or(0.95), self.temperature);
                if self.top_p.is_some() {
                    s.top_p = self.top_p;
                }
                s.block_length = self.block_size;
                s.into()
            }
            Family::Llada => {
                if self.top_k.is_some() || self.top_p.is_some() {
                    return unsupported("--top-k/--top-p (LLaDA samples with Gumbel noise)");
                }
                if self.eps.is_some() || self.alg_temp.is_some() {
                    return unsupported("--eps/--alg-temp");
                }
                let remasking = match &self.strategy {
                    Some(name) => name.parse::<LLaDARemasking>()?,
                    None => LLaDARemasking::default(),
                };
                LLaDASampler {
                    steps: self.steps,
                    block_length: self.block_size,
                    temperature: self.temperature,
                    cfg_scale: self.cfg_scale.unwrap_or(0.0),
                    remasking,
                    threshold: self.threshold,
                    ..Default::default()
                }
                .into()
            }
            Family::Dream => {
                if self.block_size.is_some() || self.threshold.is_some() {
                    return unsupported("--block-size/--threshold");
                }
                if self.cfg_scale.is_some() {
                    return unsupported("--cfg-scale");
                }
                let mut s = DreamSampler {
                    steps: self.steps,
                    temperature: self.temperature,
                    top_p: self.top_p,
                    top_k: self.top_k,
                    alg_temp: self.alg_temp,
                    ..Default::default()
                };
                if let Some(eps) = self.eps {
                    s.eps = eps;
                }
                if let Some(name) = &self.strategy {
                    s.alg = name.parse::<DreamAlg>()?;
                }
                s.into()
            }
        })
    }
}
