//! [`PteModule`]: a loaded `.pte` program and its methods.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use executorch_sys as sys;

use super::dtype::DType;
use super::error::{Operation, PteError, Result};
use super::meta::{Dynamism, MethodMeta, TensorInfo, ValueKind};
use super::output::Outputs;
use super::raw::{self, RawError, RawModule};
use super::tensor::Tensor;
use super::validate;
use super::verify::{self, FileSegments, InMemory, Segments};

/// A program copied into memory aligned for any tensor type, for [`PteModule::from_bytes`].
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

struct AlignedBytes {
    chunks: Vec<Chunk>,
    len: usize,
}

impl AlignedBytes {
    fn copy_of(bytes: &[u8]) -> Self {
        let mut chunks = vec![Chunk([0; 64]); bytes.len().div_ceil(64)];
        for (chunk, src) in chunks.iter_mut().zip(bytes.chunks(64)) {
            chunk.0[..src.len()].copy_from_slice(src);
        }
        AlignedBytes {
            chunks,
            len: bytes.len(),
        }
    }

    /// The bytes in 64-byte pieces, the last one cut to the length.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let len = self.len;
        self.chunks
            .iter()
            .enumerate()
            .map(move |(i, c)| &c.0[..len.saturating_sub(i * 64).min(64)])
    }

    fn as_ptr(&self) -> *const u8 {
        self.chunks.as_ptr().cast()
    }
}

/// A loaded ExecuTorch program (`.pte`): list its methods, read their metadata, run them.
///
/// Loading from a file memory-maps it through ExecuTorch's mmap loader, so weights are paged in
/// on demand and never copied; the program is verified (`InternalConsistency`) when loaded.
/// Methods are loaded on first use (metadata or execute); loading a delegated method is where
/// XNNPACK packs its weights. Mutable buffers (e.g. a KV cache) keep their state across
/// `execute` calls of the same module.
///
/// # Threads
/// `PteModule` is [`Send`] but not [`Sync`]. ExecuTorch's `Module` is not thread-safe: running
/// a method writes into its planned memory, and even reading metadata may load a method. So
/// [`execute`](PteModule::execute) takes `&mut self`, and the outputs it returns borrow the
/// module until the next call, because the runtime reuses that memory. To use a model from
/// several threads, load one module per thread or put it behind a `Mutex`.
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<diffulex_edge::pte::PteModule>(); // not Sync
/// ```
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
/// use diffulex_edge::pte::{PteModule, Tensor};
/// let mut module = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
/// assert!(module.has_method("forward"));
/// let x = vec![0.25f32; 16];
/// let outputs = module.execute("forward", &[Tensor::f32(&x, &[2, 8])])?;
/// let y: &[f32] = outputs.get(0)?.as_f32()?;
/// assert_eq!(y.len(), 8);
/// # Ok(()) }
/// ```
pub struct PteModule {
    // Field order matters: `raw` is dropped first, while the bytes it reads still exist.
    raw: RawModule,
    _bytes: Option<AlignedBytes>,
    path: Option<PathBuf>,
    file_size: u64,
    names: Vec<String>,
    metas: RefCell<HashMap<String, MethodMeta>>,
    embedded: Vec<verify::NamedBlob>,
    named_keys: Vec<String>,
    io_dynamism: HashMap<String, verify::IoDynamism>,
    // See `retry_after_reset`.
    retry_after_reset: bool,
}

/// Compile-time check that `PteModule` stays `Send`.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<PteModule>();
};

impl std::fmt::Debug for PteModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PteModule")
            .field("path", &self.path)
            .field("file_size", &self.file_size)
            .field("methods", &self.names)
            .finish()
    }
}

