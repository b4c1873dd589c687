//! Link lines, rpath and the `links = "executorch"` metadata for dependents.
//!
//! Shared runtime (the wheel): kernels and delegates register themselves from static
//! initializers and nothing references them, so under the default `--as-needed` the linker
//! would drop them and methods would fail with "operator not found". Stable Rust has no
//! `-as-needed` link modifier, and `cargo:rustc-link-arg` only reaches this package's own
//! targets, so the list is also exported as `DEP_EXECUTORCH_NO_AS_NEEDED` for the final
//! package's build script to repeat (the root `build.rs` of diffulex-edge does).

use crate::{plan::CxxRuntimePlan, vars, Runtime};

/// Emits everything Cargo needs to link `runtime`, with the C++ runtime of `cxx` last.
pub fn emit(runtime: &Runtime, cxx: &CxxRuntimePlan) {
    let dir = runtime.lib_dir.display().to_string();
    let target_os = vars::cargo("CARGO_CFG_TARGET_OS");
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:lib_dir={dir}");
    if let Some(include) = runtime.include_dirs.first() {
        println!("cargo:include={}", include.display());
    }

    if runtime.static_libs {
        for lib in &runtime.libs {
            let kind = if lib.whole {
                "static:+whole-archive,-bundle"
            } else {
                "static:-bundle"
            };
            println!("cargo:rustc-link-lib={kind}={}", lib.name);
        }
        emit_cxx(cxx);
        println!("cargo:link_kind=static");
        if target_os == "android" {
            println!("cargo:rustc-link-lib=log");
        }
        return;
    }

    let mut keep = Vec::new();
    for lib in &runtime.libs {
        println!("cargo:rustc-link-lib=dylib={}", lib.name);
        if lib.whole {
            keep.push(lib.name.clone());
        }
    }
    emit_cxx(cxx);
    println!("cargo:link_kind=shared");
    println!("cargo:no_as_needed={}", keep.join(","));
    if target_os == "linux" || target_os == "android" {
        // For this crate's own tests; dependents repeat it from DEP_EXECUTORCH_NO_AS_NEEDED.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        for name in &keep {
            println!("cargo:rustc-link-arg=-l{name}");
        }
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    if target_os == "linux" || target_os == "android" || target_os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

/// The static C++ runtime, after every library that needs it (order matters to GNU ld).
fn emit_cxx(cxx: &CxxRuntimePlan) {
    for lib in cxx.link_libs.iter().flatten() {
        println!("cargo:rustc-link-lib={lib}");
    }
    println!(
        "cargo:cxx_runtime={}",
        if cxx.link_libs.is_some() {
            "static"
        } else {
            "shared"
        }
    );
}
