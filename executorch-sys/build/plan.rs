//! Pure decisions of the build script: target triple -> wheel platform, CMake options, Android
//! toolchain, link plan and how the C++ runtime is linked (features `static` and
//! `android-static-stl`). No I/O here, so every combination is unit-tested (the library
//! includes this file under `cfg(test)`; run `cargo test -p executorch-sys`).

use std::path::{Path, PathBuf};

/// A prebuilt wheel for one target: pip platform tag and pinned SHA-256 of the `.whl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPin {
    /// The `--platform` value given to `pip download`.
    pub platform: &'static str,
    /// SHA-256 of `executorch-1.5.1-cp311-cp311-<platform>.whl`.
    pub sha256: &'static str,
}

/// The wheel to download for a Rust target triple, if one exists.
pub fn wheel_for(triple: &str) -> Option<WheelPin> {
    match triple {
        "x86_64-unknown-linux-gnu" => Some(WheelPin {
            platform: "manylinux_2_28_x86_64",
            sha256: "274c28c2fe2b76acb03f9fa381537425c40e0098dcf886baf6d97a1a55ffe300",
        }),
        "aarch64-unknown-linux-gnu" => Some(WheelPin {
            platform: "manylinux_2_28_aarch64",
            sha256: "8ee02348a3ea80ddf770822911ebf78da616b73afce0fbaaa79f23311c88c66a",
        }),
        "aarch64-apple-darwin" => Some(WheelPin {
            platform: "macosx_14_0_arm64",
            sha256: "e747dacb39950a2d234e08f230c1e5540f7b297fd32bc8c8f4296a953bb40dc0",
        }),
        _ => None,
    }
}

/// Android ABI name (as the NDK and CMake spell it) of a Rust Android target.
pub fn android_abi(triple: &str) -> Option<&'static str> {
    match triple {
        "aarch64-linux-android" => Some("arm64-v8a"),
        "armv7-linux-androideabi" | "thumbv7neon-linux-androideabi" => Some("armeabi-v7a"),
        "x86_64-linux-android" => Some("x86_64"),
        "i686-linux-android" => Some("x86"),
        _ => None,
    }
}

/// The clang target of an Android ABI at an API level (what the NDK's clang wrappers use).
pub fn android_clang_target(abi: &str, api: u32) -> String {
    let arch = match abi {
        "arm64-v8a" => "aarch64-linux-android",
        "armeabi-v7a" => "armv7a-linux-androideabi",
        "x86_64" => "x86_64-linux-android",
        _ => "i686-linux-android",
    };
    format!("{arch}{api}")
}

/// Everything derived from the NDK for one Android target; feeds both CMake and bindgen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidToolchain {
    /// NDK root directory.
    pub ndk: PathBuf,
    /// ABI name, e.g. `arm64-v8a`.
    pub abi: &'static str,
    /// Minimum API level.
    pub api: u32,
    /// NDK host tag, e.g. `linux-x86_64`.
    pub host_tag: &'static str,
    /// `c++_shared` or `c++_static`.
    pub stl: &'static str,
}

impl AndroidToolchain {
    /// Builds the toolchain description; `None` if `triple` is not an Android target.
    pub fn new(triple: &str, ndk: &Path, api: u32, host: &str, static_stl: bool) -> Option<Self> {
        Some(Self {
            ndk: ndk.to_path_buf(),
            abi: android_abi(triple)?,
            api,
            host_tag: ndk_host_tag(host),
            stl: if static_stl {
                "c++_static"
            } else {
                "c++_shared"
            },
        })
    }

    /// The NDK's CMake toolchain file.
    pub fn toolchain_file(&self) -> PathBuf {
        self.ndk
            .join("build")
            .join("cmake")
            .join("android.toolchain.cmake")
    }

    /// The sysroot bindgen's clang needs for the C headers.
    pub fn sysroot(&self) -> PathBuf {
        self.ndk
            .join("toolchains")
            .join("llvm")
            .join("prebuilt")
            .join(self.host_tag)
            .join("sysroot")
    }

    /// Clang arguments for bindgen.
    pub fn clang_args(&self) -> Vec<String> {
        vec![
            format!("--target={}", android_clang_target(self.abi, self.api)),
            format!("--sysroot={}", self.sysroot().display()),
        ]
    }

    /// The name of the C++ runtime library to link (`c++_shared` / `c++_static`).
    pub fn stl_lib(&self) -> &'static str {
        self.stl
    }
}

/// NDK prebuilt host directory for the build host triple.
pub fn ndk_host_tag(host: &str) -> &'static str {
    if host.contains("apple-darwin") {
        "darwin-x86_64" // the NDK ships one universal darwin directory under this name
    } else if host.contains("windows") {
        "windows-x86_64"
    } else {
        "linux-x86_64"
    }
}

/// Options of a source build that come from features and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Turn on the Vulkan delegate.
    pub vulkan: bool,
    /// CMake build type (`Release` by default).
    pub build_type: String,
    /// Path of `glslc` (required with `vulkan`).
    pub glslc: Option<PathBuf>,
    /// Build the LLM custom operators (`extension/llm/custom_ops`: fused SDPA, cache update).
    pub llm_ops: bool,
}

