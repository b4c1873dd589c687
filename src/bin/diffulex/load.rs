//! Opening the files named on the command line: what a path is when it is not a file (a
//! directory, a FIFO, a device: said before anything opens it, so a FIFO cannot hang the
//! CLI), and `--no-mmap`, shared by every subcommand that loads a model.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use diffulex_edge::pte::{not_a_regular_file, PteModule};
use diffulex_edge::runtime::PteModel;

/// How to load the model.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Read the whole .pte into memory instead of memory-mapping it, so the file can be
    /// overwritten in place while it is in use (a mapped file overwritten in place kills the
    /// process with SIGBUS). Costs the file's size in RAM. Replacing a model by atomic rename
    /// (`cp new.pte model.pte.tmp && mv model.pte.tmp model.pte`) is safe either way.
    #[arg(long)]
    pub no_mmap: bool,
}

impl LoadArgs {
    /// The model at `path` (checked with [`check_file`] first).
    pub fn model(&self, path: &Path) -> Result<PteModel> {
        check_file("model", path, "pass --model PATH.pte")?;
        let model = if self.no_mmap {
            PteModel::load_copy(path)
        } else {
            PteModel::load(path)
        };
        model.with_context(|| {
            format!(
                "cannot use {path:?} (expected a .pte exported by diffulex-export for ExecuTorch 1.5.1)"
            )
        })
    }

    /// The raw program at `path`, for `inspect`.
    pub fn module(&self, path: &Path) -> Result<PteModule> {
        check_file("program", path, "pass the path of a .pte file")?;
        let module = if self.no_mmap {
            PteModule::load_copy(path)
        } else {
            PteModule::load(path)
        };
        module.with_context(|| format!("loading {path:?}"))
    }
}

/// Refuses, with a message saying what `path` is, anything but an existing regular file:
/// "not found" only when nothing is there. Looks at the metadata only (no open).
pub fn check_file(what: &str, path: &Path, hint: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{what} {path:?} not found: {hint}")
        }
        Err(e) => bail!("cannot read {what} {path:?}: {e}"),
        Ok(meta) => match not_a_regular_file(&meta) {
            Some(kind) => bail!("{what} {path:?} {kind}, not a file: {hint}"),
            None => Ok(()),
        },
    }
}
