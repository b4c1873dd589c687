//! Diffusion decoding runtime: the engine, its configuration, the forward interface and the
//! per-family samplers. See docs/decoding.md for the algorithms and every deviation from the
//! official implementations, and docs/architecture.md for how a generation flows through the
//! files below.
//!
//! Every public type has one path: here, or in [`sampler`] for the samplers. The modules
//! themselves are private.

mod block;
mod config;
mod diffusion;
mod engine;
mod error;
mod hash_model;
mod kv_prefix;
mod model;
mod parallel;
#[cfg(feature = "pte")]
mod pte_model;
mod rng;
pub mod sampler;
mod stats;

pub use config::DiffusionGenerationConfig;
pub use diffusion::{
    BlockEvent, Control, GenerationObserver, GenerationOutput, NoObserver, StepEvent, StepFn,
    StopReason,
};
pub use engine::DiffusionEngine;
pub use error::{EngineError, Result};
pub use hash_model::HashModel;
pub use model::{DiffusionModel, Family, LogitsView, ModelMetadata, ModelType};
pub use parallel::{RowPool, SequentialPool};
#[cfg(feature = "pte")]
pub use pte_model::{
    ExecuTorchPool, LoadOptions, PteModel, CONTRACT_VERSION, MIN_CONTRACT_VERSION,
};
pub use rng::Rng;
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
