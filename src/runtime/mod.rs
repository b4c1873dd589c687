//! Diffusion decoding runtime: the engine, its configuration, the forward interface and the
//! per-family samplers. See docs/decoding.md for the algorithms and every deviation from the
//! official implementations.

pub mod block;
pub mod config;
pub mod diffusion;
pub mod engine;
pub mod error;
pub mod hash_model;
pub mod model;
pub mod parallel;
#[cfg(feature = "pte")]
pub mod pte_model;
pub mod rng;
pub mod sampler;
pub mod stats;

pub use config::DiffusionGenerationConfig;
pub use diffusion::{
    BlockEvent, Control, GenerationObserver, GenerationOutput, NoObserver, StepEvent, StepFn,
    StopReason,
};
pub use engine::DiffusionEngine;
pub use error::EngineError;
pub use hash_model::HashModel;
pub use model::{DiffusionModel, Family, LogitsView, ModelMetadata, ModelType};
#[cfg(feature = "pte")]
pub use pte_model::PteModel;
pub use stats::GenerationStats;

/// Seed-API name of [`DiffusionEngine`].
///
/// ```
/// use diffulex_edge::runtime::{Family, HashModel, InferenceEngine, ModelMetadata};
/// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
/// assert!(InferenceEngine::from_model(HashModel::new(meta, 0), Family::Llada, false).is_ok());
/// ```
pub type InferenceEngine = DiffusionEngine;
/// Seed-API name of [`DiffusionGenerationConfig`].
///
/// ```
/// let c = diffulex_edge::runtime::GenerationConfig::new(50);
/// assert_eq!(c.max_new_tokens, 50);
/// ```
pub type GenerationConfig = DiffusionGenerationConfig;
