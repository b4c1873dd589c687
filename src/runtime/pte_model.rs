//! [`DiffusionModel`] over an ExecuTorch `.pte` (docs/pte-contract.md).

mod embedding_table;

use super::error::{EngineError, Result};
use super::model::{
    check_logits_rows, check_rows, DiffusionModel, Family, LogitsView, ModelMetadata,
    SUB_BLOCK_CACHE_MODE,
};
use super::parallel::RowPool;
use crate::pte::{DType, PteError, PteModule, Tensor};
use embedding_table::SharedTable;
use std::path::Path;
use std::sync::Arc;

/// The newest contract version this engine implements. Version 2 is version 1 plus a last
/// `forward` input `rows` (int64 `[R]`) selecting which input rows get logits (`[1, R, V]`),
/// so a step skips the output layer of the rows it does not read. Version 3 adds a last
/// `forward` input `kv_end` (int64 `[1]`), the end of the cache slots the queries read, to the
/// cached programs that need it: LLaDA and Dream (Fast-dLLM's prefix and dual caches) and
/// Fast-dLLM v2 (its sub-block cache); `get_cache_modes` says which caches the file supports
/// (other programs are as in version 2). Version 4 is version 3 with embeddings `[1, T, D]` for
/// token ids as `forward`'s first input: the program has no embedding table of its own, and the
/// engine gathers the rows from the lm_head's quantized weights in its named data (a tied
/// checkpoint's one matrix, stored once).
///
/// ```
/// assert_eq!(diffulex_edge::runtime::CONTRACT_VERSION, 4);
/// ```
pub const CONTRACT_VERSION: i64 = 4;

/// `get_cache_modes` of a contract-3 LLaDA or Dream program: bit 0 the prefix cache, bit 1 the
/// dual cache. One program serves both, so every such file has both.
const CACHE_MODES_PREFIX_AND_DUAL: i64 = 0b11;

/// The oldest contract version this engine still reads (every row gets logits).
///
/// ```
/// assert_eq!(diffulex_edge::runtime::MIN_CONTRACT_VERSION, 1);
/// ```
pub const MIN_CONTRACT_VERSION: i64 = 1;

/// Accepts the contract versions this engine implements.
pub(crate) fn check_contract_version(version: i64) -> Result<()> {
    if (MIN_CONTRACT_VERSION..=CONTRACT_VERSION).contains(&version) {
        return Ok(());
    }
    Err(EngineError::Metadata(format!(
        "contract version {version}, this engine implements versions \
         {MIN_CONTRACT_VERSION} to {CONTRACT_VERSION}: re-export the model with this \
         release's `diffulex-export`, or use an engine that implements {version}"
    )))
}

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
    /// `get_tokenizer_digest` (optional): SHA-256 of the vocabulary of the exported tokenizer.
    tokenizer_digest: Option<[u8; 32]>,
    /// `get_weights_digest` (optional): SHA-256 of the weight segments at export.
    weights_digest: Option<[u8; 32]>,
    /// Contract 2: `forward` takes the rows to compute logits for.
    selects_rows: bool,
    /// The upper bound of `forward`'s `rows` input (contract 2): the rows of logits the program
    /// has memory for (`--max-logits-rows`); `max_seq_len` for contract 1.
    max_logits_rows: usize,
    /// The `rows` input of the last forward, as the program takes it.
    rows_input: Vec<i64>,
    /// Contract 4: the embedding table the engine gathers from (the lm_head's weights).
    shared_table: Option<SharedTable>,
    /// The embeddings input of the last forward (contract 4).
    embeddings: Vec<f32>,
}

