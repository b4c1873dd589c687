//! DiffuLex Edge: run diffusion language models exported as ExecuTorch `.pte` files.
//!
#![cfg_attr(
    feature = "pte",
    doc = "- [`pte`]: a safe, memory-mapped [`pte::PteModule`] over ExecuTorch method execution."
)]
#![cfg_attr(
    not(feature = "pte"),
    doc = "- `pte`: the ExecuTorch wrapper (cargo feature `pte`, not enabled in this build)."
)]
//! - [`runtime`]: the diffusion engine, generation config, blocks and samplers.
//! - [`text`]: tokenization, streaming detokenization and chat templates.
//!
//! Cargo features, both on by default: `pte` (ExecuTorch: the `pte` module,
//! `runtime::PteModel`, `DiffusionEngine::from_pte`) and `cli` (the `diffulex` binary's own
//! dependencies; the library uses none of them). Without `pte` the crate is pure Rust and
//! decodes any [`runtime::DiffusionModel`] of your own.

#![deny(missing_docs)]

#[cfg(feature = "pte")]
pub mod pte;
pub mod runtime;
pub mod text;