/// What a path that is not a regular file is ("is a directory", "is a FIFO (named pipe)", ...),
/// from its metadata; `None` for a regular file. Used before opening a model file: opening a
/// FIFO blocks until a writer comes, and a device or a directory is not a program.
///
/// ```
/// let dir = std::fs::metadata(std::env::temp_dir()).unwrap();
/// assert_eq!(diffulex_edge::pte::not_a_regular_file(&dir), Some("is a directory"));
/// let zero = std::fs::metadata("/dev/zero").unwrap();
/// assert_eq!(diffulex_edge::pte::not_a_regular_file(&zero), Some("is a character device"));
/// ```
pub fn not_a_regular_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("is a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("is a FIFO (named pipe)");
        }
        if t.is_char_device() {
            return Some("is a character device");
        }
        if t.is_block_device() {
            return Some("is a block device");
        }
        if t.is_socket() {
            return Some("is a socket");
        }
    }
    Some("is not a regular file")
}

impl PteModule {
    /// Memory-maps and verifies the program at `path`.
    ///
    /// # Errors
    /// [`PteError::Io`] if the file cannot be read, [`PteError::EmptyFile`], or
    /// [`PteError::Runtime`] (typically [`ErrorCode::InvalidProgram`](super::ErrorCode::InvalidProgram)) if it is not a valid
    /// program, or [`PteError::CorruptProgram`] if it is structurally valid but inconsistent
    /// in a way that would crash the runtime (see the module docs, "Corrupt programs").
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert!(m.file_size() > 0);
    /// assert!(diffulex_edge::pte::PteModule::load("/no/such/file.pte").is_err());
    /// # Ok(()) }
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |error| PteError::Io {
            path: path.to_path_buf(),
            error,
        };
        let meta = regular_file_metadata(path)?;
        // Open once for reading so a permission problem is reported as an I/O error.
        std::fs::File::open(path).map_err(io)?;
        if meta.len() == 0 {
            return Err(PteError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        let c_path = path_to_c(path)?;
        super::runtime()?;
        let raw = RawModule::load_file(&c_path, true)
            .map_err(|e| runtime(e, Operation::Load, Some(path), None))?;
        let program = program_bytes(path, meta.len()).map_err(io)?;
        let uses = verify::check_program(
            &program,
            &FileSegments::new(path, meta.len()),
            Some(path.to_path_buf()),
        )?;
        check_registered(&uses, Some(path))?;
        Self::finish(raw, None, Some(path.to_path_buf()), meta.len(), uses)
    }

    /// Loads a program held in memory. The bytes are copied once into 64-byte-aligned storage
    /// owned by the module (ExecuTorch reads tensors in place and needs them aligned).
    ///
    /// # Errors
    /// [`PteError::Runtime`] if the bytes are not a valid program, [`PteError::CorruptProgram`]
    /// if they fail the integrity checks (as for [`PteModule::load`]).
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// use diffulex_edge::pte::PteModule;
    /// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte")).unwrap();
    /// let m = PteModule::from_bytes(bytes)?;
    /// assert!(m.path().is_none());
    /// assert!(m.method_names()?.contains(&"forward".to_string()));
    /// # Ok(()) }
    /// ```
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes_of(bytes, None)
    }

    /// Reads the file at `path` into memory and loads it like [`PteModule::from_bytes`]: no
    /// mapping of the file is kept, so the file may be overwritten or truncated in place while
    /// the module is in use (a memory-mapped module dies of SIGBUS then). Costs the file's size
    /// in RAM and one read. Errors name `path`, as for [`PteModule::load`]; a path that is not
    /// a regular file (directory, FIFO, device) is refused before it is opened.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// use diffulex_edge::pte::PteModule;
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte");
    /// let m = PteModule::load_copy(path)?;
    /// assert_eq!(m.path(), Some(std::path::Path::new(path)));
    /// assert!(PteModule::load_copy("/dev/zero").unwrap_err().to_string().contains("character device"));
    /// # Ok(()) }
    /// ```
    pub fn load_copy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        regular_file_metadata(path)?;
        let bytes = std::fs::read(path).map_err(|error| PteError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_bytes_of(bytes, Some(path.to_path_buf()))
    }

