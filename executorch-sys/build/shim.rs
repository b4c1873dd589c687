//! The C ABI shim: bindgen over its header, `cc` for its implementation.

use std::path::PathBuf;

use crate::{plan, source, vars, Runtime};

/// Generates `$OUT_DIR/bindings.rs` from `shim/diffulex_et.h` (plain C, no ExecuTorch headers).
pub fn generate_bindings() {
    let manifest = PathBuf::from(vars::cargo("CARGO_MANIFEST_DIR"));
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
    let out = PathBuf::from(vars::cargo("OUT_DIR")).join("bindings.rs");
    if let Err(e) = bindings.write_to_file(&out) {
        crate::fail(&format!("writing {}: {e}", out.display()));
    }
}

/// Compiles the shim against the runtime's headers.
pub fn compile(runtime: &Runtime) {
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
    if vars::cargo("CARGO_FEATURE_ANDROID_STATIC_STL") == "1" {
        build.cpp_link_stdlib("c++_static");
    }
    // The crate version in the archive name keeps two versions of this crate in one link apart.
    build.compile(&format!(
        "diffulex_et_shim_{}",
        vars::cargo("CARGO_PKG_VERSION").replace('.', "_")
    ));
}
