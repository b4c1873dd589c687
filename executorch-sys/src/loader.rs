//! Finding and opening the shim library of a shared runtime, once per process.
//!
//! The build links the shim against the runtime's shared libraries with a RUNPATH of its own
//! directory first and the runtime's build-time directory second, so opening the shim opens the
//! runtime, its kernel libraries and its delegates with it (their static initializers register
//! the operators and backends). The shim is looked for, first match wins:
//! 1. `DIFFULEX_RUNTIME_DIR`: a directory holding the shim library, or the library file itself;
//! 2. beside the module that holds this code: the executable's directory (and a shared
//!    library's own directory when this crate is inside one, e.g. a JNI library), then `../lib`
//!    of it;
//! 3. the path the build left it at, in the per-user runtime cache (`build/install.rs`).
//!
//! A candidate that exists but does not open (a missing runtime library beside it, another
//! architecture, a shim of another ABI version) is an error naming it: falling through to the
//! next one would hide a broken installation behind one that happens to work here.

#[cfg(not(dlx_linked))]
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[cfg(not(dlx_linked))]
use crate::bindings::ShimLibrary;

/// Environment variable naming the directory (or file) of the shim library to use.
pub const RUNTIME_DIR_VAR: &str = "DIFFULEX_RUNTIME_DIR";

/// Where the loaded runtime was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeSource {
    /// From `DIFFULEX_RUNTIME_DIR`.
    Environment,
    /// Beside the executable or the shared library that contains this crate.
    BesideBinary,
    /// At the path the build script left it at.
    BuildTime,
    /// Linked into the binary (static runtime): nothing is loaded at run time.
    Linked,
}

impl std::fmt::Display for RuntimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeSource::Environment => RUNTIME_DIR_VAR,
            RuntimeSource::BesideBinary => "beside the binary",
            RuntimeSource::BuildTime => "build-time location",
            RuntimeSource::Linked => "linked into the binary",
        })
    }
}

/// The ExecuTorch runtime this process uses.
#[derive(Debug)]
pub struct Runtime {
    shim: Option<PathBuf>,
    source: RuntimeSource,
    files: Vec<PathBuf>,
}

impl Runtime {
    /// The shim library that was opened (`None` when the runtime is linked in).
    pub fn shim_path(&self) -> Option<&Path> {
        self.shim.as_deref()
    }

    /// How it was found.
    pub fn source(&self) -> RuntimeSource {
        self.source
    }

    /// The files a copy of this program needs beside it to run on another machine of the same
    /// architecture: the shim and the runtime libraries it depends on (empty when linked in).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shim {
            Some(path) => write!(f, "{} ({})", path.display(), self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

/// The runtime could not be found or opened; the message says where it looked and what to do.
#[derive(Debug, Clone)]
pub struct LoadError {
    message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

struct Loaded {
    info: Runtime,
    #[cfg(not(dlx_linked))]
    library: ShimLibrary,
}

static LOADED: OnceLock<Result<Loaded, LoadError>> = OnceLock::new();

/// Opens the runtime on first use (later calls return the same result) and says where it is.
///
/// # Errors
/// [`LoadError`] if no shim library is found or the one found does not open.
pub fn runtime() -> Result<&'static Runtime, LoadError> {
    match LOADED.get_or_init(load) {
        Ok(loaded) => Ok(&loaded.info),
        Err(e) => Err(e.clone()),
    }
}

/// The opened shim. Only called by the forwarding functions, whose callers opened the runtime
/// with [`runtime`] first (their documented precondition).
#[cfg(not(dlx_linked))]
pub(crate) fn shim() -> &'static ShimLibrary {
    match LOADED.get_or_init(load) {
        Ok(loaded) => &loaded.library,
        Err(e) => panic!("executorch-sys: the runtime is not loaded: {e}"),
    }
}

#[cfg(dlx_linked)]
fn load() -> Result<Loaded, LoadError> {
    Ok(Loaded {
        info: Runtime {
            shim: None,
            source: RuntimeSource::Linked,
            files: Vec::new(),
        },
    })
}

#[cfg(not(dlx_linked))]
fn load() -> Result<Loaded, LoadError> {
    let built = option_env!("DLX_SHIM_LIBRARY").map(PathBuf::from);
    let file_name = built
        .as_deref()
        .and_then(Path::file_name)
        .unwrap_or(OsStr::new(default_file_name()))
        .to_os_string();
    let mut tried = Vec::new();
    if let Some(value) = std::env::var_os(RUNTIME_DIR_VAR).filter(|v| !v.is_empty()) {
        let given = PathBuf::from(&value);
        let path = if given.is_dir() {
            given.join(&file_name)
        } else {
            given
        };
        if !path.is_file() {
            return Err(LoadError {
                message: format!(
                    "{RUNTIME_DIR_VAR}={:?} holds no {}: point it at the directory with the \
                     shim and the ExecuTorch libraries (`diffulex runtime` lists them), or unset it",
                    value,
                    file_name.to_string_lossy()
                ),
            });
        }
        return open(path, RuntimeSource::Environment);
    }
    for dir in beside_binary() {
        let path = dir.join(&file_name);
        if path.is_file() {
            return open(path, RuntimeSource::BesideBinary);
        }
        tried.push(dir);
    }
    match built {
        Some(path) if path.is_file() => open(path, RuntimeSource::BuildTime),
        Some(path) => {
            tried.push(path);
            Err(not_found(&file_name, &tried))
        }
        None => Err(LoadError {
            message: "executorch-sys was built without a runtime (EXECUTORCH_SYS_LINK=0 or \
                      DOCS_RS): rebuild without them, or set DIFFULEX_RUNTIME_DIR to a \
                      directory with the shim and the ExecuTorch libraries"
                .into(),
        }),
    }
}

#[cfg(not(dlx_linked))]
fn not_found(file_name: &OsStr, tried: &[PathBuf]) -> LoadError {
    let places: Vec<String> = tried.iter().map(|p| format!("{p:?}")).collect();
    LoadError {
        message: format!(
            "the ExecuTorch runtime ({}) was not found in {}: copy it and the libexecutorch* \
             libraries beside the executable (`diffulex runtime --copy-to DIR` does), or set \
             {RUNTIME_DIR_VAR} to their directory",
            file_name.to_string_lossy(),
            places.join(", ")
        ),
    }
}

#[cfg(not(dlx_linked))]
fn default_file_name() -> &'static str {
    if cfg!(target_vendor = "apple") {
        "libdiffulex_et.dylib"
    } else {
        "libdiffulex_et.so"
    }
}