    fn from_bytes_of(bytes: Vec<u8>, path: Option<PathBuf>) -> Result<Self> {
        if bytes.is_empty() {
            return Err(PteError::EmptyFile {
                path: path.unwrap_or_else(|| PathBuf::from("<memory>")),
            });
        }
        super::runtime()?;
        let aligned = AlignedBytes::copy_of(&bytes);
        // SAFETY: `aligned` is moved into the returned module, whose `raw` field is declared
        // (and therefore dropped) before it, so the buffer outlives the C++ module; it is never
        // written after this point.
        let raw = unsafe { RawModule::load_buffer(aligned.as_ptr(), aligned.len, true) }
            .map_err(|e| runtime(e, Operation::Load, path.as_deref(), None))?;
        let uses = verify::check_program(&bytes, &InMemory(&bytes), path.clone())?;
        check_registered(&uses, path.as_deref())?;
        drop(bytes);
        let len = aligned.len as u64;
        Self::finish(raw, Some(aligned), path, len, uses)
    }

    fn finish(
        raw: RawModule,
        bytes: Option<AlignedBytes>,
        path: Option<PathBuf>,
        file_size: u64,
        uses: verify::ProgramUses,
    ) -> Result<Self> {
        let names = raw
            .method_names()
            .map_err(|e| runtime(e, Operation::MethodNames, path.as_deref(), None))?;
        Ok(PteModule {
            raw,
            _bytes: bytes,
            path,
            file_size,
            names,
            metas: RefCell::new(HashMap::new()),
            embedded: uses.embedded,
            named_keys: uses.named_keys,
            io_dynamism: uses.io_dynamism.into_iter().collect(),
            retry_after_reset: false,
        })
    }

    /// Names of the files embedded in the program (`diffulex-export --embed-tokenizer`: named
    /// data under `diffulex/`, docs/pte-contract.md), such as `tokenizer.json`.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert_eq!(m.embedded_files().count(), 0);
    /// # Ok(()) }
    /// ```
    pub fn embedded_files(&self) -> impl Iterator<Item = &str> {
        self.embedded
            .iter()
            .map(|blob| &blob.key[verify::EMBEDDED_PREFIX.len()..])
    }