/// Checks a contract-3 program's `get_cache_modes` against its cache and returns whether it
/// has Fast-dLLM v2's sub-block cache: a cached LLaDA or Dream program needs version 3 and both
/// modes; a cached Fast-dLLM v2 program of version 3 has the sub-block cache (older ones have
/// none and keep loading); other programs may not claim any.
fn check_cache_modes(module: &mut PteModule, meta: &ModelMetadata, version: i64) -> Result<bool> {
    let modes = if module.has_method("get_cache_modes") {
        Some(
            module
                .constant_i64("get_cache_modes")
                .map_err(pte("get_cache_modes"))?,
        )
    } else {
        None
    };
    let fast_dllm_cached = meta.family == Family::FastDllmV2 && meta.use_kv_cache;
    if fast_dllm_cached && version >= 3 {
        return match modes {
            Some(SUB_BLOCK_CACHE_MODE) => Ok(true),
            other => Err(EngineError::Metadata(format!(
                "get_cache_modes = {other:?}, a cached fast_dllm_v2 program of contract 3 has \
                 the sub-block cache ({SUB_BLOCK_CACHE_MODE}): re-export it"
            ))),
        };
    }
    match (meta.has_bidirectional_cache(), version >= 3, modes) {
        (true, true, Some(CACHE_MODES_PREFIX_AND_DUAL)) | (false, _, None | Some(0)) => Ok(false),
        (true, false, _) => Err(EngineError::Metadata(format!(
            "a {} program with use_kv_cache = true needs contract version 3 (its forward takes \
             kv_end), this one is version {version}: re-export it with this release's \
             `diffulex-export export --kv-cache`",
            meta.family
        ))),
        (true, true, other) => Err(EngineError::Metadata(format!(
            "get_cache_modes = {other:?}, a cached {} program (contract 3) supports both the \
             prefix and the dual cache ({CACHE_MODES_PREFIX_AND_DUAL}): re-export it",
            meta.family
        ))),
        (false, _, Some(other)) => Err(EngineError::Metadata(format!(
            "get_cache_modes = {other} on a program without a cache that reads past its \
             tokens (family {}, use_kv_cache = {}, contract {version}): only cached contract-3 \
             llada, dream and fast_dllm_v2 programs have one",
            meta.family, meta.use_kv_cache
        ))),
    }
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
    move |source| EngineError::model("ExecuTorch", context, source)
}

fn usize_of(module: &mut PteModule, method: &str) -> Result<usize> {
    let v = module.constant_i64(method).map_err(pte(method))?;
    usize::try_from(v)
        .map_err(|_| EngineError::Metadata(format!("{method} returned {v}, expected >= 0")))
}

/// The upper bound of `forward`'s `rows` input (contract 2 and later), which ExecuTorch
/// serializes as the input's shape: the rows of logits the program planned memory for.
/// `rows` follows the tokens (or embeddings) and, in a cached program, `input_pos`.
fn rows_bound(module: &PteModule, meta: &ModelMetadata) -> Result<usize> {
    let forward = module
        .method_meta("forward")
        .map_err(pte("forward's metadata"))?;
    let index = 1 + usize::from(meta.use_kv_cache);
    let rows = forward.inputs.get(index).ok_or_else(|| {
        EngineError::Metadata(format!(
            "forward takes {} inputs; a program that selects logits rows (contract 2 and later) \
             takes `rows` as input {index}",
            forward.inputs.len()
        ))
    })?;
    match (rows.dtype, &rows.shape[..]) {
        (DType::I64, &[bound]) if bound >= 1 => {
            // No forward has more rows than max_seq_len tokens, whatever the file declares.
            Ok(usize::try_from(bound).map_or(meta.max_seq_len, |b| b.min(meta.max_seq_len)))
        }
        _ => Err(EngineError::Metadata(format!(
            "forward's input {index} is {rows}, expected `rows` as int64 [R] with R >= 1: the \
             file is damaged or was not written by `diffulex-export`"
        ))),
    }
}

/// Options of [`PteModel::load_with`].
///
/// ```
/// assert!(!diffulex_edge::runtime::LoadOptions::default().verify_weights);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Hash the weight segments and compare them with `get_weights_digest` (one read of the
    /// file; off by default). A file without the digest is then an error.
    pub verify_weights: bool,
}

