//! Zero-copy views of a method's outputs.
//!
//! The runtime writes outputs into the method's planned memory and reuses it on the next call,
//! so the views borrow the module: they live until the next `execute`, and
//! [`Output::to_owned`] copies what must live longer.

use std::marker::PhantomData;

use half::{bf16, f16};

use super::dtype::{DType, Element};
use super::error::{Operation, PteError, Result};
use super::meta::ValueKind;
use super::raw::{RawModule, RawValue};
use super::tensor::OwnedTensor;

/// The outputs of one [`execute`](super::PteModule::execute) call.
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// use diffulex_edge::pte::{PteModule, Tensor};
/// let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
/// let x = [0.0f32; 16];
/// let outputs = m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?;
/// assert_eq!(outputs.len(), 1);
/// assert_eq!(outputs.get(0)?.shape(), &[2, 4]);
/// # Ok(()) }
/// ```
pub struct Outputs<'m> {
    module: &'m RawModule,
    method: String,
    len: usize,
}

impl<'m> Outputs<'m> {
    pub(crate) fn new(module: &'m RawModule, method: String, len: usize) -> Self {
        Outputs {
            module,
            method,
            len,
        }
    }

    /// Number of outputs.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.execute("get_eos_ids", &[])?.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the method returned nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert!(!m.execute("get_answer", &[])?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The method that produced these outputs.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.execute("get_answer", &[])?.method(), "get_answer");
    /// # Ok(()) }
    /// ```
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Output `index`.
    ///
    /// # Errors
    /// [`PteError::OutputIndex`] if out of range.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let out = m.execute("get_answer", &[])?;
    /// assert_eq!(out.get(0)?.as_i64()?, &[42]);
    /// assert!(out.get(1).is_err());
    /// # Ok(()) }
    /// ```
    pub fn get(&self, index: usize) -> Result<Output<'m>> {
        if index >= self.len {
            return Err(PteError::OutputIndex {
                method: self.method.clone(),
                index,
                len: self.len,
            });
        }
        let raw = self.module.output(index).map_err(|e| PteError::Runtime {
            code: e.code,
            operation: Operation::ReadOutput,
            file: None,
            method: Some(self.method.clone()),
            message: e.message,
        })?;
        Ok(Output::new(raw, self.method.clone(), index))
    }

    /// All outputs, in order.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let ids: Vec<i64> = m
    ///     .execute("get_eos_ids", &[])?
    ///     .iter()
    ///     .map(|o| o.and_then(|o| Ok(o.as_i64()?[0])))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(ids, [3, 7]);
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Result<Output<'m>>> + '_ {
        (0..self.len).map(move |i| self.get(i))
    }
}

/// One output: a tensor, or a scalar seen as a 0-dim tensor (`Int` as `i64`, `Double` as `f64`,
/// `Bool` as `bool`). Views borrow the module until its next `execute`.
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// use diffulex_edge::pte::{DType, PteModule, Tensor};
/// let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
/// let x = [1.0f32; 16];
/// let outputs = m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?;
/// let y = outputs.get(0)?;
/// assert_eq!(y.dtype(), DType::F32);
/// let values: &[f32] = y.as_f32()?; // no copy
/// assert_eq!(values.len(), 8);
/// # Ok(()) }
/// ```
///
/// A view cannot be used after the next `execute` (the runtime reuses the memory), so this
/// does not compile; copy with [`Output::to_owned`] instead:
///
/// ```compile_fail
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// # use diffulex_edge::pte::{PteModule, Tensor};
/// # let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
/// let x = [1.0f32; 16];
/// let first = m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?.get(0)?;
/// let view = first.as_f32()?;
/// m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?; // error: `m` is still borrowed
/// println!("{view:?}");
/// # Ok(()) }
/// ```
pub struct Output<'m> {
    raw: RawValue,
    shape: Vec<usize>,
    method: String,
    index: usize,
    _module: PhantomData<&'m RawModule>,
}

impl<'m> Output<'m> {
    fn new(raw: RawValue, method: String, index: usize) -> Self {
        let shape = raw
            .sizes
            .iter()
            .map(|&s| usize::try_from(s).unwrap_or(0))
            .collect();
        Output {
            raw,
            shape,
            method,
            index,
            _module: PhantomData,
        }
    }

