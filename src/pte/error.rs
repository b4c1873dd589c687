//! Errors of the PTE layer: every ExecuTorch error code, plus the checks done in Rust before
//! the runtime sees an input.

use std::fmt;
use std::path::PathBuf;

use super::dtype::DType;
use super::meta::ValueKind;

/// Result alias of this module.
///
/// ```
/// fn names() -> diffulex_edge::pte::Result<Vec<String>> {
///     Ok(vec!["forward".to_string()])
/// }
/// assert_eq!(names().unwrap(), ["forward"]);
/// ```
pub type Result<T, E = PteError> = std::result::Result<T, E>;

/// An ExecuTorch runtime error code (`executorch::runtime::Error`).
///
/// ```
/// use diffulex_edge::pte::ErrorCode;
/// assert_eq!(ErrorCode::from_code(0x14), ErrorCode::OperatorMissing);
/// assert_eq!(ErrorCode::OperatorMissing.code(), 0x14);
/// assert_eq!(ErrorCode::from_code(0x99), ErrorCode::Unknown(0x99));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0x01: an internal error (also: a C++ exception caught at the FFI boundary).
    Internal,
    /// 0x02: the object is not in a state that allows the call.
    InvalidState,
    /// 0x03: execution reached the end of the method.
    EndOfMethod,
    /// 0x04: the method is already loaded.
    AlreadyLoaded,
    /// 0x10: the operation is not supported.
    NotSupported,
    /// 0x11: the operation is not implemented.
    NotImplemented,
    /// 0x12: an argument was invalid (shape, dtype, count).
    InvalidArgument,
    /// 0x13: a value had the wrong type.
    InvalidType,
    /// 0x14: the program uses an operator no linked kernel library provides.
    OperatorMissing,
    /// 0x15: too many kernels registered.
    RegistrationExceedingMaxKernels,
    /// 0x16: a kernel was registered twice.
    RegistrationAlreadyRegistered,
    /// 0x20: something (a method, a backend, data) was not found.
    NotFound,
    /// 0x21: an allocation failed.
    MemoryAllocationFailed,
    /// 0x22: reading the program data failed.
    AccessFailed,
    /// 0x23: the program is malformed.
    InvalidProgram,
    /// 0x24: external data is malformed.
    InvalidExternalData,
    /// 0x25: out of resources.
    OutOfResources,
    /// 0x30: a delegate cannot run this blob.
    DelegateInvalidCompatibility,
    /// 0x31: a delegate could not allocate memory.
    DelegateMemoryAllocationFailed,
    /// 0x32: a delegate handle is invalid.
    DelegateInvalidHandle,
    /// A code this version does not know.
    Unknown(u32),
}

const CODES: [(u32, ErrorCode); 20] = [
    (0x01, ErrorCode::Internal),
    (0x02, ErrorCode::InvalidState),
    (0x03, ErrorCode::EndOfMethod),
    (0x04, ErrorCode::AlreadyLoaded),
    (0x10, ErrorCode::NotSupported),
    (0x11, ErrorCode::NotImplemented),
    (0x12, ErrorCode::InvalidArgument),
    (0x13, ErrorCode::InvalidType),
    (0x14, ErrorCode::OperatorMissing),
    (0x15, ErrorCode::RegistrationExceedingMaxKernels),
    (0x16, ErrorCode::RegistrationAlreadyRegistered),
    (0x20, ErrorCode::NotFound),
    (0x21, ErrorCode::MemoryAllocationFailed),
    (0x22, ErrorCode::AccessFailed),
    (0x23, ErrorCode::InvalidProgram),
    (0x24, ErrorCode::InvalidExternalData),
    (0x25, ErrorCode::OutOfResources),
    (0x30, ErrorCode::DelegateInvalidCompatibility),
    (0x31, ErrorCode::DelegateMemoryAllocationFailed),
    (0x32, ErrorCode::DelegateInvalidHandle),
];

