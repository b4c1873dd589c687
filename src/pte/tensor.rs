//! Input tensors (borrowed) and owned copies of outputs.

use half::{bf16, f16};

use super::dtype::{DType, Element};

/// Borrowed typed data of an input tensor.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    I16(&'a [i16]),
    I8(&'a [i8]),
    U8(&'a [u8]),
    Bool(&'a [bool]),
}

impl TensorData<'_> {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(d) => d.len(),
            TensorData::F64(d) => d.len(),
            TensorData::F16(d) => d.len(),
            TensorData::BF16(d) => d.len(),
            TensorData::I64(d) => d.len(),
            TensorData::I32(d) => d.len(),
            TensorData::I16(d) => d.len(),
            TensorData::I8(d) => d.len(),
            TensorData::U8(d) => d.len(),
            TensorData::Bool(d) => d.len(),
        }
    }

    fn as_ptr(&self) -> *const std::ffi::c_void {
        match self {
            TensorData::F32(d) => d.as_ptr().cast(),
            TensorData::F64(d) => d.as_ptr().cast(),
            TensorData::F16(d) => d.as_ptr().cast(),
            TensorData::BF16(d) => d.as_ptr().cast(),
            TensorData::I64(d) => d.as_ptr().cast(),
            TensorData::I32(d) => d.as_ptr().cast(),
            TensorData::I16(d) => d.as_ptr().cast(),
            TensorData::I8(d) => d.as_ptr().cast(),
            TensorData::U8(d) => d.as_ptr().cast(),
            TensorData::Bool(d) => d.as_ptr().cast(),
        }
    }
}

/// A borrowed, contiguous (row-major) input tensor: a typed slice plus a shape.
///
/// Construction never fails; [`PteModule::execute`](super::PteModule::execute) checks that the
/// slice holds exactly the shape's number of elements and that dtype and shape fit the method.
///
/// ```
/// use diffulex_edge::pte::{DType, Tensor};
/// let tokens = [1i64, 2, 3];
/// let t = Tensor::i64(&tokens, &[1, 3]);
/// assert_eq!(t.dtype(), DType::I64);
/// assert_eq!(t.shape(), &[1, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Tensor<'a> {
    data: TensorData<'a>,
    dtype: DType,
    shape: Vec<usize>,
}

impl<'a> Tensor<'a> {
    /// A tensor of any supported element type.
    ///
    /// ```
    /// use diffulex_edge::pte::Tensor;
    /// let data = [0.5f32; 6];
    /// assert_eq!(Tensor::new(&data, &[2, 3]).len(), 6);
    /// ```
    pub fn new<T: Element>(data: &'a [T], shape: &[usize]) -> Self {
        Tensor {
            data: T::borrow(data),
            dtype: T::DTYPE,
            shape: shape.to_vec(),
        }
    }

    /// A `float32` tensor.
    ///
    /// ```
    /// use diffulex_edge::pte::Tensor;
    /// let x = Tensor::f32(&[1.0, 2.0], &[2]);
    /// assert_eq!(x.shape(), &[2]);
    /// ```
    pub fn f32(data: &'a [f32], shape: &[usize]) -> Self {
        Self::new(data, shape)
    }

    /// A `float16` tensor.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, Tensor};
    /// let d = [half::f16::from_f32(1.5)];
    /// assert_eq!(Tensor::f16(&d, &[1]).dtype(), DType::F16);
    /// ```
    pub fn f16(data: &'a [f16], shape: &[usize]) -> Self {
        Self::new(data, shape)
    }

    /// A `bfloat16` tensor.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, Tensor};
    /// let d = [half::bf16::from_f32(1.5)];
    /// assert_eq!(Tensor::bf16(&d, &[1]).dtype(), DType::BF16);
    /// ```
    pub fn bf16(data: &'a [bf16], shape: &[usize]) -> Self {
        Self::new(data, shape)
    }

    /// An `int64` tensor (token ids, positions).
    ///
    /// ```
    /// use diffulex_edge::pte::Tensor;
    /// let pos = [4i64];
    /// assert_eq!(Tensor::i64(&pos, &[1]).len(), 1);
    /// ```
    pub fn i64(data: &'a [i64], shape: &[usize]) -> Self {
        Self::new(data, shape)
    }

    /// An `int32` tensor.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, Tensor};
    /// assert_eq!(Tensor::i32(&[1, 2], &[2]).dtype(), DType::I32);
    /// ```
    pub fn i32(data: &'a [i32], shape: &[usize]) -> Self {
        Self::new(data, shape)
    }

    /// A `bool` tensor.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, Tensor};
    /// assert_eq!(Tensor::bool(&[true, false], &[2]).dtype(), DType::Bool);
    /// ```
    pub fn bool(data: &'a [bool], shape: &[usize]) -> Self {
        Self::new(data, shape)
    }

    /// The element type.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, Tensor};
    /// assert_eq!(Tensor::f32(&[0.0], &[1]).dtype(), DType::F32);
    /// ```
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    ///
    /// ```
    /// use diffulex_edge::pte::Tensor;
    /// assert_eq!(Tensor::f32(&[0.0; 4], &[2, 2]).shape(), &[2, 2]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements in the data slice (not necessarily the shape's product; execute checks).
    ///
    /// ```
    /// use diffulex_edge::pte::Tensor;
    /// assert_eq!(Tensor::f32(&[0.0; 4], &[2, 2]).len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the data slice is empty.
    ///
    /// ```
    /// use diffulex_edge::pte::Tensor;
    /// assert!(Tensor::f32(&[], &[0]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn data_ptr(&self) -> *const std::ffi::c_void {
        self.data.as_ptr()
    }
}

