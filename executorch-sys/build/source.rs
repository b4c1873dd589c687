//! Source path: build ExecuTorch with CMake (through the `cmake` crate) and link the static
//! archives it installs. The option table and link order live in `plan.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::plan::{self, AndroidToolchain, SourceOptions};
use crate::{prebuilt, vars, Runtime};

/// Builds and installs ExecuTorch from `src` for `target` as static archives (with or without
/// feature `static`, which decides only how the C++ runtime is linked).
pub fn build(src: &Path, target: &str, vulkan: bool, llm_ops: bool) -> Result<Runtime, String> {
    if !src.join("CMakeLists.txt").is_file() {
        return Err(format!(
            "{} is not an ExecuTorch source checkout (no CMakeLists.txt); set \
             EXECUTORCH_SOURCE_DIR to a checkout with its submodules",
            src.display()
        ));
    }
    if llm_ops && !src.join("third-party/ao/torchao").is_dir() {
        return Err(format!(
            "feature `llm-ops` compiles ExecuTorch's LLM custom operators, which include torchao \
             headers, but {} is empty: fetch the `third-party/ao` submodule \
             (`git submodule update --init third-party/ao`, or `WITH_AO=1 \
             tools/executorch_source.sh`)",
            src.join("third-party/ao").display()
        ));
    }
    let host = vars::cargo("HOST");
    check_cmake(target)?;
    let android = android_toolchain(target, &host)?;
    let opts = SourceOptions {
        vulkan,
        build_type: vars::get(vars::EXECUTORCH_BUILD_TYPE).unwrap_or_else(|| "Release".into()),
        glslc: if vulkan {
            find_glslc(android.as_ref())
        } else {
            None
        },
        llm_ops,
    };
    let mut defines = plan::cmake_defines(target, &host, &opts, android.as_ref())?;
    // ExecuTorch's kernel registration code is generated at configure time by Python scripts
    // that import PyTorch's `torchgen` (and the optimized kernels include ATen headers from the
    // `torch` package): the build needs a Python with `torch` installed, such as the exporter's.
    let python = find_python(src)?;
    defines.push(("PYTHON_EXECUTABLE".into(), python.display().to_string()));
    let kleidiai = plan::kleidiai_dir(src).join("CMakeLists.txt").is_file();
    defines.extend(plan::kleidiai_define(target, src, kleidiai));

    // One build directory per (source, target, options, compilers), shared by every Cargo
    // profile and feature set of this target directory: the build takes many minutes, and
    // `cargo test` after `cargo build --features static` should not start it again.
    let out_dir = build_dir(src, target, &defines)?;
    crate::log(&format!(
        "building ExecuTorch from source at {} for {target} in {} (many minutes the first \
         time; CMake's output is in this package's build-script output)",
        src.display(),
        out_dir.display()
    ));
    let mut config = cmake::Config::new(src);
    config.out_dir(&out_dir);
    // Release by default: a Debug ExecuTorch is many times slower, whatever the Cargo profile.
    config.profile(&opts.build_type);
    // No flags derived from the Cargo profile (`-O0 -g` in dev builds): CMake's build type
    // decides, and the archives do not depend on the Cargo profile.
    config.no_default_flags(true);
    for (key, value) in &defines {
        config.define(key, value);
    }
    // FlatCC writes its runtime library into the *source* tree (third-party/flatcc/lib), so two
    // builds from one tree (x86_64 and an aarch64 cross build) would install each other's
    // `libflatccrt.a`. One subdirectory per build directory keeps them apart. (ExecuTorch's
    // configure empties third-party/flatcc/lib each time; a build then re-archives its own.)
    if let Some(name) = out_dir.file_name() {
        config.define(
            "FLATCC_INSTALL_LIB",
            format!("lib/{}", name.to_string_lossy()),
        );
    }
    let prefix = config.build();
    let mut runtime = prebuilt::from_dir(&prefix, "CMAKE_INSTALL_PREFIX", vulkan)?;
    if !runtime.static_libs {
        crate::log("the source build installed shared libraries; linking them as shared");
    }
    if let Some(tc) = &android {
        // The C++ runtime the NDK build used; cc links the same one for the shim.
        runtime.origin = format!(
            "source build for {} ({}, API {})",
            tc.abi,
            tc.stl_lib(),
            tc.api
        );
    } else {
        runtime.origin = format!(
            "source build for {target} installed in {}",
            prefix.display()
        );
    }
    // The source's own version (version.txt), which may differ from the one the shim is
    // written for: docs/source-build.md says which source is tested.
    if let Ok(v) = std::fs::read_to_string(src.join("version.txt")) {
        runtime.origin = format!(
            "{} (version.txt of the source: {})",
            runtime.origin,
            v.trim()
        );
    }
    Ok(runtime)
}

