//! Input checks done in Rust, so a wrong call gets an error naming the method, the input and
//! what was expected, before the C++ runtime sees it.

use super::error::{PteError, Result};
use super::meta::{Dynamism, MethodMeta, ValueKind};
use super::tensor::Tensor;

/// Checks `inputs` against `meta`: count, kind, dtype, data length, rank, and each dimension
/// against the static size or the upper bound.
pub(crate) fn check_inputs(meta: &MethodMeta, inputs: &[Tensor<'_>]) -> Result<()> {
    let method = || meta.name.clone();
    if inputs.len() != meta.inputs.len() {
        return Err(PteError::InputCount {
            method: method(),
            expected: meta.inputs.len(),
            got: inputs.len(),
        });
    }
    for (index, (info, input)) in meta.inputs.iter().zip(inputs).enumerate() {
        if info.kind != ValueKind::Tensor {
            return Err(PteError::InputKind {
                method: method(),
                index,
                kind: info.kind,
            });
        }
        if input.dtype() != info.dtype {
            return Err(PteError::InputDType {
                method: method(),
                index,
                expected: info.dtype,
                got: input.dtype(),
            });
        }
        let shape = input.shape();
        let expected_len = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected_len != Some(input.len()) {
            return Err(PteError::InputDataLength {
                method: method(),
                index,
                shape: shape.to_vec(),
                expected: expected_len.unwrap_or(usize::MAX),
                got: input.len(),
            });
        }
        if shape.len() != info.shape.len() {
            return Err(PteError::InputRank {
                method: method(),
                index,
                expected: info.shape.len(),
                expected_shape: info.shape.clone(),
                got: shape.len(),
            });
        }
        for (dim, (&want, &got)) in info.shape.iter().zip(shape).enumerate() {
            let got_i64 = i64::try_from(got).unwrap_or(i64::MAX);
            match info.dynamism {
                Dynamism::Static if got_i64 != want => {
                    return Err(PteError::InputShape {
                        method: method(),
                        index,
                        dim,
                        expected: info.shape.clone(),
                        got: shape.to_vec(),
                    });
                }
                Dynamism::Bounded if got_i64 > want => {
                    return Err(PteError::DimAboveBound {
                        method: method(),
                        index,
                        dim,
                        bound: want,
                        got,
                        bounds: info.shape.clone(),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pte::{DType, TensorInfo};

    fn meta(dynamism: Dynamism) -> MethodMeta {
        MethodMeta {
            name: "forward".into(),
            inputs: vec![TensorInfo {
                dtype: DType::I64,
                shape: vec![1, 8],
                dynamic: dynamism != Dynamism::Static,
                kind: ValueKind::Tensor,
                dynamism,
            }],
            outputs: vec![],
            backends: vec![],
        }
    }

    #[test]
    fn accepts_matching_and_bounded_inputs() {
        let data = [0i64; 8];
        check_inputs(&meta(Dynamism::Static), &[Tensor::i64(&data, &[1, 8])]).unwrap();
        check_inputs(
            &meta(Dynamism::Bounded),
            &[Tensor::i64(&data[..3], &[1, 3])],
        )
        .unwrap();
    }

    #[test]
    fn rejects_each_mismatch_with_context() {
        let data = [0i64; 9];
        let f = [0f32; 8];
        let cases: Vec<(Dynamism, Vec<Tensor<'_>>, &str)> = vec![
            (Dynamism::Static, vec![], "takes 1 input(s), got 0"),
            (
                Dynamism::Static,
                vec![Tensor::f32(&f, &[1, 8])],
                "expected dtype i64, got f32",
            ),
            (
                Dynamism::Static,
                vec![Tensor::i64(&data[..8], &[8])],
                "expected rank 2",
            ),
            (
                Dynamism::Static,
                vec![Tensor::i64(&data[..4], &[1, 4])],
                "expected shape [1, 8], got [1, 4]",
            ),
            (
                Dynamism::Bounded,
                vec![Tensor::i64(&data, &[1, 9])],
                "above its upper bound 8",
            ),
            (
                Dynamism::Static,
                vec![Tensor::i64(&data[..5], &[1, 8])],
                "needs 8 elements, the data has 5",
            ),
        ];
        for (dynamism, inputs, needle) in cases {
            let err = check_inputs(&meta(dynamism), &inputs)
                .unwrap_err()
                .to_string();
            assert!(err.contains("method `forward`"), "{err}");
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }
}
