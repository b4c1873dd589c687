//! A prebuilt runtime on disk: the wheel's `executorch/` folder, the site-packages folder that
//! contains it, or a CMake install prefix.

use std::path::{Path, PathBuf};

use crate::plan;
use crate::Runtime;

/// Validates the layout under `dir` and derives the link plan from the libraries present.
pub fn from_dir(dir: &Path, what: &str, vulkan: bool) -> Result<Runtime, String> {
    // Accept both `.../executorch` and its parent (site-packages), as users point at either.
    let root = if dir.join("include").join("executorch").is_dir() {
        dir.to_path_buf()
    } else if dir
        .join("executorch")
        .join("include")
        .join("executorch")
        .is_dir()
    {
        dir.join("executorch")
    } else {
        return Err(format!(
            "{what}={} has no include/executorch directory.\n  Point it at the `executorch/` \
             folder of the executorch==1.5.1 wheel (it has include/ and lib/) or at a CMake \
             install prefix of ExecuTorch.",
            dir.display()
        ));
    };
    let lib_dir = ["lib", "lib64"]
        .iter()
        .map(|l| root.join(l))
        .find(|p| p.is_dir())
        .ok_or_else(|| {
            format!(
                "{what}={}: no lib/ directory next to include/",
                root.display()
            )
        })?;
    let files = list(&lib_dir);
    let names = || files.iter().map(String::as_str);

    let shared = plan::lib_names(names(), false);
    let (libs, static_libs) = if let Some(libs) = plan::shared_link_plan(&shared) {
        (libs, false)
    } else {
        let archives = plan::lib_names(names(), true);
        if !archives.iter().any(|a| a == "executorch") {
            return Err(format!(
                "{what}: {} holds neither libexecutorch.so/.dylib nor libexecutorch.a",
                lib_dir.display()
            ));
        }
        (plan::static_link_plan(&archives, vulkan), true)
    };
    check_version(&root);
    Ok(Runtime {
        include_dirs: include_dirs(&root),
        lib_dir: lib_dir.clone(),
        libs,
        static_libs,
        origin: format!(
            "prebuilt {} runtime from {what} ({})",
            if static_libs { "static" } else { "shared" },
            root.display()
        ),
    })
}

/// `include/` plus the vendored c10 headers' directory, as the wheel's CMake config exports.
pub fn include_dirs(root: &Path) -> Vec<PathBuf> {
    let include = root.join("include");
    let c10 = include.join("executorch/runtime/core/portable_type/c10");
    vec![include, c10]
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Warns when the runtime's CMake package says it is another version than the shim targets.
fn check_version(root: &Path) {
    let candidates = [
        root.join("share/cmake/executorch-config-version.cmake"),
        root.join("lib/cmake/executorch/executorch-config-version.cmake"),
    ];
    let Some(text) = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
    else {
        return;
    };
    let found: Option<String> = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("set(PACKAGE_VERSION \""))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string);
    if let Some(found) = found {
        if found != crate::version::EXECUTORCH_VERSION {
            crate::log(&format!(
                "runtime at {} is ExecuTorch {found}, the shim is written for {}",
                root.display(),
                crate::version::EXECUTORCH_VERSION
            ));
        }
    }
}

/// Path helper for other modules.
pub fn root_of_unpacked(cache: &Path) -> PathBuf {
    cache.join("executorch")
}