/// CMake cache entries for building ExecuTorch from source for `triple` on `host`.
///
/// XNNPACK, the optimized and quantized kernels and the module/data-loader/tensor extensions
/// are always on; upstream tests, runners and Python bindings are always off. The event tracer
/// is on because the shim compiles with `ET_EVENT_TRACER_ENABLED` (class layouts depend on it).
///
/// `BUILD_SHARED_LIBS=OFF` in every source build: every library is an archive, with or without
/// feature `static` (which decides only how the C++ runtime is linked), so both share one build.
/// Position-independent code is on in every build because Rust links position-independent
/// executables by default, and the archives end up inside one. No `CMAKE_EXE_LINKER_FLAGS`
/// (`-static-libstdc++`): the executable that ships is linked by rustc, which gets the C++
/// runtime from [`cxx_runtime_plan`] (ExecuTorch's own Vulkan runner is not used). On Android the STL comes from
/// the toolchain (`ANDROID_STL`).
pub fn cmake_defines(
    triple: &str,
    host: &str,
    opts: &SourceOptions,
    android: Option<&AndroidToolchain>,
) -> Result<Vec<(String, String)>, String> {
    let mut d: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| d.push((k.to_string(), v.to_string()));
    set("CMAKE_BUILD_TYPE", &opts.build_type);
    set("CMAKE_POSITION_INDEPENDENT_CODE", "ON");
    // Static archives in every source build: the link plan of a source build is the static
    // one (`static_link_plan`); shared libraries of a source build have other names than the
    // wheel's, which `shared_link_plan` expects. Feature `static` changes only the C++ runtime
    // (`cxx_runtime_plan`), so one CMake build serves both.
    set("BUILD_SHARED_LIBS", "OFF");
    for on in [
        "EXECUTORCH_BUILD_XNNPACK",
        "EXECUTORCH_BUILD_KERNELS_OPTIMIZED",
        "EXECUTORCH_BUILD_KERNELS_QUANTIZED",
        "EXECUTORCH_BUILD_EXTENSION_MODULE",
        "EXECUTORCH_BUILD_EXTENSION_DATA_LOADER",
        "EXECUTORCH_BUILD_EXTENSION_FLAT_TENSOR",
        "EXECUTORCH_BUILD_EXTENSION_NAMED_DATA_MAP",
        "EXECUTORCH_BUILD_EXTENSION_TENSOR",
        "EXECUTORCH_BUILD_DEVTOOLS",
        "EXECUTORCH_ENABLE_EVENT_TRACER",
        "EXECUTORCH_ENABLE_LOGGING",
        // Full flatbuffer verification in `Program::load` (`Verification::InternalConsistency`,
        // which the shim asks for). ExecuTorch turns it on by default only in Debug builds; the
        // wheel's build turns it on (tools/cmake/preset/pybind.cmake). Without it a corrupt
        // root offset crashes `Program::load` instead of failing verification.
        "EXECUTORCH_ENABLE_PROGRAM_VERIFICATION",
        "EXECUTORCH_BUILD_CPUINFO",
        "EXECUTORCH_BUILD_PTHREADPOOL",
    ] {
        set(on, "ON");
    }
    for off in [
        "EXECUTORCH_BUILD_TESTS",
        "EXECUTORCH_BUILD_EXECUTOR_RUNNER",
        "EXECUTORCH_BUILD_PYBIND",
        "EXECUTORCH_BUILD_EXTENSION_LLM",
        "EXECUTORCH_BUILD_EXTENSION_LLM_RUNNER",
        "BUILD_TESTING",
    ] {
        set(off, "OFF");
    }
    if opts.vulkan {
        let glslc = opts.glslc.as_ref().ok_or_else(|| {
            "feature `vulkan` needs the `glslc` shader compiler: install it (Vulkan SDK, \
             `apt-get install glslc`, or the NDK's shader-tools) and put it on PATH or set GLSLC"
                .to_string()
        })?;
        set("EXECUTORCH_BUILD_VULKAN", "ON");
        set("GLSLC_PATH", &glslc.display().to_string());
    } else {
        set("EXECUTORCH_BUILD_VULKAN", "OFF");
    }
    if opts.llm_ops {
        // Only the runtime half (`custom_ops`); the AOT library for PyTorch comes with the
        // wheel. Nothing is set without the feature, so that other builds keep their build
        // directory (its name hashes these entries) and ExecuTorch's default (off) applies.
        set("EXECUTORCH_BUILD_KERNELS_LLM", "ON");
        set("EXECUTORCH_BUILD_KERNELS_LLM_AOT", "OFF");
    }
    if triple.contains("android") {
        let tc = android.ok_or_else(|| format!("target {triple} needs an Android NDK"))?;
        set(
            "CMAKE_TOOLCHAIN_FILE",
            &tc.toolchain_file().display().to_string(),
        );
        set("ANDROID_ABI", tc.abi);
        set("ANDROID_PLATFORM", &format!("android-{}", tc.api));
        set("ANDROID_STL", tc.stl);
        if tc.abi == "armeabi-v7a" {
            set("ANDROID_ARM_NEON", "ON");
        }
    } else if triple.contains("apple-darwin") {
        let arch = if triple.starts_with("aarch64") {
            "arm64"
        } else {
            "x86_64"
        };
        set("CMAKE_OSX_ARCHITECTURES", arch);
    } else if triple.contains("linux") && triple != host {
        // A Linux cross build: say which processor, so XNNPACK picks its microkernels for the
        // target rather than the host. Compilers come from the cc crate's CC/CXX.
        let processor = triple.split('-').next().unwrap_or("");
        set("CMAKE_SYSTEM_NAME", "Linux");
        set("CMAKE_SYSTEM_PROCESSOR", processor);
    } else if !triple.contains("linux") {
        return Err(format!(
            "building ExecuTorch from source is not set up for target {triple}; \
             supported: Linux, Android and macOS targets"
        ));
    }
    Ok(d)
}

/// Where XNNPACK looks for KleidiAI (Arm's microkernels, which it uses on 64-bit Arm only):
/// `<source>/backends/xnnpack/third-party/kleidiai` when the tree has it (tools/executorch_source.sh
/// puts XNNPACK's pinned commit there), so that the build needs no network; otherwise XNNPACK
/// downloads it at configure time. `None` off aarch64, where XNNPACK does not use it (keeping
/// the CMake entries, and so the build directory, of other targets unchanged).
pub fn kleidiai_define(triple: &str, source: &Path, tree_has_it: bool) -> Option<(String, String)> {
    (triple.starts_with("aarch64") && tree_has_it).then(|| {
        (
            "KLEIDIAI_SOURCE_DIR".to_string(),
            kleidiai_dir(source).display().to_string(),
        )
    })
}

/// The KleidiAI directory inside an ExecuTorch tree (not an ExecuTorch submodule: XNNPACK
/// downloads it itself unless told where it is).
pub fn kleidiai_dir(source: &Path) -> PathBuf {
    source.join("backends/xnnpack/third-party/kleidiai")
}

/// One library on the link line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkLib {
    /// Name without `lib` prefix and extension.
    pub name: String,
    /// Link the whole archive (static) / keep it although nothing references it (shared).
    pub whole: bool,
}

/// Static libraries that register kernels or backends from static initializers (ExecuTorch's
/// CMake links each with `executorch_target_link_options_shared_lib`, i.e. whole-archive).
/// `executorch` is the core's registration half: `register_prim_ops.cpp` (`aten::sym_size.int`,
/// `executorch_prim::*`), without which every program with a dynamic shape fails to load.
const STATIC_REGISTRATION: &[&str] = &[
    "xnnpack_backend",
    // The LLM custom operators (feature `llm-ops`): registered from static initializers too.
    "custom_ops",
    "vulkan_backend",
    "optimized_native_cpu_ops_lib",
    "quantized_ops_lib",
    "executorch",
];

/// Static libraries in link order (users before what they use). Names not found are skipped.
const STATIC_ORDER: &[&str] = &[
    "extension_module_static",
    "extension_module",
    "extension_data_loader",
    "extension_tensor",
    "extension_flat_tensor",
    "extension_named_data_map",
    "etdump",
    "bundled_program",
    "flatccrt",
    "optimized_kernels",
    "optimized_portable_kernels",
    "quantized_kernels",
    "portable_kernels",
    "kernels_util_all_deps",
    "cpublas",
    "eigen_blas",
    "XNNPACK",
    "xnnpack-microkernels-prod",
    "kleidiai",
    "extension_threadpool",
    "pthreadpool",
    "cpuinfo",
    "executorch_core",
];