#[cfg(not(dlx_linked))]
fn open(path: PathBuf, source: RuntimeSource) -> Result<Loaded, LoadError> {
    // SAFETY: opening the shim runs the static initializers of it and of the ExecuTorch
    // libraries it depends on; they only register kernels, backends and the platform layer.
    // Every symbol is resolved here (`dynamic_link_require_all`), so no call can reach a null
    // function later.
    let library = unsafe { ShimLibrary::new(&path) }.map_err(|e| LoadError {
        message: format!(
            "cannot open the ExecuTorch runtime {path:?} (found {source}): {e}. \
             The libexecutorch* libraries it needs must sit in the same directory"
        ),
    })?;
    // SAFETY: a function taking nothing and returning a constant.
    let abi = unsafe { library.dlx_abi_version() };
    if abi != crate::DLX_ABI_VERSION {
        return Err(LoadError {
            message: format!(
                "{path:?} (found {source}) is a shim of ABI version {abi}, this program needs \
                 version {}: replace it with the one this program was built with",
                crate::DLX_ABI_VERSION
            ),
        });
    }
    let files = runtime_files(&path);
    Ok(Loaded {
        info: Runtime {
            shim: Some(path),
            source,
            files,
        },
        library,
    })
}

/// The shim plus each runtime library it was linked against, from the shim's directory or,
/// failing that, the build-time runtime directory (where its RUNPATH finds them too).
#[cfg(not(dlx_linked))]
fn runtime_files(shim: &Path) -> Vec<PathBuf> {
    let mut files = vec![shim.to_path_buf()];
    let libs = option_env!("DLX_RUNTIME_LIBS").unwrap_or_default();
    let build_dir = option_env!("DLX_RUNTIME_LIB_DIR").map(PathBuf::from);
    let ext = if cfg!(target_vendor = "apple") {
        "dylib"
    } else {
        "so"
    };
    for name in libs.split(',').filter(|n| !n.is_empty()) {
        let file = format!("lib{name}.{ext}");
        let beside = shim.parent().map(|d| d.join(&file));
        let found = beside
            .into_iter()
            .chain(build_dir.iter().map(|d| d.join(&file)))
            .find(|p| p.is_file());
        files.extend(found);
    }
    files
}

/// Directories beside the code that is running: the executable's, and the shared library's
/// when this crate was linked into one; each followed by its `../lib`.
#[cfg(not(dlx_linked))]
fn beside_binary() -> Vec<PathBuf> {
    let mut objects = Vec::new();
    if let Some(object) = containing_object() {
        objects.push(object);
    }
    if let Ok(exe) = std::env::current_exe() {
        objects.push(exe);
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for object in objects {
        if let Some(dir) = object.parent() {
            for candidate in [dir.to_path_buf(), dir.join("..").join("lib")] {
                if !dirs.contains(&candidate) {
                    dirs.push(candidate);
                }
            }
        }
    }
    dirs
}

/// The file of the loaded object (executable or shared library) that contains this function,
/// when the dynamic loader knows it by an absolute path.
#[cfg(all(not(dlx_linked), unix))]
fn containing_object() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let address = containing_object as fn() -> Option<PathBuf> as *const libc::c_void;
    // SAFETY: dladdr only reads the address and writes `info`, which is valid for writes.
    let found = unsafe { libc::dladdr(address, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr returned nonzero, so it filled `info` (zeroed before, so any field it
    // left alone is null).
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: a non-null dli_fname is a NUL-terminated string owned by the loader, valid while
    // the object stays loaded (it contains this function, so it does); copied right away.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
    // The main program is reported by the name it was started with, which may be relative.
    path.is_absolute().then_some(path)
}

#[cfg(all(not(dlx_linked), not(unix)))]
fn containing_object() -> Option<PathBuf> {
    None
}