impl LoadOptions {
    /// Sets [`LoadOptions::verify_weights`].
    ///
    /// ```
    /// use diffulex_edge::runtime::LoadOptions;
    /// assert!(LoadOptions::default().with_verify_weights(true).verify_weights);
    /// ```
    pub fn with_verify_weights(mut self, verify: bool) -> Self {
        self.verify_weights = verify;
        self
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads an optional 256-bit digest method: four `Int`s, the digest's bytes as big-endian
/// 64-bit words (docs/pte-contract.md). `None` when the program has no such method.
pub(crate) fn read_digest(module: &mut PteModule, method: &str) -> Result<Option<[u8; 32]>> {
    if !module.has_method(method) {
        return Ok(None);
    }
    let words = module.constant_i64_list(method).map_err(pte(method))?;
    if words.len() != 4 {
        return Err(EngineError::Metadata(format!(
            "{method} returned {} values, expected 4 (a SHA-256 as four int64 words)",
            words.len()
        )));
    }
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(8).zip(&words) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    Ok(Some(out))
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
        let module = PteModule::load(path).map_err(pte(format!("loading {path:?}")))?;
        Self::from_module(module)
    }

    /// Reads the whole `.pte` into memory ([`PteModule::load_copy`]) instead of mapping it:
    /// for files that may be overwritten in place while the model is in use (no SIGBUS), at
    /// the cost of the file's size in RAM.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, Family, PteModel};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/dream.pte");
    /// assert_eq!(PteModel::load_copy(path).unwrap().metadata().family, Family::Dream);
    /// ```
    pub fn load_copy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let module =
            PteModule::load_copy(path).map_err(pte(format!("loading {path:?} into memory")))?;
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
                .map_or("this program".to_string(), |p| format!("{p:?}"));
            return Err(EngineError::Metadata(format!(
                "{what} is not a DiffuLex model (it has no `get_contract_version` method): \
                 export it with `diffulex-export export` (see docs/pte-contract.md)"
            )));
        }
        let m = &mut module;
        let version = m
            .constant_i64("get_contract_version")
            .map_err(pte("get_contract_version"))?;
        check_contract_version(version)?;
        let mut meta = ModelMetadata {
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
            sub_block_cache: false,
        };
        meta.sub_block_cache = check_cache_modes(m, &meta, version)?;
        meta.validate()?;
        let shared_table = if version >= 4 {
            Some(SharedTable::read(m, meta.vocab_size)?)
        } else if m.has_method("get_embedding_layout") {
            return Err(EngineError::Metadata(format!(
                "get_embedding_layout on a contract-{version} program: only contract 4 reads its \
                 embeddings from a shared table"
            )));
        } else {
            None
        };
        let max_logits_rows = if version >= 2 {
            rows_bound(&module, &meta)?
        } else {
            meta.max_seq_len
        };
        let tokenizer_digest = read_digest(&mut module, "get_tokenizer_digest")?;
        let weights_digest = read_digest(&mut module, "get_weights_digest")?;
        // A program without a KV cache has no state between forwards, so a forward whose
        // delegate threw can simply run again on a freshly loaded method.
        module.retry_after_reset(!meta.use_kv_cache);
        Ok(PteModel {
            module,
            meta,
            tokenizer_digest,
            weights_digest,
            selects_rows: version >= 2,
            max_logits_rows,
            rows_input: Vec::new(),
            shared_table,
            embeddings: Vec::new(),
        })
    }

    /// A file the export embedded in the program (`diffulex-export --embed-tokenizer`:
    /// `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`), read when asked for;
    /// `None` when the file has none by that name.
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_cached.pte");
    /// let m = diffulex_edge::runtime::PteModel::load(path).unwrap();
    /// assert!(m.embedded_file("tokenizer.json").unwrap().is_none());
    /// ```
    pub fn embedded_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.module
            .embedded_file(name)
            .map_err(pte(format!("reading the embedded {name}")))
    }

    /// The SHA-256 of the exported tokenizer's vocabulary (`get_tokenizer_digest`), or `None`
    /// for files exported before it existed. Check a tokenizer against it with
    /// [`TextTokenizer::check_model`](crate::text::TextTokenizer::check_model).
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/model.pte");
    /// let m = diffulex_edge::runtime::PteModel::load(path).unwrap();
    /// assert!(m.tokenizer_digest().is_none()); // exported before the digest existed
    /// ```
    pub fn tokenizer_digest(&self) -> Option<&[u8; 32]> {
        self.tokenizer_digest.as_ref()
    }

    /// The SHA-256 of the weight segments recorded at export (`get_weights_digest`), or `None`
    /// for files exported before it existed.
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/dream.pte");
    /// assert!(diffulex_edge::runtime::PteModel::load(path).unwrap().weights_digest().is_some());
    /// ```
    pub fn weights_digest(&self) -> Option<&[u8; 32]> {
        self.weights_digest.as_ref()
    }

    /// Hashes the weight segments (reading the file again, or the module's own copy for
    /// [`PteModule::from_bytes`]) and compares the digest with the one recorded at export.
    /// Returns what was hashed; [`EngineError::WeightsCorrupt`] if they differ,
    /// [`EngineError::NoWeightsDigest`] if the file records none. Costs one read of the file
    /// and SHA-256 over it (measured in BENCHMARKS.md, "Weight verification").
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/dream.pte");
    /// let m = diffulex_edge::runtime::PteModel::load(path).unwrap();
    /// let d = m.verify_weights().unwrap();
    /// assert_eq!(&d.sha256, m.weights_digest().unwrap());
    /// ```
    pub fn verify_weights(&self) -> Result<crate::pte::SegmentsDigest> {
        let file = self
            .module
            .path()
            .map_or("<memory>".to_string(), |p| p.display().to_string());
        let Some(recorded) = self.weights_digest else {
            return Err(EngineError::NoWeightsDigest { file });
        };
        let got = self
            .module
            .weights_digest()
            .map_err(pte("hashing the weight segments"))?;
        if got.sha256 != recorded {
            return Err(EngineError::WeightsCorrupt {
                file,
                bytes: got.bytes,
                recorded: hex(&recorded),
                computed: got.hex(),
            });
        }
        Ok(got)
    }

    /// Loads with options: [`LoadOptions::verify_weights`] checks the weight segments against
    /// the digest recorded at export before the model is returned.
    ///
    /// ```
    /// use diffulex_edge::runtime::{LoadOptions, PteModel};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/llada.pte");
    /// let opts = LoadOptions::default().with_verify_weights(true);
    /// assert!(PteModel::load_with(path, &opts).is_ok());
    /// let old = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/model.pte");
    /// assert!(PteModel::load_with(old, &opts).is_err()); // records no digest
    /// ```
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let model = Self::load(path)?;
        if options.verify_weights {
            model.verify_weights()?;
        }
        Ok(model)
    }

    /// Whether `forward` computes logits only for the rows a step reads (contract 2).
    ///
    /// ```
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_cached.pte");
    /// assert!(!diffulex_edge::runtime::PteModel::load(path).unwrap().selects_rows());
    /// ```
    pub fn selects_rows(&self) -> bool {
        self.selects_rows
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

impl PteModel {
    /// Checks a forward's arguments; returns the start position.
    fn check_args(&self, t: usize, input_pos: Option<usize>) -> Result<usize> {
        let start = input_pos.unwrap_or(0);
        // Checked: `input_pos` comes from the caller; a wrapped sum would pass the bound.
        if t == 0
            || start
                .checked_add(t)
                .is_none_or(|end| end > self.meta.max_seq_len)
        {
            return Err(EngineError::ForwardArgs(format!(
                "{t} tokens at position {start} exceed max_seq_len {}",
                self.meta.max_seq_len
            )));
        }
        if !self.meta.use_kv_cache && start != 0 {
            return Err(EngineError::ForwardArgs(format!(
                "uncached model got input_pos {start}"
            )));
        }
        Ok(start)
    }

    /// Checks a span forward's `kv_end` (contract 3): the call's end at least, the context at
    /// most.
    fn check_kv_end(&self, t: usize, start: usize, kv_end: usize) -> Result<()> {
        if !self.meta.takes_kv_end() {
            return Err(EngineError::ForwardArgs(format!(
                "forward_span needs a program whose forward takes kv_end (contract 3); this {} \
                 program is not one (export the model with this release's `diffulex-export \
                 export --kv-cache`)",
                self.meta.family
            )));
        }
        // check_args already bounded start + t by max_seq_len.
        if kv_end < start + t || kv_end > self.meta.max_seq_len {
            return Err(EngineError::ForwardArgs(format!(
                "kv_end {kv_end} must lie in [{}, {}] for {t} tokens at position {start}",
                start + t,
                self.meta.max_seq_len
            )));
        }
        Ok(())
    }

    /// Executes `forward`; `rows_input` must already hold the rows (contract 2). A program
    /// of contract 3 also gets `kv_end` (`None`: the call's own end, a full pass).
    /// Returns the float32 logits, checked to be `[1, computed, vocab]`.
    fn execute(
        &mut self,
        tokens: &[i64],
        start: usize,
        kv_end: Option<usize>,
        computed: usize,
    ) -> Result<&[f32]> {
        let t = tokens.len();
        let pos = [start as i64];
        let end = [kv_end.unwrap_or(start + t) as i64];
        let shape = [1, t];
        let rows_shape = [self.rows_input.len()];
        let embeddings_shape;
        let first = match &self.shared_table {
            Some(table) => {
                table.gather(&self.module, tokens, &mut self.embeddings)?;
                embeddings_shape = [1, t, table.hidden()];
                Tensor::f32(&self.embeddings, &embeddings_shape)
            }
            None => Tensor::i64(tokens, &shape),
        };
        let mut inputs = vec![first];
        if self.meta.use_kv_cache {
            inputs.push(Tensor::i64(&pos, &[1]));
        }
        if self.selects_rows {
            inputs.push(Tensor::i64(&self.rows_input, &rows_shape));
        }
        if self.meta.takes_kv_end() {
            inputs.push(Tensor::i64(&end, &[1]));
        }
        let outputs = self
            .module
            .execute("forward", &inputs)
            .map_err(pte(format!("forward({t} tokens at {start})")))?;
        let out = outputs.get(0).map_err(pte("forward output 0"))?;
        let vocab = self.meta.vocab_size;
        if out.shape() != [1, computed, vocab] {
            return Err(EngineError::LogitsShape {
                got: out.shape().to_vec(),
                tokens: computed,
                vocab,
            });
        }
        out.as_f32().map_err(pte("forward output 0 as f32"))
    }
}

impl PteModel {
    /// A row-selecting forward (contract 2 or 3) with checked arguments.
    fn run_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        start: usize,
        kv_end: Option<usize>,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        let t = tokens.len();
        // The program returns at least one row; a forward run only for its KV-cache write asks
        // for the last one and reads none.
        self.rows_input.clear();
        match rows {
            [] => self.rows_input.push(t as i64 - 1),
            _ => self.rows_input.extend(rows.iter().map(|&r| r as i64)),
        }
        let computed = self.rows_input.len();
        check_logits_rows(computed, self.max_logits_rows)?;
        let vocab = self.meta.vocab_size;
        let data = self.execute(tokens, start, kv_end, computed)?;
        LogitsView::selected(&data[..rows.len() * vocab], rows, t, vocab)
    }
}

