//! Build script of `executorch-sys`: find or fetch the ExecuTorch runtime, compile the C shim,
//! generate its bindings and emit the link plan.
//!
//! The runtime comes from the first of these that applies (the path taken is printed as a
//! `cargo:warning` so it shows in every build log):
//! 1. `EXECUTORCH_DIR`: a prebuilt runtime (the 1.5.1 wheel's `executorch/` folder or a CMake
//!    install prefix with `include/` and `lib/`).
//! 2. `EXECUTORCH_SOURCE_DIR`, or a checkout in `third_party/executorch`: built with CMake
//!    (XNNPACK; Vulkan with the `vulkan` feature; Android through the NDK).
//! 3. Otherwise the pinned 1.5.1 wheel for the target, fetched once with `pip download`,
//!    verified by SHA-256 and unpacked into a per-user cache.
//!
//! A shared runtime (the wheel) is not linked into the Rust crate: the shim becomes a shared
//! library linked against it, which the crate opens at run time (`link.rs` says why).
//!
//! Feature `static` (one self-contained executable) accepts only static archives: it refuses the
//! wheel (shared libraries only) before downloading it, and links the C++ runtime statically
//! where the target allows (`plan::cxx_runtime_plan`).

mod download;
mod install;
mod link;
mod plan;
mod prebuilt;
mod shim;
mod source;
mod vars;
#[path = "../src/version.rs"]
mod version;

use std::path::PathBuf;

/// What the build script found: where headers and libraries are and how to link them.
pub struct Runtime {
    /// Include directories for the shim (`include/` and the vendored c10 directory).
    pub include_dirs: Vec<PathBuf>,
    /// Directory holding the libraries.
    pub lib_dir: PathBuf,
    /// Libraries to link, in order.
    pub libs: Vec<plan::LinkLib>,
    /// Whether `libs` are static archives (source builds) or shared libraries (the wheel).
    pub static_libs: bool,
    /// Human-readable description of the path taken.
    pub origin: String,
}

fn main() {
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rerun-if-changed=src/version.rs");
    println!("cargo::rustc-check-cfg=cfg(dlx_linked)");

    // Bindings depend only on the shim header, so they are generated on every path.
    shim::generate_bindings();

    if vars::get(vars::DOCS_RS).is_some()
        || vars::get(vars::EXECUTORCH_SYS_LINK).as_deref() == Some("0")
    {
        log("linking disabled (DOCS_RS or EXECUTORCH_SYS_LINK=0): bindings only");
        return;
    }

    let request = static_request();
    // Decided first: an unsupported target fails before anything is downloaded or built.
    let cxx = match plan::cxx_runtime_plan(&vars::cargo("TARGET"), request) {
        Ok(cxx) => cxx,
        Err(message) => fail(&message),
    };
    let runtime = match find_runtime(request) {
        Ok(runtime) => runtime,
        Err(message) => fail(&message),
    };
    log(&format!(
        "runtime for the ExecuTorch {} shim: {}",
        version::EXECUTORCH_VERSION,
        runtime.origin
    ));
    if !cxx.note.is_empty() {
        log(cxx.note);
    }
    let shim_library = shim::compile(&runtime, &cxx);
    if let Some(path) = &shim_library {
        log(&format!(
            "shim library: {} (opened at run time; ship it with the libexecutorch*.so files)",
            path.display()
        ));
    }
    link::emit(&runtime, &cxx, shim_library.as_deref());
}

/// The features `static` and `android-static-stl`.
pub fn static_request() -> plan::StaticRequest {
    plan::StaticRequest {
        single_file: vars::cargo("CARGO_FEATURE_STATIC") == "1",
        android_static_stl: vars::cargo("CARGO_FEATURE_ANDROID_STATIC_STL") == "1",
    }
}

/// Under feature `static`, refuses a runtime made of shared libraries.
fn require_static(request: plan::StaticRequest, runtime: Runtime) -> Result<Runtime, String> {
    let kind = if runtime.static_libs {
        plan::RuntimeKind::StaticInstall
    } else {
        plan::RuntimeKind::SharedInstall
    };
    plan::static_check(request.single_file, kind)?;
    Ok(runtime)
}

/// The decision list, top to bottom.
fn find_runtime(request: plan::StaticRequest) -> Result<Runtime, String> {
    let target = vars::cargo("TARGET");
    let vulkan = vars::cargo("CARGO_FEATURE_VULKAN") == "1";
    let llm_ops = vars::cargo("CARGO_FEATURE_LLM_OPS") == "1";

    if let Some(dir) = vars::get(vars::EXECUTORCH_DIR) {
        for (on, feature) in [(vulkan, "vulkan"), (llm_ops, "llm-ops")] {
            if on {
                log(&format!(
                    "feature `{feature}` is ignored with EXECUTORCH_DIR: the prebuilt runtime decides"
                ));
            }
        }
        let runtime = prebuilt::from_dir(&PathBuf::from(dir), "EXECUTORCH_DIR", vulkan)?;
        return require_static(request, runtime);
    }

    let manifest = PathBuf::from(vars::cargo("CARGO_MANIFEST_DIR"));
    let checkout = manifest.join("..").join("third_party").join("executorch");
    println!("cargo:rerun-if-changed={}", checkout.display());
    let source = vars::get(vars::EXECUTORCH_SOURCE_DIR)
        .map(PathBuf::from)
        .or_else(|| {
            checkout
                .join("CMakeLists.txt")
                .is_file()
                .then_some(checkout)
        });
    if let Some(src) = source {
        return require_static(request, source::build(&src, &target, vulkan, llm_ops)?);
    }

    if vulkan || llm_ops {
        let (feature, what) = if vulkan {
            ("vulkan", "the Vulkan delegate")
        } else {
            ("llm-ops", "the LLM custom operators")
        };
        return Err(format!(
            "feature `{feature}` needs ExecuTorch built from source (no prebuilt runtime has \
             {what}).\n  Set EXECUTORCH_SOURCE_DIR to an ExecuTorch {} checkout \
             (with submodules), or clone it into third_party/executorch.",
            version::EXECUTORCH_VERSION
        ));
    }
    // Before the download: the wheel has shared libraries only.
    plan::static_check(request.single_file, plan::RuntimeKind::Wheel)?;
    download::fetch(&target)
}

/// A line for the build log that Cargo shows even without `-vv`.
pub fn log(message: &str) {
    println!("cargo:warning=[executorch-sys] {message}");
}

/// Stops the build with a multi-line explanation.
pub fn fail(message: &str) -> ! {
    eprintln!("\n[executorch-sys] error: {message}\n");
    panic!(
        "[executorch-sys] {}",
        message.lines().next().unwrap_or(message)
    );
}
