//! Method metadata: inputs, outputs and delegate backends.

use serde::Serialize;

use super::dtype::DType;

/// What kind of value an input or output is (ExecuTorch's `Tag`).
///
/// ```
/// use diffulex_edge::pte::ValueKind;
/// assert_eq!(ValueKind::from_tag(1), ValueKind::Tensor);
/// assert_eq!(ValueKind::from_tag(4), ValueKind::Int);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueKind {
    /// No value.
    None,
    /// A tensor.
    Tensor,
    /// A string.
    String,
    /// A `double` scalar (exposed as a 0-dim `f64`).
    Double,
    /// An `int64` scalar (exposed as a 0-dim `i64`).
    Int,
    /// A `bool` scalar (exposed as a 0-dim `bool`).
    Bool,
    /// A list or another tag, by number.
    Other(i32),
}

impl ValueKind {
    /// Maps ExecuTorch's `Tag` number.
    ///
    /// ```
    /// use diffulex_edge::pte::ValueKind;
    /// assert_eq!(ValueKind::from_tag(8), ValueKind::Other(8));
    /// ```
    pub fn from_tag(tag: i32) -> Self {
        match tag {
            0 => ValueKind::None,
            1 => ValueKind::Tensor,
            2 => ValueKind::String,
            3 => ValueKind::Double,
            4 => ValueKind::Int,
            5 => ValueKind::Bool,
            other => ValueKind::Other(other),
        }
    }

    /// Whether values of this kind can be read as a typed slice.
    ///
    /// ```
    /// use diffulex_edge::pte::ValueKind;
    /// assert!(ValueKind::Int.is_readable());
    /// assert!(!ValueKind::String.is_readable());
    /// ```
    pub fn is_readable(self) -> bool {
        matches!(
            self,
            ValueKind::Tensor | ValueKind::Double | ValueKind::Int | ValueKind::Bool
        )
    }
}

/// How a tensor's shape may change between calls (ExecuTorch's `TensorShapeDynamism`).
///
/// ```
/// use diffulex_edge::pte::Dynamism;
/// assert_eq!(Dynamism::from_raw(1), Dynamism::Bounded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dynamism {
    /// Fixed shape.
    Static,
    /// Each dimension may shrink, up to the declared size.
    Bounded,
    /// Any shape.
    Unbounded,
    /// Not a tensor, or unknown.
    NotApplicable,
}

impl Dynamism {
    /// Maps the shim's dynamism number (-1 for non-tensors).
    ///
    /// ```
    /// use diffulex_edge::pte::Dynamism;
    /// assert_eq!(Dynamism::from_raw(-1), Dynamism::NotApplicable);
    /// ```
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Dynamism::Static,
            1 => Dynamism::Bounded,
            2 => Dynamism::Unbounded,
            _ => Dynamism::NotApplicable,
        }
    }
}

/// Type and shape of one method input or output.
///
/// ```
/// use diffulex_edge::pte::{DType, Dynamism, TensorInfo, ValueKind};
/// let info = TensorInfo {
///     dtype: DType::I64,
///     shape: vec![1, 256],
///     dynamic: true,
///     kind: ValueKind::Tensor,
///     dynamism: Dynamism::Bounded,
/// };
/// assert_eq!(info.to_string(), "i64[1, <=256]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    /// Element type (for scalar values: `i64`, `f64` or `bool`).
    pub dtype: DType,
    /// Sizes; for a dynamic tensor these are the upper bounds. Empty for scalars.
    pub shape: Vec<i64>,
    /// Whether the shape may change between calls.
    pub dynamic: bool,
    /// Tensor or scalar kind.
    pub kind: ValueKind,
    /// Detailed dynamism.
    pub dynamism: Dynamism,
}

impl std::fmt::Display for TensorInfo {
    /// `dtype[d0, d1]`, dynamic dimensions shown as `<=bound` (only those above 1, since a
    /// bounded tensor does not say which dimensions vary).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind != ValueKind::Tensor {
            return write!(f, "{} scalar ({:?})", self.dtype, self.kind);
        }
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| {
                if self.dynamic && *d > 1 {
                    format!("<={d}")
                } else {
                    d.to_string()
                }
            })
            .collect();
        write!(f, "{}[{}]", self.dtype, dims.join(", "))
    }
}

impl Serialize for DType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Metadata of one method.
///
/// ```no_run
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// let module = diffulex_edge::pte::PteModule::load("model.pte")?;
/// let meta = module.method_meta("forward")?;
/// println!("{} inputs, backends {:?}", meta.inputs.len(), meta.backends);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodMeta {
    /// Method name.
    pub name: String,
    /// Inputs in order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs in order.
    pub outputs: Vec<TensorInfo>,
    /// Delegate backends the method uses (e.g. `XnnpackBackend`).
    pub backends: Vec<String>,
}
