/// The ExecuTorch release this crate's shim and download pins are written for. Shared by the
/// build script (via `#[path]`) and the library, so there is one place to bump.
///
/// ```
/// assert_eq!(executorch_sys::EXECUTORCH_VERSION, "1.5.1");
/// ```
pub const EXECUTORCH_VERSION: &str = "1.5.1";
