//! Helpers for constant methods: methods without inputs that return model metadata
//! (`get_max_seq_len`, `get_eos_ids`, `use_kv_cache`, ...).

use super::dtype::DType;
use super::error::{PteError, Result};
use super::module::PteModule;
use super::output::Output;

fn constant_error(method: &str, reason: impl Into<String>) -> PteError {
    PteError::Constant {
        method: method.to_string(),
        reason: reason.into(),
    }
}

/// Reads a single-element output as f64 (ints, floats and bools).
fn scalar_of(method: &str, out: &Output<'_>) -> Result<f64> {
    if out.numel() != 1 {
        return Err(constant_error(
            method,
            format!("output has shape {:?}, expected one value", out.shape()),
        ));
    }
    let owned = out.to_owned()?;
    Ok(owned.to_f64_vec()[0])
}

fn int_of(method: &str, out: &Output<'_>) -> Result<i64> {
    match out.dtype() {
        DType::I64 => Ok(out.as_i64()?[0]),
        DType::I32 => Ok(i64::from(out.as_i32()?[0])),
        other => Err(constant_error(
            method,
            format!("output is {other}, expected an integer"),
        )),
    }
    .and_then(|v| {
        if out.numel() == 1 {
            Ok(v)
        } else {
            Err(constant_error(method, "expected one value"))
        }
    })
}

impl PteModule {
    /// Names of the methods that take no inputs (constant metadata methods).
    ///
    /// # Errors
    /// As [`PteModule::method_meta`].
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let constants = m.constant_method_names()?;
    /// assert!(constants.contains(&"get_answer".to_string()));
    /// assert!(!constants.contains(&"forward".to_string()));
    /// # Ok(()) }
    /// ```
    pub fn constant_method_names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.method_names()? {
            if self.method_meta(&name)?.inputs.is_empty() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn run_constant(&mut self, method: &str) -> Result<super::output::Outputs<'_>> {
        if !self.method_meta(method)?.inputs.is_empty() {
            return Err(constant_error(method, "it takes inputs"));
        }
        let outputs = self.execute(method, &[])?;
        if outputs.is_empty() {
            return Err(constant_error(method, "it returns nothing"));
        }
        Ok(outputs)
    }

    /// Value of an integer constant method (e.g. `get_max_seq_len`).
    ///
    /// # Errors
    /// [`PteError::Constant`] if the method takes inputs or does not return one integer.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.constant_i64("get_answer")?, 42);
    /// assert!(m.constant_i64("forward").is_err());
    /// # Ok(()) }
    /// ```
    pub fn constant_i64(&mut self, method: &str) -> Result<i64> {
        let outputs = self.run_constant(method)?;
        int_of(method, &outputs.get(0)?)
    }

    /// Value of a list constant (e.g. `get_eos_ids`): one integer per output, or the elements
    /// of a single integer tensor output.
    ///
    /// # Errors
    /// [`PteError::Constant`] if the method takes inputs or returns non-integers.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.constant_i64_list("get_eos_ids")?, [3, 7]);
    /// assert_eq!(m.constant_i64_list("get_answer")?, [42]);
    /// # Ok(()) }
    /// ```
    pub fn constant_i64_list(&mut self, method: &str) -> Result<Vec<i64>> {
        let outputs = self.run_constant(method)?;
        if outputs.len() == 1 {
            let out = outputs.get(0)?;
            return match out.dtype() {
                DType::I64 => Ok(out.as_i64()?.to_vec()),
                DType::I32 => Ok(out.as_i32()?.iter().map(|&v| i64::from(v)).collect()),
                other => Err(constant_error(
                    method,
                    format!("output is {other}, expected integers"),
                )),
            };
        }
        outputs.iter().map(|o| int_of(method, &o?)).collect()
    }

    /// Value of a boolean constant (e.g. `use_kv_cache`); integer 0/1 is accepted too.
    ///
    /// # Errors
    /// [`PteError::Constant`] if the method takes inputs or does not return one bool/integer.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert!(!m.constant_bool("use_kv_cache")?);
    /// # Ok(()) }
    /// ```
    pub fn constant_bool(&mut self, method: &str) -> Result<bool> {
        let outputs = self.run_constant(method)?;
        let out = outputs.get(0)?;
        match out.dtype() {
            DType::Bool | DType::I64 | DType::I32 => Ok(scalar_of(method, &out)? != 0.0),
            other => Err(constant_error(
                method,
                format!("output is {other}, expected a bool"),
            )),
        }
    }

    /// Value of a numeric constant as `f64` (floats and integers).
    ///
    /// # Errors
    /// [`PteError::Constant`] if the method takes inputs or does not return one number.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let mut m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.constant_f64("get_scale")?, 0.5);
    /// assert_eq!(m.constant_f64("get_answer")?, 42.0);
    /// # Ok(()) }
    /// ```
    pub fn constant_f64(&mut self, method: &str) -> Result<f64> {
        let outputs = self.run_constant(method)?;
        let out = outputs.get(0)?;
        if out.dtype() == DType::Bool {
            return Err(constant_error(method, "output is bool, expected a number"));
        }
        scalar_of(method, &out)
    }
}