impl ErrorCode {
    /// Maps a raw ExecuTorch code; unknown values are kept in [`ErrorCode::Unknown`].
    ///
    /// ```
    /// use diffulex_edge::pte::ErrorCode;
    /// assert_eq!(ErrorCode::from_code(0x23), ErrorCode::InvalidProgram);
    /// ```
    pub fn from_code(code: u32) -> Self {
        CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, e)| *e)
            .unwrap_or(ErrorCode::Unknown(code))
    }

    /// The raw ExecuTorch code.
    ///
    /// ```
    /// use diffulex_edge::pte::ErrorCode;
    /// assert_eq!(ErrorCode::InvalidArgument.code(), 0x12);
    /// ```
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::Unknown(c) => c,
            known => CODES
                .iter()
                .find(|(_, e)| *e == known)
                .map_or(0, |(c, _)| *c),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(c) => write!(f, "unknown error 0x{c:02x}"),
            known => write!(f, "{known:?} (0x{:02x})", known.code()),
        }
    }
}

/// What the runtime was asked to do when it failed.
///
/// ```
/// use diffulex_edge::pte::Operation;
/// assert_eq!(Operation::Execute.to_string(), "executing");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Loading and verifying the program.
    Load,
    /// Listing method names.
    MethodNames,
    /// Loading a method and reading its metadata.
    MethodMeta,
    /// Running a method.
    Execute,
    /// Reading an output.
    ReadOutput,
    /// Loading a named data entry of the program.
    NamedData,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Load => "loading the program",
            Operation::MethodNames => "listing methods",
            Operation::MethodMeta => "loading method metadata",
            Operation::Execute => "executing",
            Operation::ReadOutput => "reading an output",
            Operation::NamedData => "reading named data",
        })
    }
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|p| format!("{p:?}: "))
        .unwrap_or_default()
}

fn method_suffix(method: &Option<String>) -> String {
    method
        .as_ref()
        .map(|m| format!(" method `{m}`"))
        .unwrap_or_default()
}

/// A name read from the program, quoted with control characters escaped and cut to a
/// readable length: a corrupt file's name must not write to the terminal as is.
fn shown(name: &str) -> String {
    const MAX: usize = 80;
    let quoted = format!("{name:?}");
    if quoted.chars().count() <= MAX {
        return quoted;
    }
    let cut: String = quoted.chars().take(MAX).collect();
    format!("{cut}...\" ({} bytes)", name.len())
}

/// What to do about an operator the runtime lacks, by namespace.
fn operator_hint(operator: &str) -> &'static str {
    if operator.starts_with("quantized_decomposed::") {
        "libexecutorch_kernels_quantized registers it; make sure that library sits beside \
         libdiffulex_et (`diffulex runtime` lists the files)"
    } else if operator.starts_with("aten::") || operator.starts_with("dim_order_ops::") {
        "libexecutorch_kernels_optimized (optimized and portable ATen kernels) registers it; \
         make sure that library sits beside libdiffulex_et (`diffulex runtime` lists the files), \
         or re-export the model with diffulex-export against ExecuTorch 1.5.1"
    } else if operator.starts_with("llama::") {
        "it is one of ExecuTorch's LLM custom operators, which a program exported with \
         `diffulex-export --llm-ops` uses and no prebuilt runtime has: build diffulex from \
         source with `--features llm-ops` (docs/source-build.md), or re-export the model \
         without --llm-ops"
    } else {
        "it is a custom operator that no library of this runtime provides; link the library that \
         registers it, or re-export the model with plain ATen ops (diffulex-export does)"
    }
}

/// What to do about a backend the runtime lacks.
fn backend_hint(backend: &str) -> &'static str {
    if backend == "XnnpackBackend" {
        "libexecutorch_backend_xnnpack registers it; make sure that library sits beside \
         libdiffulex_et (`diffulex runtime` lists the files)"
    } else if backend == "VulkanBackend" {
        "the Vulkan delegate needs a source build with feature `vulkan`"
    } else {
        "re-export the model for the XNNPACK backend or without delegation"
    }
}

