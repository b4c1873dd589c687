//! The C ABI shim: bindgen over its header, `cc` for its implementation.

use std::path::PathBuf;

use crate::{plan, source, vars, Runtime};

/// The bindgen outputs for 64-bit targets, committed so that a machine without libclang still
/// builds (the README's commands must work on a fresh machine). Regenerate them by building with
/// libclang installed and copying `$OUT_DIR/bindings*.rs` here; a test fails while they differ.
/// The first is the shim as a library loaded at run time (a struct of function pointers), the
/// second the shim linked into the binary (`extern "C"` declarations, static runtimes only).
const COMMITTED_BINDINGS: [(&str, &str, bool); 2] = [
    ("src/bindings_64.rs", "bindings.rs", true),
    ("src/bindings_64_linked.rs", "bindings_linked.rs", false),
];

/// Writes `$OUT_DIR/bindings.rs` and `$OUT_DIR/bindings_linked.rs`: bindgen over
/// `shim/diffulex_et.h` when libclang is available, otherwise the committed copies (64-bit
/// targets only: the header's layout depends on pointer width). Emits `cfg(dlx_bindgen_ran)`
/// when bindgen ran, so the staleness test knows.
pub fn generate_bindings() {
    println!("cargo::rustc-check-cfg=cfg(dlx_bindgen_ran)");
    let manifest = PathBuf::from(vars::cargo("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(vars::cargo("OUT_DIR"));
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    if clang_sys::load().is_ok() {
        for (_, out, dynamic) in COMMITTED_BINDINGS {
            run_bindgen(&manifest, &out_dir.join(out), dynamic);
        }
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
    crate::log("libclang not found: using the committed bindings (src/bindings_64*.rs)");
    for (committed, out, _) in COMMITTED_BINDINGS {
        if let Err(e) = std::fs::copy(manifest.join(committed), out_dir.join(out)) {
            crate::fail(&format!(
                "copying {committed} to {}: {e}",
                out_dir.display()
            ));
        }
    }
}

/// `dynamic`: the functions become fields of `ShimLibrary`, a struct that `libloading` fills
/// from the shim library at run time; otherwise they are `extern "C"` declarations.
fn run_bindgen(manifest: &std::path::Path, out: &std::path::Path, dynamic: bool) {
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
    if dynamic {
        builder = builder
            .dynamic_library_name("ShimLibrary")
            .dynamic_link_require_all(true);
    }
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

/// Compiles the shim against the runtime's headers.
///
/// - Static runtime: into an archive linked into the Rust crate, beside the runtime's archives.
///   When `cxx` links the C++ runtime itself (static), `cc` links none: a second, dynamic
///   `-lstdc++` / `-lc++_shared` from `cc` would pull the shared library back in.
/// - Shared runtime: into the shared library `libdiffulex_et`, which the Rust side opens at run
///   time (`src/loader.rs`); returns its path. See `link.rs` for why.
pub fn compile(runtime: &Runtime, cxx: &plan::CxxRuntimePlan) -> Option<PathBuf> {
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
    if runtime.static_libs {
        if cxx.link_libs.is_some() {
            build.cpp_link_stdlib(None);
        }
        // The crate version in the archive name keeps two versions of this crate in one link
        // apart.
        build.compile(&format!(
            "diffulex_et_shim_{}",
            vars::cargo("CARGO_PKG_VERSION").replace('.', "_")
        ));
        return None;
    }
    build.pic(true).cpp_link_stdlib(None);
    let objects = build.compile_intermediates();
    let out_dir = PathBuf::from(vars::cargo("OUT_DIR"));
    let target_os = vars::cargo("CARGO_CFG_TARGET_OS");
    let file_name = plan::shim_file_name(&target_os);
    let built = out_dir.join(file_name);
    let lib_dir = runtime.lib_dir.display().to_string();
    let mut link = build.get_compiler().to_command();
    link.args(&objects).arg("-o").arg(&built);
    for arg in plan::shim_link_args(&target_os, &lib_dir, &runtime.libs) {
        link.arg(arg);
    }
    match link.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => crate::fail(&format!(
            "linking {} failed ({:?}):\n{}",
            built.display(),
            link,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => crate::fail(&format!("running the C++ linker {link:?}: {e}")),
    }
    Some(crate::install::persist(&built, file_name))
}