    /// Element type.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let out = m.execute("use_kv_cache", &[])?;
    /// assert_eq!(out.get(0)?.dtype(), diffulex_edge::pte::DType::Bool);
    /// # Ok(()) }
    /// ```
    pub fn dtype(&self) -> DType {
        DType::from_scalar_type(self.raw.dtype)
    }

    /// Tensor or scalar kind.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let out = m.execute("get_answer", &[])?;
    /// assert_eq!(out.get(0)?.kind(), diffulex_edge::pte::ValueKind::Int);
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> ValueKind {
        ValueKind::from_tag(self.raw.tag)
    }

    /// Current shape (empty for scalars).
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert!(m.execute("get_scale", &[])?.get(0)?.shape().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements (1 for scalars).
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.execute("get_scale", &[])?.get(0)?.numel(), 1);
    /// # Ok(()) }
    /// ```
    pub fn numel(&self) -> usize {
        // Saturating: the shape comes from the program; a product that does not fit a usize
        // is refused by `as_slice` (it cannot match the bytes the runtime reports).
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// The data as `&[T]`, without copying.
    ///
    /// # Errors
    /// [`PteError::OutputDType`] if `T` is not the output's dtype; [`PteError::OutputUnsupported`]
    /// for list/string outputs, misaligned data or bool bytes other than 0/1.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let out = m.execute("get_scale", &[])?;
    /// assert_eq!(out.get(0)?.as_slice::<f64>()?, &[0.5]);
    /// assert!(out.get(0)?.as_slice::<f32>().is_err());
    /// # Ok(()) }
    /// ```
    pub fn as_slice<T: Element>(&self) -> Result<&'m [T]> {
        let unsupported = |reason: String| PteError::OutputUnsupported {
            method: self.method.clone(),
            index: self.index,
            reason,
        };
        if !self.kind().is_readable() {
            return Err(unsupported(format!(
                "{:?} values cannot be viewed as a slice",
                self.kind()
            )));
        }
        if self.dtype() != T::DTYPE {
            return Err(PteError::OutputDType {
                method: self.method.clone(),
                index: self.index,
                requested: T::DTYPE,
                actual: self.dtype(),
            });
        }
        let numel = self.numel();
        if numel == 0 {
            return Ok(&[]);
        }
        let elem = std::mem::size_of::<T>();
        // Checked: a wrapped `numel * elem` could pass for a small buffer and let the slice
        // below read past it.
        let too_small = numel
            .checked_mul(elem)
            .is_none_or(|need| self.raw.nbytes < need);
        if self.raw.data.is_null() || too_small {
            return Err(unsupported(format!(
                "the runtime reported {} bytes for {numel} elements",
                self.raw.nbytes
            )));
        }
        if !(self.raw.data as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(unsupported(
                "data is not aligned for its element type".into(),
            ));
        }
        if T::DTYPE == DType::Bool {
            // SAFETY: `data` is non-null and holds at least `numel` bytes (checked above) that
            // the module keeps alive for 'm; reading them as u8 is always valid.
            let bytes = unsafe { std::slice::from_raw_parts(self.raw.data, numel) };
            if bytes.iter().any(|&b| b > 1) {
                return Err(unsupported(
                    "bool tensor holds bytes other than 0 and 1".into(),
                ));
            }
        }
        // SAFETY: non-null, aligned for T, at least numel * size_of::<T>() bytes, and of dtype
        // T (checked above; bool bytes validated). The memory belongs to the module's planned
        // buffers or output storage, which are only rewritten by the next `execute`, which needs
        // `&mut PteModule` and therefore cannot happen while this `'m` borrow lives.
        Ok(unsafe { std::slice::from_raw_parts(self.raw.data.cast::<T>(), numel) })
    }