/// Static libraries that must NOT be linked alongside the ones above: each registers operators
/// that `optimized_native_cpu_ops_lib` (optimized kernels, portable ones for the rest) already
/// registers, and a second registration of an operator is an error at startup.
const STATIC_EXCLUDED: &[&str] = &[
    "portable_ops_lib",
    "optimized_ops_lib",
    "optimized_portable_ops_lib",
];

/// Link plan for a static source build, given the `lib*.a` names found in the install's lib
/// directory. Registration libraries come first as whole archives, then the rest in
/// dependency order.
pub fn static_link_plan(available: &[String], vulkan: bool) -> Vec<LinkLib> {
    let has = |n: &str| available.iter().any(|a| a == n);
    let mut plan = Vec::new();
    for name in STATIC_REGISTRATION {
        if (*name != "vulkan_backend" || vulkan) && has(name) {
            plan.push(LinkLib {
                name: name.to_string(),
                whole: true,
            });
        }
    }
    for name in STATIC_ORDER {
        if has(name) && !STATIC_EXCLUDED.contains(name) {
            plan.push(LinkLib {
                name: name.to_string(),
                whole: false,
            });
        }
    }
    plan
}

/// Shared libraries of a wheel or shared install that register themselves on load.
pub const SHARED_REGISTRATION: &[&str] = &[
    "executorch_kernels_optimized",
    "executorch_kernels_quantized",
    "executorch_backend_xnnpack",
    "executorch_threadpool",
];

/// Link plan for a shared runtime (the wheel layout), given the `lib*.so`/`.dylib` names found.
/// `None` if the core `executorch` library is missing.
pub fn shared_link_plan(available: &[String]) -> Option<Vec<LinkLib>> {
    if !available.iter().any(|a| a == "executorch") {
        return None;
    }
    let mut plan = vec![LinkLib {
        name: "executorch".into(),
        whole: false,
    }];
    for name in SHARED_REGISTRATION {
        if available.iter().any(|a| a == name) {
            plan.push(LinkLib {
                name: name.to_string(),
                whole: true,
            });
        }
    }
    Some(plan)
}

/// File name of the shim library for a shared runtime on `target_os`.
pub fn shim_file_name(target_os: &str) -> &'static str {
    match target_os {
        "macos" | "ios" => "libdiffulex_et.dylib",
        "windows" => "diffulex_et.dll",
        _ => "libdiffulex_et.so",
    }
}

/// Linker arguments (after the object files) that make the shim library of a shared runtime.
///
/// Every library of `libs` becomes a dependency of the shim itself, kept although the shim
/// references no symbol of the kernel and delegate libraries (they register themselves from
/// static initializers when loaded). The shim finds them first in its own directory (a shipped
/// copy: binary, shim and runtime side by side), then in `lib_dir` where the build found them.
pub fn shim_link_args(target_os: &str, lib_dir: &str, libs: &[LinkLib]) -> Vec<String> {
    let mut args = Vec::new();
    let apple = target_os == "macos" || target_os == "ios";
    if apple {
        // ld64 keeps every dylib named on the command line unless told to dead-strip them.
        args.push("-dynamiclib".into());
        args.push("-Wl,-install_name,@rpath/libdiffulex_et.dylib".into());
    } else {
        args.push("-shared".into());
        args.push("-Wl,-soname,libdiffulex_et.so".into());
        // Every symbol must resolve now, against the runtime: a missing library is a build
        // error here, not a load error on the user's machine.
        args.push("-Wl,--no-undefined".into());
    }
    args.push(format!("-L{lib_dir}"));
    if !apple {
        args.push("-Wl,--no-as-needed".into());
    }
    for lib in libs {
        args.push(format!("-l{}", lib.name));
    }
    if !apple {
        args.push("-Wl,--as-needed".into());
        // RUNPATH, searched for the shim's own dependencies.
        args.push("-Wl,--enable-new-dtags".into());
    }
    let origin = if apple { "@loader_path" } else { "$ORIGIN" };
    args.push(format!("-Wl,-rpath,{origin}"));
    args.push(format!("-Wl,-rpath,{lib_dir}"));
    args
}

/// Library names found in a directory listing: `libX.a` (static) or `libX.so` / `libX.dylib`.
pub fn lib_names<'a>(files: impl IntoIterator<Item = &'a str>, static_libs: bool) -> Vec<String> {
    let mut names: Vec<String> = files
        .into_iter()
        .filter_map(|f| {
            let stem = f.strip_prefix("lib")?;
            if static_libs {
                stem.strip_suffix(".a")
            } else {
                stem.strip_suffix(".so")
                    .or_else(|| stem.strip_suffix(".dylib"))
            }
        })
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Preprocessor defines the shim (and anything else including ExecuTorch headers) needs.
/// `ET_USE_THREADPOOL` only when the runtime ships its thread pool, as the wheel's CMake
/// config does.
pub fn cpp_defines(has_threadpool: bool) -> Vec<&'static str> {
    let mut d = vec![
        "C10_USING_CUSTOM_GENERATED_MACROS",
        "ET_EVENT_TRACER_ENABLED",
    ];
    if has_threadpool {
        d.push("ET_USE_THREADPOOL");
    }
    d
}

/// What the features ask of the build: one self-contained executable, or just Android's static
/// STL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StaticRequest {
    /// Feature `static`: ExecuTorch linked from static archives and the C++ runtime linked
    /// statically where the target allows.
    pub single_file: bool,
    /// Feature `android-static-stl` (implied by `static`): the NDK's `c++_static` on Android.
    pub android_static_stl: bool,
}

impl StaticRequest {
    /// Whether an Android build uses `c++_static` (either feature asks for it).
    pub fn static_stl(&self) -> bool {
        self.single_file || self.android_static_stl
    }
}

/// How the C++ standard library gets into the executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxxRuntimePlan {
    /// `cargo:rustc-link-lib` values for the C++ standard library, emitted after ExecuTorch's
    /// own libraries (GNU ld resolves archives left to right, and the ExecuTorch archives need
    /// the C++ runtime too, not only the shim). `None`: the `cc` crate links its default (the
    /// platform's shared C++ library) for the shim, as without any feature.
    pub link_libs: Option<Vec<&'static str>>,
    /// What stays dynamic and why, for the build log; empty when nothing was asked.
    pub note: &'static str,
    /// Linux glibc under `static`: Rust's standard library asks for `-lgcc_s` (the shared
    /// unwinder) by name, so the build script puts a `libgcc_s.a` (a copy of the toolchain's
    /// `libgcc_eh.a`, the same unwinder as an archive) first on the library search path, and
    /// the binary needs no `libgcc_s.so.1`.
    pub static_unwinder: bool,
}

/// libstdc++ as an archive the final link resolves (`-bundle`: the toolchain's linker finds
/// `libstdc++.a` in its own search path; rustc adds the `-Bstatic` hint).
const STATIC_LIBSTDCXX: &str = "static:-bundle=stdc++";

