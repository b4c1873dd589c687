//! Every environment variable the build script reads, read through one helper that also tells
//! Cargo to rerun when it changes.

/// A prebuilt runtime: the 1.5.1 wheel's `executorch/` folder or a CMake install prefix
/// (`include/` + `lib/`).
pub const EXECUTORCH_DIR: &str = "EXECUTORCH_DIR";
/// An ExecuTorch source checkout to build with CMake.
pub const EXECUTORCH_SOURCE_DIR: &str = "EXECUTORCH_SOURCE_DIR";
/// Build directory of a source build (default `<target dir>/executorch-source/<target>-<hash>`).
pub const EXECUTORCH_BUILD_DIR: &str = "EXECUTORCH_BUILD_DIR";
/// Where downloaded runtimes are unpacked (default: the user cache directory).
pub const EXECUTORCH_CACHE_DIR: &str = "EXECUTORCH_CACHE_DIR";
/// `0` skips compiling the shim and linking (bindings only), e.g. for docs.
pub const EXECUTORCH_SYS_LINK: &str = "EXECUTORCH_SYS_LINK";
/// CMake build type of a source build (default `Release`, whatever the Cargo profile).
pub const EXECUTORCH_BUILD_TYPE: &str = "EXECUTORCH_BUILD_TYPE";
/// Android API level of a source build (default 26).
pub const EXECUTORCH_ANDROID_API: &str = "EXECUTORCH_ANDROID_API";
/// Python interpreter used to run `pip download` (default `python3`) and, for a source build,
/// ExecuTorch's code generator (needs `torch`; default the workspace `.venv`, then `python3`).
pub const EXECUTORCH_PYTHON: &str = "EXECUTORCH_PYTHON";
/// Set by Cargo for `--offline` / `net.offline`.
pub const CARGO_NET_OFFLINE: &str = "CARGO_NET_OFFLINE";
/// Set by docs.rs: no native build is possible there.
pub const DOCS_RS: &str = "DOCS_RS";
/// NDK locations, in the order they are tried.
pub const NDK_VARS: [&str; 4] = [
    "ANDROID_NDK_HOME",
    "ANDROID_NDK",
    "ANDROID_NDK_ROOT",
    "NDK_HOME",
];
/// Path of the Vulkan shader compiler, if not on `PATH`.
pub const GLSLC: &str = "GLSLC";

/// Reads `name` (empty counts as unset) and registers it for rerun.
pub fn get(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads a variable Cargo itself sets for build scripts.
pub fn cargo(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}
