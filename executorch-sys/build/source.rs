//! Source path: build ExecuTorch with CMake (through the `cmake` crate) and link the static
//! archives it installs. The option table and link order live in `plan.rs`.

use std::path::{Path, PathBuf};

use crate::plan::{self, AndroidToolchain, SourceOptions, StaticRequest};
use crate::{prebuilt, vars, Runtime};

/// Builds and installs ExecuTorch from `src` for `target`; `request.single_file` (feature
/// `static`) builds static archives only.
pub fn build(
    src: &Path,
    target: &str,
    vulkan: bool,
    request: StaticRequest,
) -> Result<Runtime, String> {
    if !src.join("CMakeLists.txt").is_file() {
        return Err(format!(
            "{} is not an ExecuTorch source checkout (no CMakeLists.txt); set \
             EXECUTORCH_SOURCE_DIR to a checkout with its submodules",
            src.display()
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
        static_build: request.single_file,
    };
    let defines = plan::cmake_defines(target, &host, &opts, android.as_ref())?;

    crate::log(&format!(
        "building ExecuTorch from source at {} for {target}",
        src.display()
    ));
    let mut config = cmake::Config::new(src);
    // Release by default: a Debug ExecuTorch is many times slower, whatever the Cargo profile.
    config.profile(&opts.build_type);
    for (key, value) in &defines {
        config.define(key, value);
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