/// Decides how the C++ runtime is linked for `triple` under `req`.
///
/// - Linux glibc: `libstdc++.a`, and the unwinder from `libgcc_eh.a` ([`CxxRuntimePlan::
///   static_unwinder`]): Rust's standard library links `-lgcc_s` itself (with `-nodefaultlibs`),
///   so `-static-libgcc` (and `-static-libstdc++`, which only changes what a C++ compiler driver
///   adds by itself) would change nothing on rustc's link line. Only glibc (`libc`, `libm`, the
///   loader) stays shared.
/// - Linux musl: `libstdc++.a` of a musl C++ toolchain; Rust links musl targets fully statically
///   already, so the executable has no dynamic dependency at all. Untested here.
/// - Android: the NDK's `c++_static` plus `c++abi` (the NDK's `libc++.a` is a linker script
///   naming both; `libc++_static.a` alone misses the ABI half). Bionic stays shared (it always
///   is).
/// - Apple: `libc++` stays the shared system library: it lives in the OS (dyld shared cache),
///   Apple ships no static `libc++` to link against and does not support static executables.
/// - Windows and everything else: an error, since the source build (which `static` needs) is
///   not set up for them.
///
/// # Examples
/// ```ignore
/// let req = StaticRequest { single_file: true, android_static_stl: true };
/// let plan = cxx_runtime_plan("x86_64-unknown-linux-gnu", req).unwrap();
/// assert_eq!(plan.link_libs, Some(vec!["static:-bundle=stdc++"]));
/// ```
pub fn cxx_runtime_plan(triple: &str, req: StaticRequest) -> Result<CxxRuntimePlan, String> {
    let dynamic = |note| CxxRuntimePlan {
        link_libs: None,
        note,
        static_unwinder: false,
    };
    if triple.contains("android") {
        return Ok(if req.static_stl() {
            CxxRuntimePlan {
                link_libs: Some(vec!["static:-bundle=c++_static", "static:-bundle=c++abi"]),
                note: "C++ runtime: the NDK's c++_static (+ c++abi) linked in; Bionic (libc, \
                       libm, libdl, liblog) stays shared",
                static_unwinder: false,
            }
        } else {
            dynamic("")
        });
    }
    if !req.single_file {
        // `android-static-stl` alone means nothing off Android.
        return Ok(dynamic(""));
    }
    if triple.contains("-linux-gnu") {
        Ok(CxxRuntimePlan {
            link_libs: Some(vec![STATIC_LIBSTDCXX]),
            note: "C++ runtime: libstdc++.a and the unwinder (libgcc_eh.a, linked where Rust \
                   asks for libgcc_s) linked in; only glibc (libc, libm, ld-linux) stays shared",
            static_unwinder: true,
        })
    } else if triple.contains("-linux-musl") {
        Ok(CxxRuntimePlan {
            link_libs: Some(vec![STATIC_LIBSTDCXX]),
            note: "C++ runtime: libstdc++.a of the musl toolchain linked in; musl targets link \
                   fully statically (ExecuTorch and XNNPACK on musl are untested)",
            static_unwinder: false,
        })
    } else if triple.contains("apple") {
        Ok(dynamic(
            "C++ runtime: libc++ stays the shared system library on Apple targets (part of \
             the OS; no static libc++ is shipped to link against)",
        ))
    } else {
        Err(format!(
            "feature `static` is not supported for target {triple}: it needs ExecuTorch built \
             from source, and the source build is set up for Linux, Android and macOS targets \
             only (on Windows a static CRT, /MT, would also have to match how ExecuTorch was \
             compiled, which nothing here controls). Build without `--features static`."
        ))
    }
}

/// Where the runtime came from, as far as the `static` feature cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// The pinned 1.5.1 wheel would be downloaded (shared libraries only).
    Wheel,
    /// `EXECUTORCH_DIR` or a source build that holds shared libraries.
    SharedInstall,
    /// Static archives (`libexecutorch.a`, ...): a static source build or install prefix.
    StaticInstall,
}

