//! Element types of tensors, with ExecuTorch's `ScalarType` numbering.

use std::fmt;

use half::{bf16, f16};

use super::tensor::{OwnedData, TensorData};

/// The element type of a tensor.
///
/// ```
/// use diffulex_edge::pte::DType;
/// assert_eq!(DType::F32.size(), 4);
/// assert_eq!(DType::from_scalar_type(15), DType::BF16);
/// assert_eq!(DType::I64.to_string(), "i64");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `uint8` (ScalarType::Byte).
    U8,
    /// `int8` (Char).
    I8,
    /// `int16` (Short).
    I16,
    /// `int32` (Int).
    I32,
    /// `int64` (Long).
    I64,
    /// IEEE half (Half).
    F16,
    /// `float32` (Float).
    F32,
    /// `float64` (Double).
    F64,
    /// `bool`, one byte per element (Bool).
    Bool,
    /// bfloat16 (BFloat16).
    BF16,
    /// Any other ExecuTorch scalar type, by number.
    Other(i32),
}

const TABLE: [(i32, DType, usize, &str); 10] = [
    (0, DType::U8, 1, "u8"),
    (1, DType::I8, 1, "i8"),
    (2, DType::I16, 2, "i16"),
    (3, DType::I32, 4, "i32"),
    (4, DType::I64, 8, "i64"),
    (5, DType::F16, 2, "f16"),
    (6, DType::F32, 4, "f32"),
    (7, DType::F64, 8, "f64"),
    (11, DType::Bool, 1, "bool"),
    (15, DType::BF16, 2, "bf16"),
];

impl DType {
    /// Maps ExecuTorch's `ScalarType` number.
    ///
    /// ```
    /// use diffulex_edge::pte::DType;
    /// assert_eq!(DType::from_scalar_type(6), DType::F32);
    /// assert_eq!(DType::from_scalar_type(9), DType::Other(9));
    /// ```
    pub fn from_scalar_type(code: i32) -> Self {
        TABLE
            .iter()
            .find(|row| row.0 == code)
            .map_or(DType::Other(code), |row| row.1)
    }

    /// ExecuTorch's `ScalarType` number.
    ///
    /// ```
    /// use diffulex_edge::pte::DType;
    /// assert_eq!(DType::I64.scalar_type(), 4);
    /// ```
    pub fn scalar_type(self) -> i32 {
        match self {
            DType::Other(c) => c,
            known => TABLE
                .iter()
                .find(|row| row.1 == known)
                .map_or(-1, |row| row.0),
        }
    }

    /// Bytes per element (0 for [`DType::Other`]).
    ///
    /// ```
    /// use diffulex_edge::pte::DType;
    /// assert_eq!(DType::BF16.size(), 2);
    /// ```
    pub fn size(self) -> usize {
        TABLE
            .iter()
            .find(|row| row.1 == self)
            .map_or(0, |row| row.2)
    }

    /// Short lowercase name (`f32`, `i64`, `bool`, ...).
    ///
    /// ```
    /// use diffulex_edge::pte::DType;
    /// assert_eq!(DType::parse("bf16"), Some(DType::BF16));
    /// assert_eq!(DType::BF16.name(), "bf16");
    /// ```
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|row| row.1 == self)
            .map_or("other", |row| row.3)
    }

    /// Parses a short name as produced by [`DType::name`].
    ///
    /// ```
    /// use diffulex_edge::pte::DType;
    /// assert_eq!(DType::parse("i32"), Some(DType::I32));
    /// assert_eq!(DType::parse("complex"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        TABLE.iter().find(|row| row.3 == name).map(|row| row.1)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::Other(c) => write!(f, "scalar type {c}"),
            known => f.write_str(known.name()),
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust element type with a matching [`DType`]: `f32`, [`half::f16`], [`half::bf16`], `f64`, `i64`,
/// `i32`, `i16`, `i8`, `u8`, `bool`. Sealed; used by the generic tensor constructors and views.
///
/// ```
/// use diffulex_edge::pte::{DType, Element};
/// assert_eq!(<f32 as Element>::DTYPE, DType::F32);
/// assert_eq!(<half::bf16 as Element>::DTYPE, DType::BF16);
/// ```
pub trait Element: Copy + sealed::Sealed + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    #[doc(hidden)]
    fn borrow(data: &[Self]) -> TensorData<'_>;
    #[doc(hidden)]
    fn own(data: Vec<Self>) -> OwnedData;
    #[doc(hidden)]
    fn view(data: &OwnedData) -> Option<&[Self]>;
    #[doc(hidden)]
    fn to_f64(self) -> f64;
}

macro_rules! element {
    ($t:ty, $dtype:ident, $variant:ident, $conv:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
            fn borrow(data: &[Self]) -> TensorData<'_> {
                TensorData::$variant(data)
            }
            fn own(data: Vec<Self>) -> OwnedData {
                OwnedData::$variant(data)
            }
            fn view(data: &OwnedData) -> Option<&[Self]> {
                match data {
                    OwnedData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn to_f64(self) -> f64 {
                let conv: fn($t) -> f64 = $conv;
                conv(self)
            }
        }
    };
}

element!(f32, F32, F32, f64::from);
element!(f64, F64, F64, |v| v);
element!(f16, F16, F16, |v| v.to_f64());
element!(bf16, BF16, BF16, |v| v.to_f64());
element!(i64, I64, I64, |v| v as f64);
element!(i32, I32, I32, f64::from);
element!(i16, I16, I16, f64::from);
element!(i8, I8, I8, f64::from);
element!(u8, U8, U8, f64::from);
element!(bool, Bool, Bool, |v| if v { 1.0 } else { 0.0 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips() {
        for (code, dtype, size, name) in TABLE {
            assert_eq!(DType::from_scalar_type(code), dtype);
            assert_eq!(dtype.scalar_type(), code);
            assert_eq!(dtype.size(), size);
            assert_eq!(DType::parse(name), Some(dtype));
        }
        assert_eq!(DType::Other(12).scalar_type(), 12);
        assert_eq!(DType::Other(12).size(), 0);
    }
}