    /// The bytes of an embedded file (`name` as [`embedded_files`](Self::embedded_files)
    /// lists it), read from the program when asked for; `None` if the program has none by
    /// that name.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert!(m.embedded_file("tokenizer.json")?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn embedded_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(blob) = self
            .embedded
            .iter()
            .find(|blob| &blob.key[verify::EMBEDDED_PREFIX.len()..] == name)
        else {
            return Ok(None);
        };
        let label = || {
            self.path
                .clone()
                .unwrap_or_else(|| PathBuf::from("<memory>"))
        };
        let bytes = match &self._bytes {
            Some(owned) => {
                let (start, end) = (blob.offset as usize, (blob.offset + blob.size) as usize);
                let mut out = Vec::with_capacity(end - start);
                for (index, piece) in owned.pieces().enumerate() {
                    let (piece_start, piece_end) = (index * 64, index * 64 + piece.len());
                    if piece_end <= start || piece_start >= end {
                        continue;
                    }
                    let from = start.max(piece_start) - piece_start;
                    let to = end.min(piece_end) - piece_start;
                    out.extend_from_slice(&piece[from..to]);
                }
                out
            }
            None => FileSegments::new(&label(), self.file_size)
                .read(blob.offset, blob.size)
                .map_err(|error| PteError::Io {
                    path: label(),
                    error,
                })?,
        };
        Ok(Some(bytes))
    }

    /// The keys of all the program's named data entries, in program order: the files
    /// embedded under `diffulex/` (see [`embedded_files`](Self::embedded_files)) and what
    /// delegates keep there, such as XNNPACK's weights (key: the SHA-256 hex of the bytes) and
    /// their scales (`scale_` and a hash). Read from the program when it was loaded and
    /// verified; [`named_data`](Self::named_data) returns an entry's bytes.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_embedded.pte"))?;
    /// assert!(m.named_data_keys().any(|k| k == "diffulex/tokenizer.json"));
    /// // XNNPACK's weights: keyed by the SHA-256 hex of their bytes.
    /// assert!(m.named_data_keys().any(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())));
    /// # Ok(()) }
    /// ```
    pub fn named_data_keys(&self) -> impl Iterator<Item = &str> {
        self.named_keys.iter().map(String::as_str)
    }

    /// The bytes of the program's named data entry `key` (one of
    /// [`named_data_keys`](Self::named_data_keys)), or `None` if the program has no such entry.
    ///
    /// Zero-copy: the bytes are read through ExecuTorch's own data loader, so for a module
    /// loaded from a file they are the file, memory-mapped (pages are read when touched), and
    /// for one loaded from bytes they are the module's copy. The slice borrows the module; an
    /// entry stays loaded (mapped) until the module is dropped, and asking for the same key
    /// again returns the same bytes without loading them again. As with every memory-mapped
    /// module, the file must not be changed in place while the module is in use (see
    /// [`load_copy`](Self::load_copy)).
    ///
    /// # Errors
    /// [`PteError::InvalidNamedDataKey`] if `key` contains a NUL byte, or [`PteError::Runtime`]
    /// (operation [`Operation::NamedData`](super::Operation::NamedData)) if the entry exists but
    /// cannot be loaded.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// use diffulex_edge::pte::PteModule;
    /// let m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_embedded.pte"))?;
    /// // The tokenizer embedded by `diffulex-export --embed-tokenizer`, straight from the file.
    /// let tokenizer: &[u8] = m.named_data("diffulex/tokenizer.json")?.expect("embedded");
    /// assert_eq!(Some(tokenizer.to_vec()), m.embedded_file("tokenizer.json")?);
    /// assert!(m.named_data("diffulex/no-such-file")?.is_none());
    /// assert!(m.named_data("nul\0key").is_err());
    /// # Ok(()) }
    /// ```
    pub fn named_data(&self, key: &str) -> Result<Option<&[u8]>> {
        let c = raw::c_name(key).ok_or_else(|| PteError::InvalidNamedDataKey {
            key: key.to_string(),
        })?;
        let found = self
            .raw
            .named_data(&c)
            .map_err(|e| runtime(e, Operation::NamedData, self.path.as_deref(), None))?;
        Ok(found.map(|(data, len)| {
            // SAFETY: the shim returned a non-null pointer to `len` readable bytes of one
            // loaded entry (a read-only mapping of the file, or the module's own buffer, which
            // is never written after loading). The C++ module keeps the entry loaded until
            // `dlx_module_free`, which only `RawModule::drop` calls, when `self` is dropped; the
            // returned slice borrows `self`, so it cannot outlive it, and nothing writes those
            // bytes while it lives.
            unsafe { std::slice::from_raw_parts(data, len) }
        }))
    }

    /// The program bytes of a module loaded with [`PteModule::from_bytes`], in pieces; `None`
    /// for a memory-mapped module.
    pub(crate) fn owned_pieces(&self) -> Option<impl Iterator<Item = &[u8]>> {
        self._bytes.as_ref().map(AlignedBytes::pieces)
    }

    /// The file this module was loaded from (`None` for [`PteModule::from_bytes`]; the file
    /// read for [`PteModule::load_copy`]).
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte");
    /// let m = diffulex_edge::pte::PteModule::load(p)?;
    /// assert_eq!(m.path(), Some(std::path::Path::new(p)));
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Size of the program in bytes.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte");
    /// let m = diffulex_edge::pte::PteModule::load(p)?;
    /// assert_eq!(m.file_size(), std::fs::metadata(p).unwrap().len());
    /// # Ok(()) }
    /// ```
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Names of all methods, in program order.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// let names = m.method_names()?;
    /// assert!(names.iter().any(|n| n == "get_answer"));
    /// # Ok(()) }
    /// ```
    pub fn method_names(&self) -> Result<Vec<String>> {
        Ok(self.names.clone())
    }

    /// Whether the program has a method called `name`.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// let m = diffulex_edge::pte::PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
    /// assert!(m.has_method("forward") && !m.has_method("backward"));
    /// # Ok(()) }
    /// ```
    pub fn has_method(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Inputs, outputs and delegate backends of `name`, read from the program (the result is
    /// cached). The method is not loaded: its delegates are initialised (XNNPACK packs its
    /// weights, which takes seconds and about the weights' size in memory at real model
    /// sizes) by the first [`execute`](Self::execute), so a tool that only describes a
    /// program stays fast and small.
    ///
    /// # Errors
    /// [`PteError::UnknownMethod`], or [`PteError::Runtime`] if the program's metadata of the
    /// method cannot be read.
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// use diffulex_edge::pte::{DType, PteModule};
    /// let m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/dynamic.pte"))?;
    /// let meta = m.method_meta("forward")?;
    /// assert_eq!(meta.inputs[0].dtype, DType::I64);
    /// assert_eq!(meta.inputs[0].shape, [1, 16]); // T is dynamic, at most 16
    /// assert!(meta.inputs[0].dynamic);
    /// # Ok(()) }
    /// ```
    pub fn method_meta(&self, name: &str) -> Result<MethodMeta> {
        self.ensure_meta(name)?;
        Ok(self.metas.borrow()[name].clone())
    }

    fn ensure_meta(&self, name: &str) -> Result<()> {
        if self.metas.borrow().contains_key(name) {
            return Ok(());
        }
        if !self.has_method(name) {
            return Err(PteError::UnknownMethod {
                method: name.to_string(),
                available: self.names.clone(),
            });
        }
        let err = |e| runtime(e, Operation::MethodMeta, self.path.as_deref(), Some(name));
        let c = c_method(name, &self.names)?;
        let (n_in, n_out, n_backends) = self.raw.method_counts(&c).map_err(err)?;
        let info = |output, i| self.raw.value_info(&c, output, i).map(tensor_info);
        // Dynamism comes from the program's value table: the shim's MethodMeta has none (it
        // reports -1), and reading it from a loaded method would mean loading it here.
        let dynamism = self.io_dynamism.get(name);
        let with_dynamism = |mut info: TensorInfo, from: Option<&Vec<i32>>, i: usize| {
            if let Some(&d) = from.and_then(|list| list.get(i)) {
                info.dynamism = Dynamism::from_raw(d);
                info.dynamic = matches!(info.dynamism, Dynamism::Bounded | Dynamism::Unbounded);
            }
            info
        };
        let inputs = (0..n_in)
            .map(|i| info(false, i).map(|t| with_dynamism(t, dynamism.map(|d| &d.inputs), i)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let outputs = (0..n_out)
            .map(|i| info(true, i).map(|t| with_dynamism(t, dynamism.map(|d| &d.outputs), i)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let backends = (0..n_backends)
            .map(|i| self.raw.backend_name(&c, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let meta = MethodMeta {
            name: name.to_string(),
            inputs,
            outputs,
            backends,
        };
        self.metas.borrow_mut().insert(name.to_string(), meta);
        Ok(())
    }

    /// Whether [`execute`](Self::execute) calls a method once more after a delegate threw
    /// during it. The shim then unloads the method (a throw leaves it unusable), so the second
    /// call loads it afresh. Only right for programs without state between calls: the reload
    /// empties mutable buffers such as a KV cache. The Vulkan delegate of ExecuTorch 1.5 throws
    /// when a dynamic dimension changes after its first execute; a fresh load takes any size.
    pub(crate) fn retry_after_reset(&mut self, on: bool) {
        self.retry_after_reset = on;
    }

    /// Runs `method` on `inputs` and returns zero-copy views of its outputs, valid until the
    /// next call on this module (the borrow checker enforces it).
    ///
    /// Inputs are checked against the method's metadata first: count, dtype, rank, static
    /// sizes and the upper bounds of dynamic tensors, and that each slice matches its shape.
    ///
    /// # Errors
    /// [`PteError::UnknownMethod`], an input error ([`PteError::InputCount`],
    /// [`PteError::InputDType`], [`PteError::InputRank`], [`PteError::InputShape`],
    /// [`PteError::DimAboveBound`], [`PteError::InputDataLength`]), or [`PteError::Runtime`].
    ///
    /// ```
    /// # fn main() -> Result<(), diffulex_edge::pte::PteError> {
    /// use diffulex_edge::pte::{PteModule, Tensor};
    /// let mut m = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/dynamic.pte"))?;
    /// for t in [1usize, 4, 16] {
    ///     let tokens = vec![1i64; t];
    ///     let out = m.execute("forward", &[Tensor::i64(&tokens, &[1, t])])?;
    ///     assert_eq!(out.get(0)?.shape(), &[1, t, 12]);
    /// }
    /// let too_long = vec![1i64; 17];
    /// assert!(m.execute("forward", &[Tensor::i64(&too_long, &[1, 17])]).is_err());
    /// # Ok(()) }
    /// ```
    pub fn execute(&mut self, method: &str, inputs: &[Tensor<'_>]) -> Result<Outputs<'_>> {
        self.ensure_meta(method)?;
        validate::check_inputs(&self.metas.borrow()[method], inputs)?;
        let c = c_method(method, &self.names)?;
        let sizes: Vec<Vec<i64>> = inputs
            .iter()
            .map(|t| {
                t.shape()
                    .iter()
                    .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                    .collect()
            })
            .collect();
        let raw_inputs: Vec<sys::dlx_tensor_in> = inputs
            .iter()
            .zip(&sizes)
            .map(|(t, s)| sys::dlx_tensor_in {
                dtype: t.dtype().scalar_type(),
                ndim: s.len(),
                sizes: s.as_ptr(),
                data: t.data_ptr(),
            })
            .collect();
        let n = match self.raw.execute(&c, &raw_inputs) {
            Err(e) if self.retry_after_reset && e.message.contains(raw::METHOD_UNLOADED) => {
                self.raw.execute(&c, &raw_inputs)
            }
            done => done,
        }
        .map_err(|e| runtime(e, Operation::Execute, self.path.as_deref(), Some(method)))?;
        Ok(Outputs::new(&self.raw, method.to_string(), n))
    }
}

/// Reads the flatbuffer part of the program at `path` for the integrity checks: up to the
/// extended header's `program_size` when there is one (the segments after it hold weights and
/// delegate blobs, which the checks do not need), else the whole file.
fn program_bytes(path: &Path, file_len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(32);
    (&mut file).take(32).read_to_end(&mut head)?;
    // Extended header at byte 8: b"eh00", header length (u32), program_size (u64), ...
    let program_size = match (head.get(8..12), head.get(16..24)) {
        (Some(b"eh00"), Some(size)) => {
            u64::from_le_bytes(size.try_into().unwrap_or_default()).min(file_len)
        }
        _ => file_len,
    };
    let mut rest = Vec::new();
    file.take(program_size.saturating_sub(head.len() as u64))
        .read_to_end(&mut rest)?;
    head.extend_from_slice(&rest);
    Ok(head)
}

fn tensor_info(raw: raw::RawValue) -> TensorInfo {
    let dynamism = Dynamism::from_raw(raw.dynamism);
    TensorInfo {
        dtype: DType::from_scalar_type(raw.dtype),
        shape: raw.sizes,
        dynamic: matches!(dynamism, Dynamism::Bounded | Dynamism::Unbounded),
        kind: ValueKind::from_tag(raw.tag),
        dynamism,
    }
}

/// The metadata of `path`, refused unless it is a regular file. Decided before any open:
/// opening a FIFO blocks until a writer comes, and a device has no size to map or read.
fn regular_file_metadata(path: &Path) -> Result<std::fs::Metadata> {
    let io = |error| PteError::Io {
        path: path.to_path_buf(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    match not_a_regular_file(&meta) {
        Some(kind) => Err(io(std::io::Error::other(format!(
            "{kind}, not a regular file"
        )))),
        None => Ok(meta),
    }
}

/// Every operator and backend the program uses must be registered, so a runtime missing a
/// kernel or delegate library fails here, naming what is missing, instead of at the first
/// method load with a bare status.
fn check_registered(uses: &verify::ProgramUses, file: Option<&Path>) -> Result<()> {
    let unavailable = |e: RawError| PteError::RuntimeUnavailable { message: e.message };
    let runtime: Box<str> = super::runtime()?.to_string().into();
    let kernels = raw::registered_kernels().map_err(unavailable)?;
    if let Some((method, operator)) = uses
        .operators
        .iter()
        .find(|(_, op)| kernels.binary_search(op).is_err())
    {
        return Err(PteError::MissingOperator {
            file: file.map(Path::to_path_buf),
            method: method.clone(),
            operator: operator.clone(),
            runtime: runtime.clone(),
        });
    }
    let backends = raw::registered_backends().map_err(unavailable)?;
    if let Some((method, backend)) = uses.backends.iter().find(|(_, b)| !backends.contains(b)) {
        return Err(PteError::MissingBackend {
            method: method.clone(),
            backend: backend.clone(),
            registered: backends.into_boxed_slice(),
            runtime,
        });
    }
    Ok(())
}

fn runtime(
    e: RawError,
    operation: Operation,
    file: Option<&Path>,
    method: Option<&str>,
) -> PteError {
    // ExecuTorch logs "Backend <id> is not available." when a registered delegate's
    // `is_available()` is false as the method loads (a method load happens inside execute).
    let unavailable = e
        .message
        .split_once("Backend ")
        .and_then(|(_, rest)| rest.split_once(" is not available"))
        .map(|(backend, _)| backend.to_string())
        .filter(|backend| !backend.contains(char::is_whitespace));
    if let (Some(backend), Some(method)) = (unavailable, method) {
        return PteError::BackendUnavailable {
            file: file.map(Path::to_path_buf),
            method: method.to_string(),
            backend,
        };
    }
    PteError::Runtime {
        code: e.code,
        operation,
        file: file.map(Path::to_path_buf),
        method: method.map(str::to_string),
        message: e.message,
    }
}

fn c_method(name: &str, names: &[String]) -> Result<std::ffi::CString> {
    raw::c_name(name).ok_or_else(|| PteError::UnknownMethod {
        method: name.to_string(),
        available: names.to_vec(),
    })
}

#[cfg(unix)]
fn path_to_c(path: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| PteError::InvalidPath {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(message: &str) -> RawError {
        RawError {
            code: super::super::ErrorCode::NotFound,
            message: message.into(),
        }
    }

    #[test]
    fn an_unavailable_backend_is_named() {
        let log = "executing method 'forward': NotFound (runtime log: Backend VulkanBackend is \
                   not available.)";
        match runtime(raw(log), Operation::Execute, None, Some("forward")) {
            PteError::BackendUnavailable {
                backend, method, ..
            } => {
                assert_eq!(
                    (backend.as_str(), method.as_str()),
                    ("VulkanBackend", "forward")
                )
            }
            other => panic!("{other:?}"),
        }
        let other = runtime(raw("NotFound"), Operation::Execute, None, Some("forward"));
        assert!(matches!(other, PteError::Runtime { .. }), "{other:?}");
    }
}

#[cfg(not(unix))]
fn path_to_c(path: &Path) -> Result<std::ffi::CString> {
    path.to_str()
        .and_then(|s| std::ffi::CString::new(s).ok())
        .ok_or_else(|| PteError::InvalidPath {
            path: path.to_path_buf(),
        })
}