impl DiffusionModel for PteModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn forward(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<LogitsView<'_>> {
        let t = tokens.len();
        let start = self.check_args(t, input_pos)?;
        if self.selects_rows {
            check_logits_rows(t, self.max_logits_rows)?;
            self.rows_input.clear();
            self.rows_input.extend(0..t as i64);
        }
        let vocab = self.meta.vocab_size;
        let data = self.execute(tokens, start, None, t)?;
        LogitsView::new(data, t, vocab)
    }

    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        let t = tokens.len();
        check_rows(rows, t)?;
        if !self.selects_rows {
            return self.forward(tokens, input_pos);
        }
        let start = self.check_args(t, input_pos)?;
        self.run_rows(tokens, start, None, rows)
    }

    fn forward_span<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: usize,
        kv_end: usize,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        let t = tokens.len();
        check_rows(rows, t)?;
        let start = self.check_args(t, Some(input_pos))?;
        self.check_kv_end(t, start, kv_end)?;
        self.run_rows(tokens, start, Some(kv_end), rows)
    }

    /// The upper bound of `forward`'s `rows` input, which ExecuTorch sized the logits output
    /// for (contract 2 and later; `max_seq_len` for contract 1).
    fn max_logits_rows(&self) -> usize {
        self.max_logits_rows
    }

    /// ExecuTorch's thread pool ([`ExecuTorchPool`]): idle between two forwards, so it scores
    /// the rows of a step.
    fn row_pool(&self) -> Arc<dyn RowPool> {
        Arc::new(ExecuTorchPool)
    }
}

