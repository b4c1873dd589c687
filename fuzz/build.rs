//! Same link fix-ups as the root build.rs (Cargo applies `rustc-link-arg` only to the package
//! that prints it): an rpath to the ExecuTorch runtime and `--no-as-needed` for the kernel and
//! delegate libraries that register themselves from static initializers. Reads the
//! `DEP_EXECUTORCH_*` metadata, hence the direct `executorch-sys` dependency.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = std::env::var("DEP_EXECUTORCH_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Ok(keep) = std::env::var("DEP_EXECUTORCH_NO_AS_NEEDED") {
        let libs: Vec<&str> = keep.split(',').filter(|l| !l.is_empty()).collect();
        if !libs.is_empty() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            for lib in libs {
                println!("cargo:rustc-link-arg=-l{lib}");
            }
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
