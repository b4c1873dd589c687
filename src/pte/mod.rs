//! Safe ExecuTorch program loading and execution.
//!
//! [`PteModule`] loads a `.pte` program (memory-mapped), describes its methods
//! ([`MethodMeta`]), and runs them on borrowed typed [`Tensor`]s, returning zero-copy
//! [`Output`] views that live until the next call. All FFI is confined to the private `raw`
//! module (plus the view construction in `output`); everything public is safe.
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

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod constants;
mod dtype;
mod error;
mod meta;
mod module;
mod output;
mod raw;
mod tensor;
mod validate;

pub use dtype::{DType, Element};
pub use error::{ErrorCode, Operation, PteError, Result};
pub use meta::{Dynamism, MethodMeta, TensorInfo, ValueKind};
pub use module::PteModule;
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
