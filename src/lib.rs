//! DiffuLex Edge: run diffusion language models exported as ExecuTorch `.pte` files.
//!
//! - [`pte`]: a safe, memory-mapped [`pte::PteModule`] over ExecuTorch method execution.
//! - [`runtime`]: the diffusion engine, generation config, blocks and samplers.
//! - [`text`]: tokenization, streaming detokenization and chat templates.

#[cfg(feature = "pte")]
#[deny(missing_docs)]
pub mod pte;
pub mod runtime;
pub mod text;
