//! [`DiffusionModel`] over an ExecuTorch `.pte` (docs/pte-contract.md).

use super::error::{EngineError, Result};
use super::model::{DiffusionModel, Family, LogitsView, ModelMetadata};
use crate::pte::{PteError, PteModule, Tensor};
use std::path::Path;

/// The contract version this engine implements.
///
/// ```
/// assert_eq!(diffulex_edge::runtime::pte_model::CONTRACT_VERSION, 1);
/// ```
pub const CONTRACT_VERSION: i64 = 1;

/// A `.pte` diffusion LM: reads the constant methods once, then runs `forward` with the logits
/// returned zero-copy.
///
/// ```
/// use diffulex_edge::runtime::{DiffusionModel, Family, PteModel};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_cached.pte");
/// let mut m = PteModel::load(path).unwrap();
/// assert_eq!(m.metadata().family, Family::Sdar);
/// let logits = m.forward(&[5, 6, 7, 8], Some(0)).unwrap();
/// assert_eq!(logits.rows(), 4);
/// ```
pub struct PteModel {
    module: PteModule,
    meta: ModelMetadata,
}

impl std::fmt::Debug for PteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PteModel")
            .field("path", &self.module.path())
            .field("meta", &self.meta)
            .finish()
    }
}

fn pte(context: impl Into<String>) -> impl FnOnce(PteError) -> EngineError {
    let context = context.into();
    move |source| EngineError::Pte { context, source }
}

fn usize_of(module: &mut PteModule, method: &str) -> Result<usize> {
    let v = module.constant_i64(method).map_err(pte(method))?;
    usize::try_from(v)
        .map_err(|_| EngineError::Metadata(format!("{method} returned {v}, expected >= 0")))
}

impl PteModel {
    /// Memory-maps and validates a `.pte`.
    ///
    /// ```
    /// let bad = diffulex_edge::runtime::PteModel::load("/no/such.pte");
    /// assert!(bad.is_err());
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let module = PteModule::load(path).map_err(pte(format!("loading {}", path.display())))?;
        Self::from_module(module)
    }

    /// Wraps an already loaded module, reading its constant methods.
    ///
    /// ```
    /// use diffulex_edge::{pte::PteModule, runtime::PteModel};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/dream.pte");
    /// let m = PteModel::from_module(PteModule::load(path).unwrap()).unwrap();
    /// assert!(m.module().file_size() > 0);
    /// ```
    pub fn from_module(mut module: PteModule) -> Result<Self> {
        if !module.has_method("get_contract_version") {
            let what = module
                .path()
                .map_or("this program".to_string(), |p| p.display().to_string());
            return Err(EngineError::Metadata(format!(
                "{what} is not a DiffuLex model (it has no `get_contract_version` method): \
                 export it with `diffulex-export export` (see docs/pte-contract.md)"
            )));
        }
        let m = &mut module;
        let version = m
            .constant_i64("get_contract_version")
            .map_err(pte("get_contract_version"))?;
        if version != CONTRACT_VERSION {
            return Err(EngineError::Metadata(format!(
                "contract version {version}, this engine implements {CONTRACT_VERSION}"
            )));
        }
        let meta = ModelMetadata {
            family: Family::from_id(
                m.constant_i64("get_family_id")
                    .map_err(pte("get_family_id"))?,
            )?,
            max_seq_len: usize_of(m, "get_max_seq_len")?,
            vocab_size: usize_of(m, "get_vocab_size")?,
            mask_token_id: m
                .constant_i64("get_mask_token_id")
                .map_err(pte("get_mask_token_id"))?,
            eos_ids: m
                .constant_i64_list("get_eos_ids")
                .map_err(pte("get_eos_ids"))?,
            block_size: usize_of(m, "get_block_size")?,
            sub_block_size: usize_of(m, "get_sub_block_size")?,
            use_kv_cache: m
                .constant_bool("use_kv_cache")
                .map_err(pte("use_kv_cache"))?,
            shift_logits: m
                .constant_bool("shift_logits")
                .map_err(pte("shift_logits"))?,
            pad_id: m.constant_i64("get_pad_id").map_err(pte("get_pad_id"))?,
        };
        meta.validate()?;
        Ok(PteModel { module, meta })
    }

    /// The underlying module.
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/llada.pte");
    /// let m = diffulex_edge::runtime::PteModel::load(path).unwrap();
    /// assert!(m.module().has_method("forward"));
    /// ```
    pub fn module(&self) -> &PteModule {
        &self.module
    }
}

impl DiffusionModel for PteModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn forward(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<LogitsView<'_>> {
        let t = tokens.len();
        let start = input_pos.unwrap_or(0);
        if t == 0 || start + t > self.meta.max_seq_len {
            return Err(EngineError::ForwardArgs(format!(
                "{t} tokens at position {start} exceed max_seq_len {}",
                self.meta.max_seq_len
            )));
        }
        let pos = [start as i64];
        let shape = [1, t];
        let outputs = if self.meta.use_kv_cache {
            self.module.execute(
                "forward",
                &[Tensor::i64(tokens, &shape), Tensor::i64(&pos, &[1])],
            )
        } else {
            if start != 0 {
                return Err(EngineError::ForwardArgs(format!(
                    "uncached model got input_pos {start}"
                )));
            }
            self.module
                .execute("forward", &[Tensor::i64(tokens, &shape)])
        }
        .map_err(pte(format!("forward({t} tokens at {start})")))?;
        let out = outputs.get(0).map_err(pte("forward output 0"))?;
        let vocab = self.meta.vocab_size;
        if out.shape() != [1, t, vocab] {
            return Err(EngineError::LogitsShape {
                got: out.shape().to_vec(),
                tokens: t,
                vocab,
            });
        }
        let data = out.as_f32().map_err(pte("forward output 0 as f32"))?;
        LogitsView::new(data, t, vocab)
    }
}