    /// `float32` data, zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # use diffulex_edge::pte::{PteModule, Tensor};
    /// # let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let x = [0.0f32; 16];
    /// let out = m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?;
    /// assert_eq!(out.get(0)?.as_f32()?.len(), 8);
    /// # Ok(()) }
    /// ```
    pub fn as_f32(&self) -> Result<&'m [f32]> {
        self.as_slice()
    }

    /// `float16` data, zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # use diffulex_edge::pte::{PteModule, Tensor};
    /// # let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/dtypes.pte"))?;
    /// let x = [half::f16::from_f32(1.0); 6];
    /// let out = m.execute("half", &[Tensor::f16(&x, &[2, 3])])?;
    /// assert_eq!(out.get(0)?.as_f16()?[0].to_f32(), 3.0);
    /// # Ok(()) }
    /// ```
    pub fn as_f16(&self) -> Result<&'m [f16]> {
        self.as_slice()
    }

    /// `bfloat16` data, zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # use diffulex_edge::pte::{PteModule, Tensor};
    /// # let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/dtypes.pte"))?;
    /// let x = [half::bf16::from_f32(2.0); 6];
    /// let out = m.execute("bfloat16", &[Tensor::bf16(&x, &[2, 3])])?;
    /// assert_eq!(out.get(0)?.as_bf16()?[0].to_f32(), 5.0);
    /// # Ok(()) }
    /// ```
    pub fn as_bf16(&self) -> Result<&'m [bf16]> {
        self.as_slice()
    }

    /// `float64` data (also `Double` scalars), zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.execute("get_scale", &[])?.get(0)?.as_f64()?, &[0.5]);
    /// # Ok(()) }
    /// ```
    pub fn as_f64(&self) -> Result<&'m [f64]> {
        self.as_slice()
    }

    /// `int64` data (also `Int` scalars), zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.execute("get_answer", &[])?.get(0)?.as_i64()?, &[42]);
    /// # Ok(()) }
    /// ```
    pub fn as_i64(&self) -> Result<&'m [i64]> {
        self.as_slice()
    }

    /// `int32` data, zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # use diffulex_edge::pte::{PteModule, Tensor};
    /// # let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/dtypes.pte"))?;
    /// let x = [1i32, 2, 3, 4, 5];
    /// let out = m.execute("int32", &[Tensor::i32(&x, &[5])])?;
    /// assert_eq!(out.get(0)?.as_i32()?, &[4, 7, 10, 13, 16]);
    /// # Ok(()) }
    /// ```
    pub fn as_i32(&self) -> Result<&'m [i32]> {
        self.as_slice()
    }

    /// `bool` data (also `Bool` scalars), zero-copy.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.execute("use_kv_cache", &[])?.get(0)?.as_bool()?, &[false]);
    /// # Ok(()) }
    /// ```
    pub fn as_bool(&self) -> Result<&'m [bool]> {
        self.as_slice()
    }

    /// Copies the output so it outlives the next `execute`.
    ///
    /// # Errors
    /// As [`Output::as_slice`], for outputs that cannot be read.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// # use diffulex_edge::pte::{PteModule, Tensor};
    /// # let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let x = [0.5f32; 16];
    /// let first = m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?.get(0)?.to_owned()?;
    /// let again = m.execute("forward", &[Tensor::f32(&x, &[2, 8])])?.get(0)?.to_owned()?;
    /// assert_eq!(first, again);
    /// # Ok(()) }
    /// ```
    pub fn to_owned(&self) -> Result<OwnedTensor> {
        fn copy<T: Element>(o: &Output<'_>) -> Result<OwnedTensor> {
            Ok(OwnedTensor::new(
                o.as_slice::<T>()?.to_vec(),
                o.shape.clone(),
            ))
        }
        match self.dtype() {
            DType::F32 => copy::<f32>(self),
            DType::F64 => copy::<f64>(self),
            DType::F16 => copy::<f16>(self),
            DType::BF16 => copy::<bf16>(self),
            DType::I64 => copy::<i64>(self),
            DType::I32 => copy::<i32>(self),
            DType::I16 => copy::<i16>(self),
            DType::I8 => copy::<i8>(self),
            DType::U8 => copy::<u8>(self),
            DType::Bool => copy::<bool>(self),
            DType::Other(_) => Err(PteError::OutputUnsupported {
                method: self.method.clone(),
                index: self.index,
                reason: format!("dtype {} has no Rust element type here", self.dtype()),
            }),
        }
    }
}

impl std::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("method", &self.method)
            .field("index", &self.index)
            .field("kind", &self.kind())
            .field("dtype", &self.dtype())
            .field("shape", &self.shape)
            .finish()
    }
}

impl std::fmt::Debug for Outputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("method", &self.method)
            .field("len", &self.len)
            .finish()
    }
}
