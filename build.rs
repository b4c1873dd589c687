//! The root package links nothing itself: `executorch-sys` decides how the runtime is reached
//! (a shim library opened at run time, or static archives linked in; see its `build/link.rs`),
//! and both work for any dependent with no build script of its own. This script only records
//! which one it was, for `diffulex --version` and `diffulex runtime`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_EXECUTORCH_LINK_KIND");
    let kind = std::env::var("DEP_EXECUTORCH_LINK_KIND").unwrap_or_else(|_| "none".into());
    println!("cargo:rustc-env=DIFFULEX_RUNTIME_LINK_KIND={kind}");
}
