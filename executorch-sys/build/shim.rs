//! The C ABI shim: bindgen over its header, `cc` for its implementation.

use std::path::PathBuf;

use crate::{plan, source, vars, Runtime};

/// The bindgen output for 64-bit targets, committed so that a machine without libclang still
/// builds (the README's commands must work on a fresh machine). Regenerate it by building with
/// libclang installed and copying `$OUT_DIR/bindings.rs` here; a test fails while they differ.
const COMMITTED_BINDINGS: &str = "src/bindings_64.rs";

/// Writes `$OUT_DIR/bindings.rs`: bindgen over `shim/diffulex_et.h` when libclang is available,
/// otherwise the committed copy (64-bit targets only: the header's layout depends on pointer
/// width). Emits `cfg(dlx_bindgen_ran)` when bindgen ran, so the staleness test knows.
pub fn generate_bindings() {
    println!("cargo::rustc-check-cfg=cfg(dlx_bindgen_ran)");
    let manifest = PathBuf::from(vars::cargo("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(vars::cargo("OUT_DIR")).join("bindings.rs");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    if clang_sys::load().is_ok() {
        run_bindgen(&manifest, &out);
        println!("cargo:rustc-cfg=dlx_bindgen_ran");
        return;
    }
    let header = manifest.join("shim").join("diffulex_et.h");
    if vars::cargo("CARGO_CFG_TARGET_POINTER_WIDTH") != "64" {
        crate::fail(&format!(
            "bindgen needs libclang to generate bindings for {} on this 32-bit target \
             (the committed bindings are for 64-bit targets).\n  Install it (Debian/Ubuntu: \
             `apt-get install libclang-dev`) or set LIBCLANG_PATH.",
            header.display()
        ));
    }
    crate::log("libclang not found: using the committed bindings (src/bindings_64.rs)");
    if let Err(e) = std::fs::copy(manifest.join(COMMITTED_BINDINGS), &out) {
        crate::fail(&format!(
            "copying {COMMITTED_BINDINGS} to {}: {e}",
            out.display()
        ));
    }
}

fn run_bindgen(manifest: &std::path::Path, out: &std::path::Path) {
    let header = manifest.join("shim").join("diffulex_et.h");
    let mut builder = bindgen::Builder::default()
        .header(header.display().to_string())
        .allowlist_function("dlx_.*")
        .allowlist_type("dlx_.*")
        .allowlist_var("DLX_.*")
        // Freestanding: clang's own stdint.h/stddef.h suffice, so bindings need no target
        // sysroot (cross and Android builds) for this libc-free header.
        .clang_arg("-ffreestanding")
        .prepend_enum_name(false)
        .layout_tests(true)
        .generate_cstr(true);
    let target = vars::cargo("TARGET");
    if let Ok(Some(tc)) = source::android_toolchain(&target, &vars::cargo("HOST")) {
        builder = builder.clang_args(tc.clang_args());
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        crate::fail(&format!(
            "bindgen failed on {} ({e}).\n  bindgen needs libclang: install it \
             (Debian/Ubuntu: `apt-get install libclang-dev`) or set LIBCLANG_PATH.",
            header.display()
        ))
    });
    if let Err(e) = bindings.write_to_file(out) {
        crate::fail(&format!("writing {}: {e}", out.display()));
    }
}

/// Compiles the shim against the runtime's headers. When `cxx` links the C++ runtime itself
/// (static), `cc` links none: a second, dynamic `-lstdc++` / `-lc++_shared` from `cc` would pull
/// the shared library back in beside the static one.
pub fn compile(runtime: &Runtime, cxx: &plan::CxxRuntimePlan) {
    let manifest = PathBuf::from(vars::cargo("CARGO_MANIFEST_DIR"));
    let has_threadpool = runtime.libs.iter().any(|l| l.name.contains("threadpool"));
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(manifest.join("shim").join("diffulex_et.cpp"))
        .include(manifest.join("shim"))
        .includes(&runtime.include_dirs)
        .warnings(true)
        // ExecuTorch headers trip these; they are not about the shim's own code.
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers");
    for define in plan::cpp_defines(has_threadpool) {
        build.define(define, None);
    }
    if cxx.link_libs.is_some() {
        build.cpp_link_stdlib(None);
    }
    // The crate version in the archive name keeps two versions of this crate in one link apart.
    build.compile(&format!(
        "diffulex_et_shim_{}",
        vars::cargo("CARGO_PKG_VERSION").replace('.', "_")
    ));
}
