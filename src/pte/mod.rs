//! Safe ExecuTorch program loading and execution.
//!
//! [`PteModule`] loads a `.pte` program (memory-mapped), describes its methods
//! ([`MethodMeta`]), and runs them on borrowed typed [`Tensor`]s, returning zero-copy
//! [`Output`] views that live until the next call. All FFI is confined to the private `raw`
//! module (plus the view constructions in `output` and in [`PteModule::named_data`]);
//! everything public is safe.
//!
//! ```
//! # fn main() -> Result<(), diffulex_edge::pte::PteError> {
//! use diffulex_edge::pte::{PteModule, Tensor};
//! let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/dynamic.pte"))?;
//! let max = m.constant_i64("get_max_seq_len")? as usize;
//! let tokens = vec![3i64; max];
//! let logits = m.execute("forward", &[Tensor::i64(&tokens, &[1, max])])?;
//! assert_eq!(logits.get(0)?.shape(), &[1, max, 12]);
//! # Ok(()) }
//! ```
//!
//! # Threads
//!
//! XNNPACK splits each operator over ExecuTorch's process-wide thread pool; [`threads`] reads
//! and sets its size (before any module is loaded: it refuses while one exists).
//!
//! # Corrupt programs
//!
//! [`PteModule::load`] and [`PteModule::from_bytes`] verify a program's meaning (indices,
//! value types, kernel arguments, XNNPACK payloads) before any method reaches the runtime, and
//! return [`PteError::CorruptProgram`] instead of letting ExecuTorch crash on it. What is
//! checked and why is told in the private `verify` module (`src/pte/verify/mod.rs`).

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod constants;
mod digest;
mod dtype;
mod error;
mod meta;
mod module;
mod output;
mod raw;
mod tensor;
pub mod threads;
mod validate;
mod verify;

pub use digest::{weights_digest_of_bytes, weights_digest_of_file, SegmentsDigest};
pub use dtype::{DType, Element};
pub use error::{ErrorCode, Operation, PteError, Result};
pub use executorch_sys::{Runtime, RuntimeSource};
pub use meta::{Dynamism, MethodMeta, TensorInfo, ValueKind};
pub use module::{not_a_regular_file, PteModule};
pub use output::{Output, Outputs};
#[doc(hidden)]
pub use tensor::TensorData;
pub use tensor::{OwnedData, OwnedTensor, Tensor};

/// The raw bindings, for what the safe API does not cover.
pub use executorch_sys as sys;

/// Minimum level of ExecuTorch log lines printed to stderr.
///
/// The default is [`LogLevel::Fatal`]: the runtime's Info lines (and XNNPACK's cpuinfo chatter)
/// stay quiet, and error lines are not printed because they are captured into
/// [`PteError::Runtime`] messages at any level; fatal lines precede an abort. The
/// `DIFFULEX_ET_LOG` environment variable (`debug`, `info`, `error`, `fatal`, `off`) sets the
/// level when the first module is loaded.
///
/// ```
/// use diffulex_edge::pte::LogLevel;
/// assert_eq!(LogLevel::parse("info"), Some(LogLevel::Info));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// Everything.
    Debug = 0,
    /// Informational lines and up.
    Info = 1,
    /// Errors and fatal errors.
    Error = 2,
    /// Only fatal errors (default).
    Fatal = 3,
    /// Nothing.
    Off = 4,
}

impl LogLevel {
    /// Parses `debug`, `info`, `error`, `fatal` or `off` (case-insensitive).
    ///
    /// ```
    /// use diffulex_edge::pte::LogLevel;
    /// assert_eq!(LogLevel::parse("OFF"), Some(LogLevel::Off));
    /// assert_eq!(LogLevel::parse("loud"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "error" | "warn" | "warning" => Some(LogLevel::Error),
            "fatal" => Some(LogLevel::Fatal),
            "off" | "none" => Some(LogLevel::Off),
            _ => None,
        }
    }
}

/// Sets the minimum level of ExecuTorch log lines printed to stderr (process-wide).
///
/// ```
/// diffulex_edge::pte::set_log_level(diffulex_edge::pte::LogLevel::Off);
/// ```
pub fn set_log_level(level: LogLevel) {
    raw::set_log_level(level as i32);
}

/// The ExecuTorch runtime this process uses, opened on first use: where it was found and which
/// files a copy of the program needs beside it. Loading a module calls this first.
///
/// The runtime's shim library is looked for in `DIFFULEX_RUNTIME_DIR` (a directory or the file),
/// then beside the executable (and beside the shared library this crate is linked into), then
/// at the path the build left it at; see the README, "Use it from your own crate".
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// let runtime = diffulex_edge::pte::runtime()?;
/// println!("ExecuTorch runtime: {runtime}");
/// if let Some(shim) = runtime.shim_path() {
///     assert!(runtime.files().iter().any(|f| f == shim));
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`PteError::RuntimeUnavailable`] naming the places searched and what to do.
pub fn runtime() -> Result<&'static Runtime> {
    raw::ensure_runtime().map_err(|e| PteError::RuntimeUnavailable { message: e.message })
}

/// Names of the operator kernels the loaded runtime registers (sorted), e.g. `aten::add.out`.
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// let kernels = diffulex_edge::pte::registered_operators()?;
/// assert!(kernels.iter().any(|k| k == "aten::add.out"));
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`PteError::RuntimeUnavailable`], or [`PteError::Runtime`] if the runtime fails to list them.
pub fn registered_operators() -> Result<Vec<String>> {
    runtime()?;
    raw::registered_kernels().map_err(|e| PteError::RuntimeUnavailable { message: e.message })
}

/// Names of the delegate backends the loaded runtime registers, e.g. `XnnpackBackend`.
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// assert!(diffulex_edge::pte::registered_backends()?.iter().any(|b| b == "XnnpackBackend"));
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`registered_operators`].
pub fn registered_backends() -> Result<Vec<String>> {
    runtime()?;
    raw::registered_backends().map_err(|e| PteError::RuntimeUnavailable { message: e.message })
}
