//! The Rust block sampler a golden case describes: the Python reference's sampler dict (field
//! names and defaults of `diffulex_export.reference`) mapped onto the Rust samplers. Shared by
//! tests/engine_parity.rs and tests/threads.rs.

use diffulex_edge::runtime::sampler::{
    BlockSampler, CacheMode, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDARemasking,
    LLaDASampler, SDARSampler, SdarStrategy,
};
use diffulex_edge::runtime::Family;
use serde_json::Value;

/// A float field of a golden's JSON object.
pub fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}
/// A non-negative integer field of a golden's JSON object.
pub fn n(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|x| x as usize)
}

/// The reference's `cache` (default "none": the reference never picks a cache on its own).
fn cache(s: &Value) -> Option<CacheMode> {
    let name = s.get("cache").and_then(Value::as_str).unwrap_or("none");
    Some(name.parse().expect("cache mode"))
}

/// Maps the golden's sampler dict (Python reference field names) onto the Rust samplers.
pub fn sampler_from(family: Family, s: &Value) -> BlockSampler {
    match family {
        Family::Sdar => {
            let mut x = SDARSampler::new(
                f(s, "threshold").unwrap_or(0.9),
                f(s, "temperature").unwrap_or(0.0),
            );
            x.strategy = match s
                .get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("low_confidence_dynamic")
            {
                "low_confidence_dynamic" => SdarStrategy::LowConfidenceDynamic,
                "low_confidence_static" => SdarStrategy::LowConfidenceStatic,
                "sequential" => SdarStrategy::Sequential,
                "entropy_bounded" => SdarStrategy::EntropyBounded,
                o => panic!("strategy {o}"),
            };
            x.eb_threshold = f(s, "eb_threshold").unwrap_or(0.35);
            x.denoising_steps = n(s, "denoising_steps");
            x.top_k = n(s, "top_k");
            x.top_p = f(s, "top_p");
            x.into()
        }
        Family::FastDllmV2 => {
            let mut x = FastdLLMV2Sampler::new(
                f(s, "threshold").unwrap_or(0.95),
                f(s, "temperature").unwrap_or(0.0),
            );
            if s.get("top_p").is_some() {
                x.top_p = f(s, "top_p");
            }
            x.sub_block_cache = s
                .get("sub_block_cache")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            x.min_tokens_per_step = n(s, "min_tokens_per_step").unwrap_or(1);
            x.into()
        }
        Family::Llada => LLaDASampler {
            steps: n(s, "steps"),
            block_length: n(s, "block_length"),
            temperature: f(s, "temperature").unwrap_or(0.0),
            cfg_scale: f(s, "cfg_scale").unwrap_or(0.0),
            remasking: match s
                .get("remasking")
                .and_then(Value::as_str)
                .unwrap_or("low_confidence")
            {
                "random" => LLaDARemasking::Random,
                _ => LLaDARemasking::LowConfidence,
            },
            logits_eos_inf: s
                .get("logits_eos_inf")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            confidence_eos_eot_inf: s
                .get("confidence_eos_eot_inf")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            threshold: f(s, "threshold"),
            eos_id: None,
            eot_id: None,
            cache: cache(s),
        }
        .into(),
        Family::Dream => DreamSampler {
            steps: n(s, "steps"),
            eps: f(s, "eps").unwrap_or(1e-3),
            alg: match s.get("alg").and_then(Value::as_str).unwrap_or("entropy") {
                "origin" => DreamAlg::Origin,
                "maskgit_plus" => DreamAlg::MaskgitPlus,
                "topk_margin" => DreamAlg::TopkMargin,
                _ => DreamAlg::Entropy,
            },
            alg_temp: f(s, "alg_temp"),
            temperature: f(s, "temperature").unwrap_or(0.0),
            top_p: f(s, "top_p"),
            top_k: n(s, "top_k"),
            block_length: n(s, "block_length"),
            threshold: f(s, "threshold"),
            cache: cache(s),
        }
        .into(),
    }
}
