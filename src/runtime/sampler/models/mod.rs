//! Per-family block samplers (settings + decoding loop).

pub(crate) mod dream;
pub(crate) mod fast_dllm_v2;
pub(crate) mod llada;
pub(crate) mod sdar;

use crate::runtime::model::Family;

/// A family's decoding settings; the engine runs the matching algorithm.
///
/// ```
/// use diffulex_edge::runtime::sampler::{BlockSampler, SDARSampler};
/// let s: BlockSampler = SDARSampler::new(0.9, 0.0).into();
/// assert_eq!(s.family(), diffulex_edge::runtime::Family::Sdar);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum BlockSampler {
    /// SDAR.
    Sdar(sdar::SDARSampler),
    /// Fast-dLLM v2.
    FastdLLMV2(fast_dllm_v2::FastdLLMV2Sampler),
    /// LLaDA.
    LLaDA(llada::LLaDASampler),
    /// Dream.
    Dream(dream::DreamSampler),
}

impl BlockSampler {
    /// The family this sampler decodes.
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::{BlockSampler, LLaDASampler}, Family};
    /// assert_eq!(BlockSampler::from(LLaDASampler::default()).family(), Family::Llada);
    /// ```
    pub fn family(&self) -> Family {
        match self {
            BlockSampler::Sdar(_) => Family::Sdar,
            BlockSampler::FastdLLMV2(_) => Family::FastDllmV2,
            BlockSampler::LLaDA(_) => Family::Llada,
            BlockSampler::Dream(_) => Family::Dream,
        }
    }

    /// The family's default settings.
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::BlockSampler, Family};
    /// assert_eq!(BlockSampler::default_for(Family::Dream).family(), Family::Dream);
    /// ```
    pub fn default_for(family: Family) -> Self {
        match family {
            Family::Sdar => BlockSampler::Sdar(Default::default()),
            Family::FastDllmV2 => BlockSampler::FastdLLMV2(Default::default()),
            Family::Llada => BlockSampler::LLaDA(Default::default()),
            Family::Dream => BlockSampler::Dream(Default::default()),
        }
    }
}

impl From<sdar::SDARSampler> for BlockSampler {
    fn from(s: sdar::SDARSampler) -> Self {
        BlockSampler::Sdar(s)
    }
}
impl From<fast_dllm_v2::FastdLLMV2Sampler> for BlockSampler {
    fn from(s: fast_dllm_v2::FastdLLMV2Sampler) -> Self {
        BlockSampler::FastdLLMV2(s)
    }
}
impl From<llada::LLaDASampler> for BlockSampler {
    fn from(s: llada::LLaDASampler) -> Self {
        BlockSampler::LLaDA(s)
    }
}
impl From<dream::DreamSampler> for BlockSampler {
    fn from(s: dream::DreamSampler) -> Self {
        BlockSampler::Dream(s)
    }
}