/// What to do about a registered backend that cannot run here.
fn unavailable_hint(backend: &str) -> &'static str {
    if backend == "VulkanBackend" {
        "it found no Vulkan device. Install the GPU's Vulkan driver (on a CPU-only Linux \
         machine, mesa's lavapipe: apt-get install mesa-vulkan-drivers; `vulkaninfo --summary` \
         lists the devices), or use an XNNPACK export of the model (diffulex-export --backend \
         xnnpack)"
    } else {
        "the backend's device or driver is missing; re-export the model for the XNNPACK backend"
    }
}

/// An error from loading or running a `.pte` program.
///
/// Runtime failures carry the ExecuTorch [`ErrorCode`] with the file, method and the runtime's
/// own error log lines; input problems are caught in Rust first and name the method, the input
/// index and what was expected.
///
/// ```
/// use diffulex_edge::pte::{DType, PteError};
/// let e = PteError::InputDType {
///     method: "forward".into(),
///     index: 0,
///     expected: DType::I64,
///     got: DType::F32,
/// };
/// assert_eq!(e.to_string(), "method `forward` input 0: expected dtype i64, got f32");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PteError {
    /// The file could not be opened or read.
    // The OS error is part of this message and deliberately not an error `source`: printing
    // the chain would repeat it.
    #[error("cannot read {path:?}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is empty, so it cannot be a program.
    #[error("{path:?}: empty file, not an ExecuTorch program")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The path cannot be passed to C (it contains a NUL byte).
    #[error("path {path:?} contains a NUL byte")]
    InvalidPath {
        /// The path.
        path: PathBuf,
    },
    /// A named data key cannot be passed to C (it contains a NUL byte), so no entry can be
    /// looked up by it.
    ///
    /// ```
    /// use diffulex_edge::pte::PteError;
    /// let e = PteError::InvalidNamedDataKey { key: "a\0b".into() };
    /// assert_eq!(e.to_string(), r#"named data key "a\0b" contains a NUL byte"#);
    /// ```
    #[error("named data key {key:?} contains a NUL byte")]
    InvalidNamedDataKey {
        /// The key as given.
        key: String,
    },
    /// The ExecuTorch runtime reported an error.
    #[error(
        "{}{operation}{}: {code}: {message}",
        file_prefix(file),
        method_suffix(method)
    )]
    Runtime {
        /// The ExecuTorch error code.
        code: ErrorCode,
        /// What was being done.
        operation: Operation,
        /// The program file, if loaded from one.
        file: Option<PathBuf>,
        /// The method, if any.
        method: Option<String>,
        /// The runtime's message, including its error log lines.
        message: String,
    },
    /// The ExecuTorch runtime library could not be found or opened (see
    /// [`runtime`](super::runtime) for where it is looked for).
    #[error("ExecuTorch runtime unavailable: {message}")]
    RuntimeUnavailable {
        /// Where it was looked for and what to do.
        message: String,
    },
    /// A method uses an operator no kernel library of the loaded runtime registers. Reported
    /// when the program loads, before any method does.
    #[error(
        "{}method {} uses operator {}, which the ExecuTorch runtime at {runtime} has no kernel \
         for: {}",
        file_prefix(file),
        shown(method),
        shown(operator),
        operator_hint(operator)
    )]
    MissingOperator {
        /// The program file, if loaded from one.
        file: Option<PathBuf>,
        /// The method.
        method: String,
        /// The operator's registry name, e.g. `aten::add.out`.
        operator: String,
        /// The runtime that was searched (shim path and how it was found).
        runtime: Box<str>,
    },
    /// A method is delegated to a backend the loaded runtime has not registered.
    #[error(
        "method {} is delegated to backend {}, which the ExecuTorch runtime at {runtime} does \
         not have (registered: {}): {}",
        shown(method),
        shown(backend),
        if registered.is_empty() { "none".to_string() } else { registered.join(", ") },
        backend_hint(backend)
    )]
    MissingBackend {
        /// The method.
        method: String,
        /// The backend id in the program, e.g. `XnnpackBackend`.
        backend: String,
        /// The backends the runtime has.
        registered: Box<[String]>,
        /// The runtime that was searched (shim path and how it was found).
        runtime: Box<str>,
    },
    /// A method's delegate is registered in the runtime but cannot run on this machine: its
    /// backend reported itself unavailable when the method was loaded (the Vulkan delegate
    /// without a Vulkan device or driver).
    ///
    /// ```
    /// use diffulex_edge::pte::PteError;
    /// let e = PteError::BackendUnavailable {
    ///     file: None,
    ///     method: "forward".into(),
    ///     backend: "VulkanBackend".into(),
    /// };
    /// assert!(e.to_string().contains("no Vulkan device"));
    /// ```
    #[error(
        "{}method {} is delegated to backend {}, which is registered but not available on this \
         machine: {}",
        file_prefix(file),
        shown(method),
        shown(backend),
        unavailable_hint(backend)
    )]
    BackendUnavailable {
        /// The program file, if loaded from one.
        file: Option<PathBuf>,
        /// The method.
        method: String,
        /// The backend id in the program, e.g. `VulkanBackend`.
        backend: String,
    },
    /// The program has no method of that name.
    #[error("no method `{method}` in the program (available: {})", available.join(", "))]
    UnknownMethod {
        /// The requested name.
        method: String,
        /// The methods the program has.
        available: Vec<String>,
    },
    /// Wrong number of inputs.
    #[error("method `{method}` takes {expected} input(s), got {got}")]
    InputCount {
        /// The method.
        method: String,
        /// Inputs the method declares.
        expected: usize,
        /// Inputs passed.
        got: usize,
    },
    /// The method declares a non-tensor input, which this API cannot pass.
    #[error("method `{method}` input {index}: expects a {kind:?} value, only tensor inputs are supported")]
    InputKind {
        /// The method.
        method: String,
        /// Input index.
        index: usize,
        /// The declared kind.
        kind: ValueKind,
    },
    /// Input dtype differs from the method's.
    #[error("method `{method}` input {index}: expected dtype {expected}, got {got}")]
    InputDType {
        /// The method.
        method: String,
        /// Input index.
        index: usize,
        /// Declared dtype.
        expected: DType,
        /// Passed dtype.
        got: DType,
    },
    /// Input rank differs from the method's.
    #[error("method `{method}` input {index}: expected rank {expected} (shape {expected_shape:?}), got rank {got}")]
    InputRank {
        /// The method.
        method: String,
        /// Input index.
        index: usize,
        /// Declared rank.
        expected: usize,
        /// Declared shape (upper bounds if dynamic).
        expected_shape: Vec<i64>,
        /// Passed rank.
        got: usize,
    },
    /// A static input's shape differs from the method's.
    #[error("method `{method}` input {index}: expected shape {expected:?}, got {got:?} (dimension {dim} differs; the input is static)")]
    InputShape {
        /// The method.
        method: String,
        /// Input index.
        index: usize,
        /// First differing dimension.
        dim: usize,
        /// Declared shape.
        expected: Vec<i64>,
        /// Passed shape.
        got: Vec<usize>,
    },
    /// A dynamic dimension exceeds its upper bound.
    #[error("method `{method}` input {index}: dimension {dim} is {got}, above its upper bound {bound} (bounds {bounds:?})")]
    DimAboveBound {
        /// The method.
        method: String,
        /// Input index.
        index: usize,
        /// The dimension.
        dim: usize,
        /// Its upper bound.
        bound: i64,
        /// Passed size.
        got: usize,
        /// All upper bounds of the input.
        bounds: Vec<i64>,
    },
    /// The data slice does not hold shape's number of elements.
    #[error("method `{method}` input {index}: shape {shape:?} needs {expected} elements, the data has {got}")]
    InputDataLength {
        /// The method.
        method: String,
        /// Input index.
        index: usize,
        /// Passed shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// Output index out of range.
    #[error("method `{method}` has {len} output(s), no output {index}")]
    OutputIndex {
        /// The method.
        method: String,
        /// Requested index.
        index: usize,
        /// Number of outputs.
        len: usize,
    },
    /// An output was read as the wrong type.
    #[error("method `{method}` output {index}: is {actual}, requested {requested}")]
    OutputDType {
        /// The method.
        method: String,
        /// Output index.
        index: usize,
        /// The type asked for.
        requested: DType,
        /// The output's dtype.
        actual: DType,
    },
    /// An output cannot be viewed as a typed slice (list values, bad alignment, invalid bools).
    #[error("method `{method}` output {index}: {reason}")]
    OutputUnsupported {
        /// The method.
        method: String,
        /// Output index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The program passed ExecuTorch's structural verification but is internally
    /// inconsistent (an index out of range, a value of the wrong type, an XNNPACK delegate
    /// payload whose graph does not match its data), which would crash the runtime when the
    /// method is loaded or run. Found by the checks of `PteModule::load`.
    #[error(
        "{}corrupt program{}: {detail}; the file is corrupt or was not produced by a compatible exporter (ExecuTorch 1.5)",
        file_prefix(file),
        method.as_ref().map(|m| format!(", method `{m}`")).unwrap_or_default()
    )]
    CorruptProgram {
        /// The program file, if loaded from one.
        file: Option<PathBuf>,
        /// The method (execution plan) with the defect, if it is inside one.
        method: Option<String>,
        /// Index of the defective instruction, if the defect is in one.
        instruction: Option<usize>,
        /// Where the defect is and what is wrong, e.g. `chain 0 instruction 3: operator
        /// index 514 is out of range (the method has 3 operators)` or `delegate 0
        /// (XnnpackBackend) payload value 4: dims [8196, 16] need 524544 bytes, constant 3
        /// holds 256`.
        detail: String,
    },
    /// A constant-method helper found something other than the expected constant.
    #[error("method `{method}` is not a usable constant: {reason}")]
    Constant {
        /// The method.
        method: String,
        /// Why.
        reason: String,
    },
}

