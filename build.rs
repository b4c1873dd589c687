//! The root package links nothing itself: `executorch-sys` (a `links = "executorch"` crate) emits
//! the link lines and the rpath. This script only forwards the runtime's library directory as an
//! rpath for the `diffulex` binary, tests and examples of this package, so they start without
//! `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = std::env::var("DEP_EXECUTORCH_LIB_DIR") {
        let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
        if target_os == "linux" || target_os == "android" {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        } else if target_os == "macos" {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