/// ExecuTorch's process-wide thread pool as a [`RowPool`], the calling thread included: the pool
/// [`PteModel`] scores with. Between two `execute` calls its workers are idle (and, right after
/// one, still spinning for work), so rows handed to them start at once. Its size is
/// [`crate::pte::threads::set_thread_count`]'s; with one thread, or a runtime without a pool,
/// the rows run in order on the calling thread. Rows the runtime fails to run are left to the
/// caller (see [`RowPool::run`]).
///
/// ```
/// use diffulex_edge::runtime::{ExecuTorchPool, RowPool};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let sum = AtomicUsize::new(0);
/// ExecuTorchPool.run(100, &|i| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 4950);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecuTorchPool;

impl RowPool for ExecuTorchPool {
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        // An error means the runtime did not run (all of) the tasks; the caller runs the rest.
        let _ = crate::pte::threads::run_on_pool(n, f);
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;

    #[test]
    fn only_the_implemented_contract_versions_are_accepted() {
        assert!((1..=4).all(|v| check_contract_version(v).is_ok()));
        let err = check_contract_version(5).unwrap_err().to_string();
        assert!(
            err.contains("contract version 5") && err.contains("re-export"),
            "{err}"
        );
        assert!(check_contract_version(0).is_err());
    }
}
