//! Default path: the pinned executorch 1.5.1 wheel for the target, fetched with `pip download`,
//! checked against its SHA-256 and unpacked (include/, lib/, share/ only) into a per-user cache
//! outside `target/`, so `cargo clean` does not fetch it again.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::plan::{self, WheelPin};
use crate::{prebuilt, vars, version, Runtime};

/// Marker written last; its content is the wheel hash, so a changed pin re-extracts.
const MARKER: &str = ".diffulex-complete";

/// Returns the cached runtime for `target`, downloading and unpacking it first if needed.
pub fn fetch(target: &str) -> Result<Runtime, String> {
    let Some(pin) = plan::wheel_for(target) else {
        return Err(format!(
            "no prebuilt ExecuTorch {} for target {target} (wheels exist for \
             x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu and aarch64-apple-darwin).\n  \
             Set EXECUTORCH_DIR to a runtime built for {target} (include/ + lib/), or\n  \
             set EXECUTORCH_SOURCE_DIR to an ExecuTorch checkout to build it with CMake \
             (Android: also ANDROID_NDK_HOME).",
            version::EXECUTORCH_VERSION
        ));
    };
    let cache = cache_dir(target)?;
    if !is_complete(&cache, &pin) {
        if vars::get(vars::CARGO_NET_OFFLINE).as_deref() == Some("true") {
            return Err(format!(
                "offline build (CARGO_NET_OFFLINE) and no cached ExecuTorch runtime in {}.\n  \
                 Build once online, or set EXECUTORCH_DIR to an unpacked executorch=={} wheel's \
                 `executorch/` folder, or set EXECUTORCH_CACHE_DIR to a cache made elsewhere.",
                cache.display(),
                version::EXECUTORCH_VERSION
            ));
        }
        let wheel = pip_download(&cache, &pin)?;
        verify(&wheel, &pin)?;
        unpack(&wheel, &cache, &pin)?;
        let _ = fs::remove_dir_all(cache.join("download"));
    }
    let mut runtime =
        prebuilt::from_dir(&prebuilt::root_of_unpacked(&cache), "download cache", false)?;
    runtime.origin = format!(
        "prebuilt {} wheel ({}) cached in {}",
        version::EXECUTORCH_VERSION,
        pin.platform,
        cache.display()
    );
    Ok(runtime)
}

/// `EXECUTORCH_CACHE_DIR`, else the user cache directory, plus version and target.
pub fn cache_dir(target: &str) -> Result<PathBuf, String> {
    let base = if let Some(dir) = vars::get(vars::EXECUTORCH_CACHE_DIR) {
        PathBuf::from(dir)
    } else {
        let home = vars::get("HOME").map(PathBuf::from);
        let user_cache = vars::get("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| {
            let home = home.clone()?;
            Some(if cfg!(target_os = "macos") {
                home.join("Library").join("Caches")
            } else {
                home.join(".cache")
            })
        });
        user_cache
            .ok_or("cannot find a cache directory: set EXECUTORCH_CACHE_DIR (or HOME)")?
            .join("diffulex-edge")
    };
    Ok(base
        .join(format!("executorch-{}", version::EXECUTORCH_VERSION))
        .join(target))
}

fn is_complete(cache: &Path, pin: &WheelPin) -> bool {
    fs::read_to_string(cache.join(MARKER)).is_ok_and(|s| s.trim() == pin.sha256)
}

fn pip_download(cache: &Path, pin: &WheelPin) -> Result<PathBuf, String> {
    let dl = cache.join("download");
    fs::create_dir_all(&dl).map_err(|e| format!("creating {}: {e}", dl.display()))?;
    let python = vars::get(vars::EXECUTORCH_PYTHON).unwrap_or_else(|| "python3".into());
    let spec = format!("executorch=={}", version::EXECUTORCH_VERSION);
    crate::log(&format!(
        "downloading {spec} for {} with {python} -m pip download",
        pin.platform
    ));
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
        ])
        .arg(pin.platform)
        .args(["--python-version", "3.11", &spec, "-d"])
        .arg(&dl)
        .status()
        .map_err(|e| {
            format!(
                "cannot run `{python} -m pip` ({e}).\n  Install python3 and pip, or set \
                 EXECUTORCH_PYTHON, or set EXECUTORCH_DIR to an unpacked {spec} wheel."
            )
        })?;
    if !status.success() {
        return Err(format!(
            "`{python} -m pip download {spec} --platform {}` failed ({status}).\n  Check network \
             access to the Python package index, or set EXECUTORCH_DIR to an unpacked wheel.",
            pin.platform
        ));
    }
    let wanted = format!(
        "executorch-{}-cp311-cp311-{}.whl",
        version::EXECUTORCH_VERSION,
        pin.platform
    );
    let wheel = dl.join(&wanted);
    if wheel.is_file() {
        Ok(wheel)
    } else {
        Err(format!(
            "pip did not produce {} in {}",
            wanted,
            dl.display()
        ))
    }
}

fn verify(wheel: &Path, pin: &WheelPin) -> Result<(), String> {
    let mut file =
        fs::File::open(wheel).map_err(|e| format!("opening {}: {e}", wheel.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", wheel.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got == pin.sha256 {
        Ok(())
    } else {
        let _ = fs::remove_file(wheel);
        Err(format!(
            "SHA-256 mismatch for {}: expected {}, got {got}. The file was removed; if the \
             package index serves a different build, set EXECUTORCH_DIR instead.",
            wheel.display(),
            pin.sha256
        ))
    }
}

/// Extracts `executorch/{include,lib,share}/` into a fresh directory, then renames it into
/// place, so a concurrent or interrupted build never sees a half-unpacked runtime.
fn unpack(wheel: &Path, cache: &Path, pin: &WheelPin) -> Result<(), String> {
    let file = fs::File::open(wheel).map_err(|e| format!("opening {}: {e}", wheel.display()))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("reading {}: {e}", wheel.display()))?;
    let staging = cache.join(format!("staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("wheel entry {i}: {e}"))?;
        let Some(rel) = entry.enclosed_name() else {
            continue;
        };
        if !wanted(&rel) || entry.is_dir() {
            continue;
        }
        let dest = staging.join(&rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let mut out =
            fs::File::create(&dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| format!("extracting {}: {e}", rel.display()))?;
    }
    let final_dir = prebuilt::root_of_unpacked(cache);
    let _ = fs::remove_dir_all(&final_dir);
    fs::rename(staging.join("executorch"), &final_dir).map_err(|e| {
        format!(
            "moving the unpacked runtime to {}: {e}",
            final_dir.display()
        )
    })?;
    let _ = fs::remove_dir_all(&staging);
    fs::write(cache.join(MARKER), pin.sha256).map_err(|e| format!("writing marker: {e}"))?;
    crate::log(&format!(
        "unpacked the runtime into {}",
        final_dir.display()
    ));
    Ok(())
}

/// Headers, shared libraries and CMake files; nothing Python (the pybindings live elsewhere in
/// the wheel and need an interpreter).
fn wanted(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s.starts_with("executorch/include/")
        || s.starts_with("executorch/share/")
        || (s.starts_with("executorch/lib/")
            && (s.ends_with(".so") || s.ends_with(".dylib") || s.ends_with(".cmake")))
}