impl PteError {
    /// The ExecuTorch error code, for runtime errors; [`PteError::CorruptProgram`] reports
    /// [`ErrorCode::InvalidProgram`], the code ExecuTorch itself uses for malformed programs.
    ///
    /// ```
    /// use diffulex_edge::pte::PteModule;
    /// let err = PteModule::from_bytes(b"not a program".to_vec()).unwrap_err();
    /// assert!(err.code().is_some());
    /// ```
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            PteError::Runtime { code, .. } => Some(*code),
            PteError::CorruptProgram { .. } => Some(ErrorCode::InvalidProgram),
            PteError::MissingOperator { .. } => Some(ErrorCode::OperatorMissing),
            PteError::MissingBackend { .. } => Some(ErrorCode::NotFound),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for (raw, code) in CODES {
            assert_eq!(ErrorCode::from_code(raw), code);
            assert_eq!(code.code(), raw);
            assert!(code.to_string().contains(&format!("0x{raw:02x}")));
        }
        for raw in [0u32, 0x05, 0x17, 0x26, 0x33, 0xffff] {
            assert_eq!(ErrorCode::from_code(raw), ErrorCode::Unknown(raw));
            assert_eq!(ErrorCode::Unknown(raw).code(), raw);
        }
    }

    #[test]
    fn codes_match_the_shim_bindings() {
        // DLX_OK is the success status; everything else passes through unchanged.
        assert_eq!(executorch_sys::DLX_OK, 0);
    }
}
