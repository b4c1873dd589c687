//! Samplers: token-level (autoregressive-style) samplers and the per-family block samplers
//! that hold each family's decoding settings and run its algorithm.

pub(crate) mod base;
mod cache;
mod models;
mod options;
pub(crate) mod shift;
mod softmax_f32;
mod token;

pub use cache::CacheMode;
pub use models::dream::{DreamAlg, DreamSampler};
pub use models::fast_dllm_v2::FastdLLMV2Sampler;
pub use models::llada::{LLaDARemasking, LLaDASampler};
pub use models::sdar::{SDARSampler, SdarStrategy};
pub use models::BlockSampler;
pub use options::SamplerOptions;
pub use token::{GreedySampler, TokenSampler, TopKSampler, TopPSampler};

use crate::runtime::error::{invalid, Result};

/// Temperature must be finite and >= 0 (0 = greedy).
pub(crate) fn check_temperature(t: f64) -> Result<()> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(invalid(
            "temperature",
            t,
            "must be finite and >= 0 (0 means greedy)",
        ))
    }
}

/// top_p must be in (0, 1].
pub(crate) fn check_top_p(p: Option<f64>) -> Result<()> {
    match p {
        Some(p) if !(p > 0.0 && p <= 1.0) => Err(invalid("top_p", p, "must be in (0, 1]")),
        _ => Ok(()),
    }
}

/// top_k must be >= 1 when set.
pub(crate) fn check_top_k(k: Option<usize>) -> Result<()> {
    match k {
        Some(0) => Err(invalid("top_k", 0, "must be >= 1 (use None to disable)")),
        _ => Ok(()),
    }
}

/// A confidence threshold must be in [0, 1].
pub(crate) fn check_threshold(field: &'static str, t: f64) -> Result<()> {
    if (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(invalid(field, t, "must be in [0, 1]"))
    }
}
