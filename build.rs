//! The root package links nothing itself: `executorch-sys` (a `links = "executorch"` crate) emits
//! the link lines. Two things it cannot pass on to this package's binaries and tests (Cargo
//! applies `rustc-link-arg` only to the package that prints it), so they are repeated here from
//! its `DEP_EXECUTORCH_*` metadata:
//! - an rpath to the runtime's library directory, so `diffulex` starts without `LD_LIBRARY_PATH`;
//! - `--no-as-needed` for the kernel/delegate libraries of a shared runtime, which register
//!   themselves from static initializers and would otherwise be dropped by the linker.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = target_os == "linux" || target_os == "android";
    if let Ok(dir) = std::env::var("DEP_EXECUTORCH_LIB_DIR") {
        if elf || target_os == "macos" {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    if let Ok(keep) = std::env::var("DEP_EXECUTORCH_NO_AS_NEEDED") {
        let libs: Vec<&str> = keep.split(',').filter(|l| !l.is_empty()).collect();
        if elf && !libs.is_empty() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            for lib in libs {
                println!("cargo:rustc-link-arg=-l{lib}");
            }
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