/// Refuses the `static` feature where it cannot hold, before anything is downloaded or linked.
///
/// # Examples
/// ```ignore
/// assert!(static_check(true, RuntimeKind::Wheel).is_err());
/// assert!(static_check(false, RuntimeKind::Wheel).is_ok());
/// ```
pub fn static_check(single_file: bool, kind: RuntimeKind) -> Result<(), String> {
    if !single_file {
        return Ok(());
    }
    match kind {
        RuntimeKind::StaticInstall => Ok(()),
        RuntimeKind::Wheel => Err(
            "feature `static` asks for one self-contained executable, but no ExecuTorch source \
             is configured, and the prebuilt executorch==1.5.1 wheel this build would otherwise \
             download ships only shared libraries (libexecutorch.so and the kernel/delegate \
             .so files), so the binary would still need them beside it at run time. Set \
             EXECUTORCH_SOURCE_DIR to an ExecuTorch 1.5.1 source checkout with its submodules \
             (or clone it into third_party/executorch) and install the `cmake` tool (on PATH, \
             or set CMAKE to its path): ExecuTorch is then built as static archives and linked \
             in. Or build without `--features static` to link the wheel's shared libraries."
                .to_string(),
        ),
        RuntimeKind::SharedInstall => Err(
            "feature `static` asks for one self-contained executable, but the ExecuTorch \
             runtime found holds shared libraries (lib*.so / lib*.dylib), which would stay \
             outside the binary. Unset EXECUTORCH_DIR and set EXECUTORCH_SOURCE_DIR to an \
             ExecuTorch 1.5.1 source checkout (with the `cmake` tool installed), or point \
             EXECUTORCH_DIR at an install prefix of a static build (BUILD_SHARED_LIBS=OFF)."
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(vulkan: bool) -> SourceOptions {
        SourceOptions {
            vulkan,
            build_type: "Release".into(),
            glslc: vulkan.then(|| PathBuf::from("/usr/bin/glslc")),
            llm_ops: false,
        }
    }

    fn get<'a>(d: &'a [(String, String)], k: &str) -> Option<&'a str> {
        d.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    const HOST: &str = "x86_64-unknown-linux-gnu";

    #[test]
    fn wheels_pinned_for_three_targets_only() {
        assert_eq!(
            wheel_for("x86_64-unknown-linux-gnu").unwrap().platform,
            "manylinux_2_28_x86_64"
        );
        assert_eq!(
            wheel_for("aarch64-unknown-linux-gnu").unwrap().platform,
            "manylinux_2_28_aarch64"
        );
        assert_eq!(
            wheel_for("aarch64-apple-darwin").unwrap().platform,
            "macosx_14_0_arm64"
        );
        for t in [
            "aarch64-linux-android",
            "armv7-linux-androideabi",
            "x86_64-apple-darwin",
        ] {
            assert_eq!(wheel_for(t), None, "{t}");
        }
        for t in [
            "x86_64-unknown-linux-gnu",
            "aarch64-unknown-linux-gnu",
            "aarch64-apple-darwin",
        ] {
            let sha = wheel_for(t).unwrap().sha256;
            assert_eq!(sha.len(), 64);
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn x86_64_linux_native_build() {
        let d = cmake_defines(HOST, HOST, &opts(false), None).unwrap();
        assert_eq!(get(&d, "EXECUTORCH_BUILD_XNNPACK"), Some("ON"));
        assert_eq!(get(&d, "EXECUTORCH_BUILD_VULKAN"), Some("OFF"));
        assert_eq!(get(&d, "EXECUTORCH_ENABLE_EVENT_TRACER"), Some("ON"));
        assert_eq!(
            get(&d, "EXECUTORCH_ENABLE_PROGRAM_VERIFICATION"),
            Some("ON"),
            "off by default in Release builds; the wheel has it on"
        );
        assert_eq!(get(&d, "EXECUTORCH_BUILD_TESTS"), Some("OFF"));
        assert_eq!(get(&d, "EXECUTORCH_BUILD_PYBIND"), Some("OFF"));
        assert_eq!(get(&d, "CMAKE_BUILD_TYPE"), Some("Release"));
        assert_eq!(get(&d, "CMAKE_TOOLCHAIN_FILE"), None);
        assert_eq!(
            get(&d, "CMAKE_SYSTEM_PROCESSOR"),
            None,
            "native build needs no cross settings"
        );
    }

    #[test]
    fn aarch64_linux_cross_build() {
        let d = cmake_defines("aarch64-unknown-linux-gnu", HOST, &opts(false), None).unwrap();
        assert_eq!(get(&d, "CMAKE_SYSTEM_NAME"), Some("Linux"));
        assert_eq!(get(&d, "CMAKE_SYSTEM_PROCESSOR"), Some("aarch64"));
        assert_eq!(get(&d, "EXECUTORCH_BUILD_XNNPACK"), Some("ON"));
    }

    fn android(triple: &str, static_stl: bool) -> AndroidToolchain {
        AndroidToolchain::new(triple, Path::new("/ndk"), 26, HOST, static_stl).unwrap()
    }

    #[test]
    fn android_abis_and_toolchain() {
        for (triple, abi, clang) in [
            (
                "aarch64-linux-android",
                "arm64-v8a",
                "aarch64-linux-android26",
            ),
            (
                "armv7-linux-androideabi",
                "armeabi-v7a",
                "armv7a-linux-androideabi26",
            ),
            ("x86_64-linux-android", "x86_64", "x86_64-linux-android26"),
        ] {
            let tc = android(triple, false);
            let d = cmake_defines(triple, HOST, &opts(false), Some(&tc)).unwrap();
            assert_eq!(get(&d, "ANDROID_ABI"), Some(abi), "{triple}");
            assert_eq!(get(&d, "ANDROID_PLATFORM"), Some("android-26"));
            assert_eq!(get(&d, "ANDROID_STL"), Some("c++_shared"));
            assert_eq!(
                get(&d, "CMAKE_TOOLCHAIN_FILE"),
                Some("/ndk/build/cmake/android.toolchain.cmake")
            );
            assert_eq!(
                get(&d, "ANDROID_ARM_NEON"),
                (abi == "armeabi-v7a").then_some("ON")
            );
            assert_eq!(tc.clang_args()[0], format!("--target={clang}"));
            assert_eq!(
                tc.clang_args()[1],
                "--sysroot=/ndk/toolchains/llvm/prebuilt/linux-x86_64/sysroot"
            );
        }
        assert_eq!(android_abi("x86_64-unknown-linux-gnu"), None);
    }

    #[test]
    fn android_static_stl() {
        let tc = android("aarch64-linux-android", true);
        let d = cmake_defines("aarch64-linux-android", HOST, &opts(false), Some(&tc)).unwrap();
        assert_eq!(get(&d, "ANDROID_STL"), Some("c++_static"));
        assert_eq!(tc.stl_lib(), "c++_static");
    }

    /// The Android build is the aarch64 Linux cross build that ran here (docs/source-build.md,
    /// "aarch64 from source"), except for how the compiler and ABI are named: every other
    /// CMake entry, with and without Vulkan, is the same, and `static_link_plan` does not
    /// depend on the target. So what is untested without an NDK is the NDK's toolchain file
    /// and its C++ runtime (`cxx_runtime_plan`), nothing else of ours.
    #[test]
    fn android_differs_from_the_tested_aarch64_linux_build_only_in_toolchain_and_abi() {
        let source = Path::new("/src/executorch");
        for vulkan in [false, true] {
            let mut linux =
                cmake_defines("aarch64-unknown-linux-gnu", HOST, &opts(vulkan), None).unwrap();
            let tc = android("aarch64-linux-android", false);
            let mut droid =
                cmake_defines("aarch64-linux-android", HOST, &opts(vulkan), Some(&tc)).unwrap();
            linux.extend(kleidiai_define("aarch64-unknown-linux-gnu", source, true));
            droid.extend(kleidiai_define("aarch64-linux-android", source, true));
            let only = |a: &[(String, String)], b: &[(String, String)]| -> Vec<String> {
                let mut keys: Vec<String> = a
                    .iter()
                    .filter(|entry| !b.contains(entry))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.sort();
                keys
            };
            assert_eq!(
                only(&linux, &droid),
                ["CMAKE_SYSTEM_NAME", "CMAKE_SYSTEM_PROCESSOR"],
                "vulkan={vulkan}"
            );
            assert_eq!(
                only(&droid, &linux),
                [
                    "ANDROID_ABI",
                    "ANDROID_PLATFORM",
                    "ANDROID_STL",
                    "CMAKE_TOOLCHAIN_FILE"
                ],
                "vulkan={vulkan}"
            );
        }
    }

    #[test]
    fn android_without_ndk_is_an_error() {
        let err = cmake_defines("aarch64-linux-android", HOST, &opts(false), None).unwrap_err();
        assert!(err.contains("NDK"), "{err}");
    }

    #[test]
    fn vulkan_on_and_off() {
        for triple in ["x86_64-unknown-linux-gnu", "aarch64-linux-android"] {
            let tc = AndroidToolchain::new(triple, Path::new("/ndk"), 26, HOST, false);
            let tc = tc.as_ref();
            let on = cmake_defines(triple, HOST, &opts(true), tc).unwrap();
            assert_eq!(get(&on, "EXECUTORCH_BUILD_VULKAN"), Some("ON"));
            assert_eq!(get(&on, "GLSLC_PATH"), Some("/usr/bin/glslc"));
            let off = cmake_defines(triple, HOST, &opts(false), tc).unwrap();
            assert_eq!(get(&off, "EXECUTORCH_BUILD_VULKAN"), Some("OFF"));
            assert_eq!(get(&off, "GLSLC_PATH"), None);
        }
        let mut no_glslc = opts(true);
        no_glslc.glslc = None;
        let err = cmake_defines(HOST, HOST, &no_glslc, None).unwrap_err();
        assert!(err.contains("glslc"), "{err}");
    }

    /// (feature `static`, feature `android-static-stl`), all four.
    const FEATURE_COMBOS: [(bool, bool); 4] =
        [(false, false), (false, true), (true, false), (true, true)];

    /// Every target x vulkan x (static, android-static-stl) combination: invariants that must
    /// hold everywhere.
    #[test]
    fn full_matrix() {
        let targets = [
            "x86_64-unknown-linux-gnu",
            "aarch64-unknown-linux-gnu",
            "x86_64-unknown-linux-musl",
            "aarch64-linux-android",
            "armv7-linux-androideabi",
            "x86_64-linux-android",
        ];
        for triple in targets {
            for vulkan in [false, true] {
                for (single_file, android_static_stl) in FEATURE_COMBOS {
                    let req = StaticRequest {
                        single_file,
                        android_static_stl,
                    };
                    let tc = AndroidToolchain::new(
                        triple,
                        Path::new("/ndk"),
                        28,
                        HOST,
                        req.static_stl(),
                    );
                    let d = cmake_defines(triple, HOST, &opts(vulkan), tc.as_ref()).unwrap();
                    let what = format!("{triple} vulkan={vulkan} {req:?}");
                    // `static` implies the static STL, as the feature does in Cargo.toml.
                    let static_stl = single_file || android_static_stl;
                    assert_eq!(get(&d, "BUILD_SHARED_LIBS"), Some("OFF"), "{what}");
                    assert_eq!(
                        get(&d, "CMAKE_POSITION_INDEPENDENT_CODE"),
                        Some("ON"),
                        "{what}"
                    );
                    assert_eq!(get(&d, "CMAKE_EXE_LINKER_FLAGS"), None, "{what}");
                    assert_eq!(get(&d, "EXECUTORCH_BUILD_XNNPACK"), Some("ON"), "{what}");
                    assert_eq!(
                        get(&d, "EXECUTORCH_BUILD_KERNELS_QUANTIZED"),
                        Some("ON"),
                        "{what}"
                    );
                    assert_eq!(get(&d, "EXECUTORCH_BUILD_TESTS"), Some("OFF"), "{what}");
                    let want_vulkan = if vulkan { "ON" } else { "OFF" };
                    assert_eq!(
                        get(&d, "EXECUTORCH_BUILD_VULKAN"),
                        Some(want_vulkan),
                        "{what}"
                    );
                    let android = triple.contains("android");
                    assert_eq!(get(&d, "CMAKE_TOOLCHAIN_FILE").is_some(), android, "{what}");
                    if android {
                        assert_eq!(get(&d, "ANDROID_PLATFORM"), Some("android-28"), "{what}");
                        let stl = if static_stl {
                            "c++_static"
                        } else {
                            "c++_shared"
                        };
                        assert_eq!(get(&d, "ANDROID_STL"), Some(stl), "{what}");
                    } else {
                        assert_eq!(get(&d, "ANDROID_STL"), None, "{what}");
                    }
                    // Every key is set once.
                    let mut keys: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
                    keys.sort_unstable();
                    let n = keys.len();
                    keys.dedup();
                    assert_eq!(keys.len(), n, "{what}: duplicate cache entries");
                }
            }
        }
    }

    #[test]
    fn kleidiai_from_the_tree_on_aarch64_only() {
        let src = Path::new("/src/executorch");
        let (k, v) = kleidiai_define("aarch64-unknown-linux-gnu", src, true).unwrap();
        assert_eq!(k, "KLEIDIAI_SOURCE_DIR");
        assert_eq!(v, "/src/executorch/backends/xnnpack/third-party/kleidiai");
        assert!(kleidiai_define("aarch64-linux-android", src, true).is_some());
        assert_eq!(
            kleidiai_define("aarch64-unknown-linux-gnu", src, false),
            None
        );
        assert_eq!(kleidiai_define("x86_64-unknown-linux-gnu", src, true), None);
        assert_eq!(kleidiai_define("armv7-linux-androideabi", src, true), None);
    }

    #[test]
    fn unsupported_source_target() {
        assert!(cmake_defines("x86_64-pc-windows-msvc", HOST, &opts(false), None).is_err());
    }

    #[test]
    fn static_plan_whole_archives_registration_libs_first() {
        let available = lib_names(
            [
                "libexecutorch.a",
                "libexecutorch_core.a",
                "libportable_ops_lib.a",
                "libportable_kernels.a",
                "liboptimized_native_cpu_ops_lib.a",
                "libquantized_ops_lib.a",
                "libxnnpack_backend.a",
                "libvulkan_backend.a",
                "libXNNPACK.a",
                "libcpuinfo.a",
                "libextension_module_static.a",
                "README.txt",
            ],
            true,
        );
        let plan = static_link_plan(&available, false);
        let names: Vec<&str> = plan.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "xnnpack_backend",
                "optimized_native_cpu_ops_lib",
                "quantized_ops_lib",
                "executorch",
                "extension_module_static",
                "portable_kernels",
                "XNNPACK",
                "cpuinfo",
                "executorch_core"
            ]
        );
        assert!(plan[..4].iter().all(|l| l.whole) && plan[4..].iter().all(|l| !l.whole));
        assert!(
            !names.contains(&"portable_ops_lib"),
            "would register operators twice"
        );
        assert!(STATIC_EXCLUDED.contains(&"portable_ops_lib"));
        let with_vulkan = static_link_plan(&available, true);
        assert!(with_vulkan
            .iter()
            .any(|l| l.name == "vulkan_backend" && l.whole));
    }

    /// The archives a source build of ExecuTorch main@cff6f4dd installs (x86_64 Linux, XNNPACK,
    /// optimized + quantized kernels; `ls lib/`), and the link line made of them.
    #[test]
    fn static_plan_for_the_source_build_install() {
        let installed = [
            "libXNNPACK.a",
            "libbundled_program.a",
            "libcpublas.a",
            "libcpuinfo.a",
            "libeigen_blas.a",
            "libetdump.a",
            "libexecutorch.a",
            "libexecutorch_core.a",
            "libextension_data_loader.a",
            "libextension_evalue_util.a",
            "libextension_flat_tensor.a",
            "libextension_module.a",
            "libextension_module_static.a",
            "libextension_named_data_map.a",
            "libextension_runner_util.a",
            "libextension_tensor.a",
            "libextension_threadpool.a",
            "libflatccrt.a",
            "libkernels_util_all_deps.a",
            "liboptimized_kernels.a",
            "liboptimized_native_cpu_ops_lib.a",
            "liboptimized_ops_lib.a",
            "liboptimized_portable_kernels.a",
            "liboptimized_portable_ops_lib.a",
            "libportable_kernels.a",
            "libportable_ops_lib.a",
            "libpthreadpool.a",
            "libquantized_kernels.a",
            "libquantized_ops_lib.a",
            "libxnnpack-microkernels-prod.a",
            "libxnnpack_backend.a",
        ];
        let plan = static_link_plan(&lib_names(installed, true), false);
        let line: Vec<String> = plan
            .iter()
            .map(|l| format!("{}{}", if l.whole { "+" } else { "" }, l.name))
            .collect();
        assert_eq!(
            line,
            [
                "+xnnpack_backend",
                "+optimized_native_cpu_ops_lib",
                "+quantized_ops_lib",
                "+executorch",
                "extension_module_static",
                "extension_module",
                "extension_data_loader",
                "extension_tensor",
                "extension_flat_tensor",
                "extension_named_data_map",
                "etdump",
                "bundled_program",
                "flatccrt",
                "optimized_kernels",
                "optimized_portable_kernels",
                "quantized_kernels",
                "portable_kernels",
                "kernels_util_all_deps",
                "cpublas",
                "eigen_blas",
                "XNNPACK",
                "xnnpack-microkernels-prod",
                "extension_threadpool",
                "pthreadpool",
                "cpuinfo",
                "executorch_core",
            ]
        );
        // Operator libraries that would register operators a second time stay out.
        for out in [
            "portable_ops_lib",
            "optimized_ops_lib",
            "optimized_portable_ops_lib",
        ] {
            assert!(
                !line.iter().any(|l| l.trim_start_matches('+') == out),
                "{out}"
            );
        }
        // The thread pool is linked, so the shim compiles with ET_USE_THREADPOOL.
        assert!(plan.iter().any(|l| l.name.contains("threadpool")));
    }

    /// Feature `llm-ops`: ExecuTorch's LLM kernels are configured (runtime half only), and
    /// the archive they install (`ls lib/` of that build: the list above plus
    /// `libcustom_ops.a`) is linked whole, first, because it registers its operators from
    /// static initializers. Without the feature nothing changes, so the other builds keep
    /// their build directory.
    #[test]
    fn llm_ops_configure_and_link_the_custom_operators() {
        let mut with = opts(false);
        with.llm_ops = true;
        let on = cmake_defines(HOST, HOST, &with, None).unwrap();
        assert_eq!(get(&on, "EXECUTORCH_BUILD_KERNELS_LLM"), Some("ON"));
        assert_eq!(get(&on, "EXECUTORCH_BUILD_KERNELS_LLM_AOT"), Some("OFF"));
        assert_eq!(
            get(&on, "EXECUTORCH_BUILD_KERNELS_OPTIMIZED"),
            Some("ON"),
            "ExecuTorch requires the optimized kernels for the LLM kernels"
        );
        let off = cmake_defines(HOST, HOST, &opts(false), None).unwrap();
        assert_eq!(get(&off, "EXECUTORCH_BUILD_KERNELS_LLM"), None);
        assert_eq!(
            off.len() + 2,
            on.len(),
            "the feature adds exactly its two entries"
        );

        let installed = lib_names(
            [
                "libcustom_ops.a",
                "libcpublas.a",
                "libeigen_blas.a",
                "libxnnpack_backend.a",
                "libexecutorch.a",
                "libexecutorch_core.a",
            ],
            true,
        );
        let plan = static_link_plan(&installed, false);
        let custom = plan.iter().position(|l| l.name == "custom_ops").unwrap();
        assert!(plan[custom].whole);
        // Before what it uses: the BLAS it calls and the core.
        for used in ["cpublas", "eigen_blas", "executorch_core"] {
            let at = plan.iter().position(|l| l.name == used).unwrap();
            assert!(custom < at, "custom_ops must come before {used}");
        }
    }

    #[test]
    fn shared_plan_for_the_wheel() {
        let available = lib_names(
            [
                "libexecutorch.so",
                "libexecutorch_backend_openvino.so",
                "libexecutorch_backend_xnnpack.so",
                "libexecutorch_kernels_optimized.so",
                "libexecutorch_kernels_quantized.so",
                "libexecutorch_threadpool.so",
                "libexecutorch_etdump.so",
            ],
            false,
        );
        let plan = shared_link_plan(&available).unwrap();
        let kept: Vec<&str> = plan
            .iter()
            .filter(|l| l.whole)
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(kept, SHARED_REGISTRATION);
        assert!(
            !plan.iter().any(|l| l.name.contains("openvino")),
            "optional backends are not linked"
        );
        assert_eq!(shared_link_plan(&["executorch_threadpool".into()]), None);
    }

    /// The expected C++ runtime for one target under each of [`FEATURE_COMBOS`].
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Cxx {
        /// `cc`'s default shared library.
        Shared,
        /// `libstdc++.a` after the runtime.
        Libstdcxx,
        /// The NDK's `c++_static` + `c++abi` after the runtime.
        NdkStatic,
        /// Refused.
        Refused,
    }
    use Cxx::*;

    /// Written out per target (not derived from the function's own rules), one column per
    /// entry of `FEATURE_COMBOS`: (no feature, android-static-stl, static, both).
    const CXX_TABLE: &[(&str, [Cxx; 4])] = &[
        (
            "x86_64-unknown-linux-gnu",
            [Shared, Shared, Libstdcxx, Libstdcxx],
        ),
        (
            "aarch64-unknown-linux-gnu",
            [Shared, Shared, Libstdcxx, Libstdcxx],
        ),
        (
            "armv7-unknown-linux-gnueabihf",
            [Shared, Shared, Libstdcxx, Libstdcxx],
        ),
        (
            "x86_64-unknown-linux-musl",
            [Shared, Shared, Libstdcxx, Libstdcxx],
        ),
        (
            "aarch64-unknown-linux-musl",
            [Shared, Shared, Libstdcxx, Libstdcxx],
        ),
        (
            "aarch64-linux-android",
            [Shared, NdkStatic, NdkStatic, NdkStatic],
        ),
        (
            "armv7-linux-androideabi",
            [Shared, NdkStatic, NdkStatic, NdkStatic],
        ),
        (
            "x86_64-linux-android",
            [Shared, NdkStatic, NdkStatic, NdkStatic],
        ),
        ("aarch64-apple-darwin", [Shared, Shared, Shared, Shared]),
        ("x86_64-apple-darwin", [Shared, Shared, Shared, Shared]),
        ("x86_64-pc-windows-msvc", [Shared, Shared, Refused, Refused]),
        ("x86_64-pc-windows-gnu", [Shared, Shared, Refused, Refused]),
        ("x86_64-unknown-freebsd", [Shared, Shared, Refused, Refused]),
    ];

    #[test]
    fn cxx_runtime_every_target_and_feature() {
        for (triple, row) in CXX_TABLE {
            for ((single_file, android_static_stl), want) in FEATURE_COMBOS.into_iter().zip(row) {
                let req = StaticRequest {
                    single_file,
                    android_static_stl,
                };
                let what = format!("{triple} {req:?}");
                let got = cxx_runtime_plan(triple, req);
                let libs = got.as_ref().map(|p| p.link_libs.clone());
                match want {
                    Shared => assert_eq!(libs, Ok(None), "{what}"),
                    Libstdcxx => {
                        assert_eq!(libs, Ok(Some(vec!["static:-bundle=stdc++"])), "{what}")
                    }
                    NdkStatic => assert_eq!(
                        libs,
                        Ok(Some(vec![
                            "static:-bundle=c++_static",
                            "static:-bundle=c++abi"
                        ])),
                        "{what}"
                    ),
                    Refused => {
                        let err = got.unwrap_err();
                        assert!(err.contains(triple) && err.contains("`static`"), "{err}");
                    }
                }
                // Nothing asked, nothing said; anything static says what stays shared.
                if let Ok(plan) = cxx_runtime_plan(triple, req) {
                    assert_eq!(
                        plan.note.is_empty(),
                        *want == Shared && !(single_file && triple.contains("apple")),
                        "{what}: {}",
                        plan.note
                    );
                }
            }
        }
    }

    #[test]
    fn cxx_runtime_notes_say_what_stays_shared() {
        let both = StaticRequest {
            single_file: true,
            android_static_stl: true,
        };
        let note = |t| cxx_runtime_plan(t, both).unwrap().note;
        assert!(note("x86_64-unknown-linux-gnu").contains("libgcc_eh"));
        assert!(note("x86_64-unknown-linux-gnu").contains("only glibc"));
        // The static unwinder: Linux glibc under `static` only.
        for (triple, row) in CXX_TABLE {
            for (single_file, android_static_stl) in FEATURE_COMBOS {
                let req = StaticRequest {
                    single_file,
                    android_static_stl,
                };
                if let Ok(plan) = cxx_runtime_plan(triple, req) {
                    assert_eq!(
                        plan.static_unwinder,
                        single_file && triple.contains("-linux-gnu"),
                        "{triple} {req:?}"
                    );
                    if plan.static_unwinder {
                        assert!(row.contains(&Libstdcxx));
                    }
                }
            }
        }
        assert!(note("x86_64-unknown-linux-musl").contains("untested"));
        assert!(note("aarch64-apple-darwin").contains("libc++"));
        assert!(note("aarch64-linux-android").contains("c++_static"));
    }

    #[test]
    fn static_feature_refuses_shared_runtimes() {
        for kind in [
            RuntimeKind::Wheel,
            RuntimeKind::SharedInstall,
            RuntimeKind::StaticInstall,
        ] {
            assert_eq!(
                static_check(false, kind),
                Ok(()),
                "{kind:?} without `static`"
            );
        }
        assert_eq!(static_check(true, RuntimeKind::StaticInstall), Ok(()));

        let wheel = static_check(true, RuntimeKind::Wheel).unwrap_err();
        for needed in [
            "EXECUTORCH_SOURCE_DIR",
            "`cmake`",
            "shared libraries",
            "third_party/executorch",
            "without `--features static`",
        ] {
            assert!(wheel.contains(needed), "missing {needed:?}: {wheel}");
        }
        assert!(!wheel.contains('\n'), "one paragraph: {wheel}");

        let shared = static_check(true, RuntimeKind::SharedInstall).unwrap_err();
        for needed in [
            "EXECUTORCH_DIR",
            "EXECUTORCH_SOURCE_DIR",
            "BUILD_SHARED_LIBS=OFF",
        ] {
            assert!(shared.contains(needed), "missing {needed:?}: {shared}");
        }
        assert!(!shared.contains('\n'), "one paragraph: {shared}");
    }

    #[test]
    fn static_build_cmake_entries() {
        let o = opts(false);
        let d = cmake_defines(HOST, HOST, &o, None).unwrap();
        // Archives in every source build; `static` changes only the C++ runtime, so the build
        // with and without it is the same CMake build.
        assert_eq!(get(&d, "BUILD_SHARED_LIBS"), Some("OFF"));
        assert_eq!(get(&d, "CMAKE_POSITION_INDEPENDENT_CODE"), Some("ON"));
        // rustc links the executable that ships; no linker flags for CMake executables.
        assert_eq!(get(&d, "CMAKE_EXE_LINKER_FLAGS"), None);
        // musl cross build from a glibc host: configured like any Linux cross build.
        let musl = cmake_defines("x86_64-unknown-linux-musl", HOST, &o, None).unwrap();
        assert_eq!(get(&musl, "CMAKE_SYSTEM_NAME"), Some("Linux"));
        assert_eq!(get(&musl, "CMAKE_SYSTEM_PROCESSOR"), Some("x86_64"));
        assert_eq!(get(&musl, "BUILD_SHARED_LIBS"), Some("OFF"));
        // Android: `static` alone (without the STL feature) still gets c++_static.
        let req = StaticRequest {
            single_file: true,
            android_static_stl: false,
        };
        let tc = android("aarch64-linux-android", req.static_stl());
        let d = cmake_defines("aarch64-linux-android", HOST, &o, Some(&tc)).unwrap();
        assert_eq!(get(&d, "ANDROID_STL"), Some("c++_static"));
        assert_eq!(get(&d, "BUILD_SHARED_LIBS"), Some("OFF"));
        assert!(cmake_defines("x86_64-pc-windows-msvc", HOST, &o, None).is_err());
    }

    #[test]
    fn defines_match_the_wheel_cmake_config() {
        assert_eq!(
            cpp_defines(true),
            [
                "C10_USING_CUSTOM_GENERATED_MACROS",
                "ET_EVENT_TRACER_ENABLED",
                "ET_USE_THREADPOOL"
            ]
        );
        assert_eq!(cpp_defines(false).len(), 2);
    }

    #[test]
    fn shim_keeps_every_runtime_library_and_looks_beside_itself_first() {
        let libs = shared_link_plan(&[
            "executorch".into(),
            "executorch_kernels_optimized".into(),
            "executorch_backend_xnnpack".into(),
        ])
        .unwrap();
        let args = shim_link_args("linux", "/rt/lib", &libs);
        let pos = |a: &str| args.iter().position(|x| x == a).unwrap();
        assert!(pos("-Wl,--no-as-needed") < pos("-lexecutorch_kernels_optimized"));
        assert!(pos("-lexecutorch_backend_xnnpack") < pos("-Wl,--as-needed"));
        assert!(pos("-Wl,-rpath,$ORIGIN") < pos("-Wl,-rpath,/rt/lib"));
        assert!(args.contains(&"-Wl,--no-undefined".to_string()));
        let mac = shim_link_args("macos", "/rt/lib", &libs);
        assert!(mac.contains(&"-Wl,-rpath,@loader_path".to_string()));
        assert!(!mac.iter().any(|a| a.contains("as-needed")));
        assert_eq!(shim_file_name("android"), "libdiffulex_et.so");
        assert_eq!(shim_file_name("macos"), "libdiffulex_et.dylib");
    }
}