/// The NDK toolchain for Android targets; `None` for others.
pub fn android_toolchain(target: &str, host: &str) -> Result<Option<AndroidToolchain>, String> {
    if plan::android_abi(target).is_none() {
        return Ok(None);
    }
    let ndk = vars::NDK_VARS
        .iter()
        .find_map(|v| vars::get(v))
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "target {target} needs the Android NDK: set ANDROID_NDK_HOME (or ANDROID_NDK) to \
                 the NDK root (r26 or newer; from the Android SDK manager or the NDK downloads page)"
            )
        })?;
    if !ndk.join("build/cmake/android.toolchain.cmake").is_file() {
        return Err(format!(
            "{} does not look like an NDK (no build/cmake/android.toolchain.cmake)",
            ndk.display()
        ));
    }
    let api = match vars::get(vars::EXECUTORCH_ANDROID_API) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("EXECUTORCH_ANDROID_API={v} is not a number"))?,
        None => 26,
    };
    let static_stl = crate::static_request().static_stl();
    Ok(AndroidToolchain::new(target, &ndk, api, host, static_stl))
}

/// Fails early, with what to install, when the `cmake` tool is missing: the `cmake` crate would
/// only report a failed process spawn. Skipped when one of the variables the `cmake` crate reads
/// names the executable.
fn check_cmake(target: &str) -> Result<(), String> {
    let named = [
        "CMAKE".to_string(),
        format!("CMAKE_{target}"),
        format!("CMAKE_{}", target.replace('-', "_")),
        "TARGET_CMAKE".to_string(),
        "HOST_CMAKE".to_string(),
    ]
    .iter()
    .any(|v| vars::get(v).is_some());
    if named || on_path("cmake").is_some() {
        return Ok(());
    }
    Err(
        "building ExecuTorch from source needs the `cmake` tool, and none is on PATH: \
         install it (Debian/Ubuntu: `apt-get install cmake`; macOS: `brew install cmake`) or \
         set CMAKE to its path"
            .to_string(),
    )
}

/// The first `name` file in a `PATH` directory.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// `GLSLC`, then `glslc` on PATH, then the NDK's shader-tools.
fn find_glslc(android: Option<&AndroidToolchain>) -> Option<PathBuf> {
    if let Some(p) = vars::get(vars::GLSLC) {
        return Some(PathBuf::from(p));
    }
    on_path("glslc").or_else(|| {
        let tc = android?;
        let p = tc.ndk.join("shader-tools").join(tc.host_tag).join("glslc");
        p.is_file().then_some(p)
    })
}

/// The build directory of a source build: `<target dir>/executorch-source/<target>-<hash>`,
/// where the hash covers the source path, the CMake entries and the compiler variables, or
/// `EXECUTORCH_BUILD_DIR` when set.
fn build_dir(src: &Path, target: &str, defines: &[(String, String)]) -> Result<PathBuf, String> {
    if let Some(dir) = vars::get(vars::EXECUTORCH_BUILD_DIR) {
        return Ok(PathBuf::from(dir));
    }
    let mut hasher = Sha256::new();
    let src = src.canonicalize().unwrap_or_else(|_| src.to_path_buf());
    hasher.update(src.display().to_string());
    hasher.update(target);
    for (k, v) in defines {
        hasher.update(format!("\n{k}={v}"));
    }
    let t = target.replace('-', "_");
    for var in ["CC", "CXX", "CFLAGS", "CXXFLAGS", "AR"] {
        for name in [
            format!("{var}_{target}"),
            format!("{var}_{t}"),
            var.to_string(),
        ] {
            if let Some(v) = vars::get(&name) {
                hasher.update(format!("\n{name}={v}"));
            }
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    // OUT_DIR is <target dir>/[<triple>/]<profile>/build/executorch-sys-<hash>/out.
    let out = PathBuf::from(vars::cargo("OUT_DIR"));
    let base = out
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.clone());
    Ok(base
        .join("executorch-source")
        .join(format!("{target}-{hex}")))
}

/// The Python that ExecuTorch's CMake runs for code generation: `EXECUTORCH_PYTHON`, else the
/// workspace's `.venv` (the exporter's environment), else `python3`; it must import `torchgen`
/// and `yaml`.
fn find_python(src: &Path) -> Result<PathBuf, String> {
    let manifest = PathBuf::from(vars::cargo("CARGO_MANIFEST_DIR"));
    let venv = manifest.join("..").join(".venv").join("bin").join("python");
    let python = vars::get(vars::EXECUTORCH_PYTHON)
        .map(PathBuf::from)
        .or_else(|| venv.is_file().then_some(venv))
        .unwrap_or_else(|| PathBuf::from("python3"));
    let check = Command::new(&python)
        .args(["-c", "import torchgen, yaml"])
        .output();
    match check {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "building ExecuTorch from {} runs its code generator with Python, which needs \
             PyTorch's `torchgen` and PyYAML, and `{} -c 'import torchgen, yaml'` failed:\n{}\n  \
             Set EXECUTORCH_PYTHON to a Python with `torch` installed (the exporter's \
             environment: tools/python_env.sh), or create .venv in the workspace.",
            src.display(),
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "building ExecuTorch from source needs Python (with `torch`) for its code \
             generator; running {} failed: {e}. Set EXECUTORCH_PYTHON.",
            python.display()
        )),
    }
}
