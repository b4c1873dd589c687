//! Link lines and the `links = "executorch"` metadata for dependents.
//!
//! Static runtime (source builds): the shim and the runtime's archives are linked into the
//! Rust crate; kernel and delegate archives with `+whole-archive`, a link modifier that Cargo
//! passes on to every final binary of every dependent, so nothing more is needed.
//!
//! Shared runtime (the wheel): nothing is linked into the Rust crate. The shim is its own shared
//! library, linked against the runtime with `--no-as-needed` and a RUNPATH (`shim.rs`), and
//! `src/loader.rs` opens it at run time. Linking the Rust crate against the runtime directly
//! does not work for dependents: kernels and delegates register themselves from static
//! initializers and nothing references them, so the linker's default `--as-needed` drops them
//! (no operator, no backend), and the rpath that lets a binary start would have to come from a
//! `rustc-link-arg`, which Cargo applies only to the package that prints it, never to a
//! dependent's binaries, tests, examples or cdylibs. Loading at run time also gives a binary
//! copied to another machine one documented place to find the runtime (beside itself) and
//! reports a missing runtime as an error instead of a loader failure before `main`.
//! (The same choice as `ort`'s `load-dynamic`.)

use std::path::Path;

use crate::{plan::CxxRuntimePlan, vars, Runtime};

/// Emits everything Cargo needs for `runtime`. `shim_library` is the shim's shared library for
/// a shared runtime (`None` for a static one).
pub fn emit(runtime: &Runtime, cxx: &CxxRuntimePlan, shim_library: Option<&Path>) {
    let dir = runtime.lib_dir.display().to_string();
    let target_os = vars::cargo("CARGO_CFG_TARGET_OS");
    println!("cargo:lib_dir={dir}");
    if let Some(include) = runtime.include_dirs.first() {
        println!("cargo:include={}", include.display());
    }

    if let Some(shim) = shim_library {
        // Read by `src/loader.rs` through `env!`: the last place it looks for the shim.
        println!("cargo:rustc-env=DLX_SHIM_LIBRARY={}", shim.display());
        println!("cargo:rustc-env=DLX_RUNTIME_LIB_DIR={dir}");
        let names: Vec<&str> = runtime.libs.iter().map(|l| l.name.as_str()).collect();
        println!("cargo:rustc-env=DLX_RUNTIME_LIBS={}", names.join(","));
        println!("cargo:shim_library={}", shim.display());
        println!("cargo:link_kind=shared");
        println!("cargo:cxx_runtime=shared");
        if target_os == "linux" || target_os == "android" {
            // libloading's dlopen lives in libdl on older glibc and Android.
            println!("cargo:rustc-link-lib=dylib=dl");
        }
        return;
    }

    println!("cargo:rustc-cfg=dlx_linked");
    println!("cargo:rustc-link-search=native={dir}");
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