/// Owned typed data of an [`OwnedTensor`].
///
/// ```
/// use diffulex_edge::pte::OwnedData;
/// let d = OwnedData::I64(vec![1, 2]);
/// assert!(matches!(d, OwnedData::I64(ref v) if v.len() == 2));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum OwnedData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

/// An owned copy of an output tensor, independent of the module (see
/// [`Output::to_owned`](super::Output::to_owned)).
///
/// ```
/// use diffulex_edge::pte::{DType, OwnedTensor};
/// let t = OwnedTensor::new(vec![1.0f32, 2.0], vec![2]);
/// assert_eq!(t.dtype(), DType::F32);
/// assert_eq!(t.as_slice::<f32>(), Some(&[1.0, 2.0][..]));
/// assert_eq!(t.to_f64_vec(), vec![1.0, 2.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    dtype: DType,
    shape: Vec<usize>,
    data: OwnedData,
}

impl OwnedTensor {
    /// Wraps a vector and a shape.
    ///
    /// ```
    /// use diffulex_edge::pte::OwnedTensor;
    /// assert_eq!(OwnedTensor::new(vec![1i64], vec![]).shape(), &[] as &[usize]);
    /// ```
    pub fn new<T: Element>(data: Vec<T>, shape: Vec<usize>) -> Self {
        OwnedTensor {
            dtype: T::DTYPE,
            shape,
            data: T::own(data),
        }
    }

    /// The element type.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, OwnedTensor};
    /// assert_eq!(OwnedTensor::new(vec![true], vec![1]).dtype(), DType::Bool);
    /// ```
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    ///
    /// ```
    /// use diffulex_edge::pte::OwnedTensor;
    /// assert_eq!(OwnedTensor::new(vec![0i32; 6], vec![2, 3]).shape(), &[2, 3]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The data.
    ///
    /// ```
    /// use diffulex_edge::pte::{OwnedData, OwnedTensor};
    /// assert_eq!(OwnedTensor::new(vec![3i64], vec![1]).data(), &OwnedData::I64(vec![3]));
    /// ```
    pub fn data(&self) -> &OwnedData {
        &self.data
    }

    /// The data as `&[T]` if `T` is the tensor's element type.
    ///
    /// ```
    /// use diffulex_edge::pte::OwnedTensor;
    /// let t = OwnedTensor::new(vec![1i32, 2], vec![2]);
    /// assert_eq!(t.as_slice::<i32>(), Some(&[1, 2][..]));
    /// assert_eq!(t.as_slice::<f32>(), None);
    /// ```
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::view(&self.data)
    }

    /// Every element converted to `f64` (bool as 0/1), for printing and comparisons.
    ///
    /// ```
    /// use diffulex_edge::pte::OwnedTensor;
    /// assert_eq!(OwnedTensor::new(vec![true, false], vec![2]).to_f64_vec(), [1.0, 0.0]);
    /// ```
    pub fn to_f64_vec(&self) -> Vec<f64> {
        fn conv<T: Element>(v: &[T]) -> Vec<f64> {
            v.iter().map(|x| x.to_f64()).collect()
        }
        match &self.data {
            OwnedData::F32(v) => conv(v),
            OwnedData::F64(v) => conv(v),
            OwnedData::F16(v) => conv(v),
            OwnedData::BF16(v) => conv(v),
            OwnedData::I64(v) => conv(v),
            OwnedData::I32(v) => conv(v),
            OwnedData::I16(v) => conv(v),
            OwnedData::I8(v) => conv(v),
            OwnedData::U8(v) => conv(v),
            OwnedData::Bool(v) => conv(v),
        }
    }

    /// Borrows this tensor as an input for another call.
    ///
    /// ```
    /// use diffulex_edge::pte::{DType, OwnedTensor};
    /// let t = OwnedTensor::new(vec![1.0f32; 4], vec![2, 2]);
    /// let input = t.as_tensor();
    /// assert_eq!((input.dtype(), input.shape()), (DType::F32, &[2usize, 2][..]));
    /// ```
    pub fn as_tensor(&self) -> Tensor<'_> {
        let data = match &self.data {
            OwnedData::F32(v) => TensorData::F32(v),
            OwnedData::F64(v) => TensorData::F64(v),
            OwnedData::F16(v) => TensorData::F16(v),
            OwnedData::BF16(v) => TensorData::BF16(v),
            OwnedData::I64(v) => TensorData::I64(v),
            OwnedData::I32(v) => TensorData::I32(v),
            OwnedData::I16(v) => TensorData::I16(v),
            OwnedData::I8(v) => TensorData::I8(v),
            OwnedData::U8(v) => TensorData::U8(v),
            OwnedData::Bool(v) => TensorData::Bool(v),
        };
        Tensor {
            data,
            dtype: self.dtype,
            shape: self.shape.clone(),
        }
    }
}
