//! `--threads N`: the size of the runtime's thread pool, and how many threads score the rows
//! of a denoising step, shared by `generate` and `bench`.

use anyhow::{Context, Result};
use clap::Args;
use diffulex_edge::pte::threads;

/// The thread flag.
#[derive(Debug, Clone, Args)]
pub struct ThreadArgs {
    /// Threads XNNPACK splits each operator over, the calling thread included; the same pool
    /// scores the rows of a step (default: one per performance core; 1 runs everything on one
    /// thread).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ThreadArgs {
    /// Resizes the pool if `--threads` was given. Must run before any model is loaded: the pool
    /// cannot be replaced while one is.
    pub fn apply(&self) -> Result<()> {
        if let Some(n) = self.threads {
            threads::set_thread_count(n).with_context(|| format!("--threads {n}"))?;
        }
        Ok(())
    }

    /// The thread count in effect (`None` if the runtime has no thread pool).
    pub fn in_effect() -> Option<usize> {
        threads::thread_count().ok()
    }
}
