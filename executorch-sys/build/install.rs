//! Where the shim library of a shared runtime is kept after the build.
//!
//! The Rust side remembers the shim's absolute path (its last resort when nothing beside the
//! binary or in `DIFFULEX_RUNTIME_DIR` has one). `OUT_DIR` is the wrong place for that: `cargo
//! install` builds in a temporary target directory that is deleted afterwards, and `cargo
//! clean` empties it. So the shim is copied into the per-user runtime cache (the same one the
//! wheel is unpacked into), under a directory named by its SHA-256: builds of different shims
//! never overwrite each other, and a rebuild of the same shim reuses the file.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{download, vars};

/// Copies `built` to `<cache>/shim/<sha256 prefix>/<file_name>` and returns that path, or
/// returns `built` itself (with a log line) if the cache cannot be written.
pub fn persist(built: &Path, file_name: &str) -> PathBuf {
    match try_persist(built, file_name) {
        Ok(path) => path,
        Err(e) => {
            crate::log(&format!(
                "keeping the shim library in the build directory ({e}): binaries built now \
                 find it only while this target directory exists, or beside themselves"
            ));
            built.to_path_buf()
        }
    }
}

fn try_persist(built: &Path, file_name: &str) -> Result<PathBuf, String> {
    let bytes = fs::read(built).map_err(|e| format!("reading {}: {e}", built.display()))?;
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = download::cache_dir(&vars::cargo("TARGET"))?
        .join("shim")
        .join(hex);
    let dest = dir.join(file_name);
    if fs::read(&dest).is_ok_and(|existing| existing == bytes) {
        return Ok(dest);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // Written under a temporary name and renamed: a binary never opens a half-written shim.
    let tmp = dir.join(format!(".{file_name}.{}", std::process::id()));
    fs::write(&tmp, &bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, &dest).map_err(|e| format!("renaming to {}: {e}", dest.display()))?;
    Ok(dest)
}
