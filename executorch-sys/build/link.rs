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
    if cxx.static_unwinder {
        static_unwinder();
    }
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

/// Makes rustc's `-lgcc_s` (Rust's standard library asks for the shared unwinder by name) find
/// the toolchain's static unwinder: `libgcc_eh.a` copied as `libgcc_s.a` into a directory that
/// comes first on the search path (`-L` of build scripts precede the compiler's own
/// directories). Without a `libgcc_eh.a` the binary keeps `libgcc_s.so.1` and the log says so.
fn static_unwinder() {
    let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
    let found = std::process::Command::new(compiler.path())
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(eh) = found else {
        crate::log(
            "no libgcc_eh.a in the C compiler's search path: the binary keeps libgcc_s.so.1 \
             (the unwinder) as a dynamic dependency",
        );
        return;
    };
    let dir = std::path::PathBuf::from(vars::cargo("OUT_DIR")).join("static-unwinder");
    let copied =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(&eh, dir.join("libgcc_s.a")));
    match copied {
        Ok(_) => println!("cargo:rustc-link-search=native={}", dir.display()),
        Err(e) => crate::log(&format!(
            "copying {} failed ({e}): the binary keeps libgcc_s.so.1",
            eh.display()
        )),
    }
}
