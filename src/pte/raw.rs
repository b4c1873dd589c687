//! The only place that calls `executorch_sys`: one owner type for the shim's module handle,
//! and the status-to-`Result` conversion in one function.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::Once;

use executorch_sys as sys;

use super::error::ErrorCode;
use super::threads::LiveModule;

/// What the shim's `dlx_module_execute` appends to the message when a delegate threw and it
/// unloaded the method (keep in step with `shim/diffulex_et.cpp`).
pub(crate) const METHOD_UNLOADED: &str = "(the method was unloaded; the next call loads it again)";

/// An error straight from the shim, before the caller adds context.
#[derive(Debug)]
pub(crate) struct RawError {
    pub code: ErrorCode,
    pub message: String,
}

/// Describes one input/output (metadata) or one produced output.
#[derive(Debug, Clone)]
pub(crate) struct RawValue {
    pub tag: i32,
    pub dtype: i32,
    pub sizes: Vec<i64>,
    pub dynamism: i32,
    pub nbytes: usize,
    pub data: *const u8,
}

fn empty_error() -> sys::dlx_error {
    sys::dlx_error {
        code: 0,
        message: [0; sys::DLX_ERROR_MESSAGE_LEN as usize],
    }
}

/// Turns a shim status into a `Result`; the single place where statuses are read.
fn check(status: i32, err: &sys::dlx_error) -> Result<(), RawError> {
    if status == 0 {
        return Ok(());
    }
    // SAFETY: the shim always NUL-terminates `message` within its fixed-size buffer (it was
    // zero-initialised here and `write_error` truncates to LEN - 1).
    let message = unsafe { CStr::from_ptr(err.message.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Err(RawError {
        code: ErrorCode::from_code(status as u32),
        message,
    })
}

/// Opens the runtime library if that has not happened yet (a no-op for a linked runtime).
/// Every entry point below calls it before its first shim call.
pub(crate) fn ensure_runtime() -> Result<&'static sys::Runtime, RawError> {
    sys::runtime().map_err(|e| RawError {
        code: ErrorCode::NotFound,
        message: e.to_string(),
    })
}

/// Applies `DIFFULEX_ET_LOG` (debug|info|error|fatal|off) once per process.
fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(level) = std::env::var("DIFFULEX_ET_LOG") {
            if let Some(level) = super::LogLevel::parse(&level) {
                set_log_level(level as i32);
            }
        }
    });
}

/// Sets the minimum printed log level of the runtime (nothing to set without one).
pub(crate) fn set_log_level(level: i32) {
    if ensure_runtime().is_err() {
        return;
    }
    // SAFETY: takes a plain integer; the shim initialises its logging on first use.
    unsafe { sys::dlx_set_log_level(level) }
}

/// Names of the operator kernels registered in the process, sorted, without repeats.
pub(crate) fn registered_kernels() -> Result<Vec<String>, RawError> {
    let mut names = registry_names(
        // SAFETY: valid out-pointers.
        |n, err| unsafe { sys::dlx_registered_kernel_count(n, err) },
        // SAFETY: valid out-pointers; the index is below the count (the shim checks anyway).
        |i, name, err| unsafe { sys::dlx_registered_kernel_name(i, name, err) },
    )?;
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// Names of the delegate backends registered in the process.
pub(crate) fn registered_backends() -> Result<Vec<String>, RawError> {
    registry_names(
        // SAFETY: valid out-pointers.
        |n, err| unsafe { sys::dlx_registered_backend_count(n, err) },
        // SAFETY: valid out-pointers; the index is below the count (the shim checks anyway).
        |i, name, err| unsafe { sys::dlx_registered_backend_name(i, name, err) },
    )
}

/// Reads a registry listing through its count and by-index name functions.
fn registry_names(
    count: impl Fn(&mut usize, &mut sys::dlx_error) -> i32,
    name_at: impl Fn(usize, &mut *const c_char, &mut sys::dlx_error) -> i32,
) -> Result<Vec<String>, RawError> {
    ensure_runtime()?;
    let mut n = 0usize;
    let mut err = empty_error();
    check(count(&mut n, &mut err), &err)?;
    (0..n)
        .map(|i| {
            let mut name: *const c_char = ptr::null();
            check(name_at(i, &mut name, &mut err), &err)?;
            // Registry names are static strings of the runtime.
            Ok(owned_str(name))
        })
        .collect()
}

/// Owner of a `dlx_module*`. It holds a [`LiveModule`] token for its whole life (dropped after
/// the C++ module is freed), which is what keeps the thread pool from being replaced under it.
pub(crate) struct RawModule {
    ptr: NonNull<sys::dlx_module>,
    _live: LiveModule,
}

// SAFETY: the ExecuTorch Module has no thread affinity (no thread-locals or thread-bound
// resources in the handle), so it may move to another thread. It is not thread-safe, which is
// why RawModule is not Sync and every mutating call takes `&mut self` or goes through the
// non-Sync PteModule.
unsafe impl Send for RawModule {}

impl RawModule {
    /// Loads a program from a file through ExecuTorch's mmap loader.
    pub fn load_file(path: &CStr, verify: bool) -> Result<Self, RawError> {
        ensure_runtime()?;
        init_logging();
        // Taken before the C++ module exists, so no method can load while the pool is replaced.
        let live = LiveModule::acquire();
        let mut out: *mut sys::dlx_module = ptr::null_mut();
        let mut err = empty_error();
        // SAFETY: `path` is a valid NUL-terminated string for the call; `out` and `err` are
        // valid for writes.
        let status = unsafe {
            sys::dlx_module_load_file(path.as_ptr(), verification(verify), &mut out, &mut err)
        };
        check(status, &err)?;
        Self::from_out(out, live)
    }

    /// Loads a program from memory.
    ///
    /// # Safety
    /// `data..data+len` must stay valid and unchanged until the returned module is dropped.
    pub unsafe fn load_buffer(data: *const u8, len: usize, verify: bool) -> Result<Self, RawError> {
        ensure_runtime()?;
        init_logging();
        let live = LiveModule::acquire();
        let mut out: *mut sys::dlx_module = ptr::null_mut();
        let mut err = empty_error();
        // SAFETY: the caller guarantees the buffer outlives the module; out-pointers are valid.
        let status = unsafe {
            sys::dlx_module_load_buffer(data.cast(), len, verification(verify), &mut out, &mut err)
        };
        check(status, &err)?;
        Self::from_out(out, live)
    }

    fn from_out(out: *mut sys::dlx_module, live: LiveModule) -> Result<Self, RawError> {
        let ptr = NonNull::new(out).ok_or(RawError {
            code: ErrorCode::Internal,
            message: "the shim reported success but returned no module".into(),
        })?;
        Ok(RawModule { ptr, _live: live })
    }

    fn ptr(&self) -> *mut sys::dlx_module {
        self.ptr.as_ptr()
    }

    /// All method names, in program order.
    pub fn method_names(&self) -> Result<Vec<String>, RawError> {
        let mut n = 0usize;
        let mut err = empty_error();
        // SAFETY: the handle is live (owned by self); out-pointers are valid.
        let status = unsafe { sys::dlx_module_num_methods(self.ptr(), &mut n, &mut err) };
        check(status, &err)?;
        (0..n)
            .map(|i| {
                let mut name: *const c_char = ptr::null();
                // SAFETY: as above; `i` is in range (the shim checks anyway).
                let status =
                    unsafe { sys::dlx_module_method_name(self.ptr(), i, &mut name, &mut err) };
                check(status, &err)?;
                Ok(owned_str(name))
            })
            .collect()
    }

    /// Loads `method` and returns (inputs, outputs, backends) counts.
    pub fn method_counts(&self, method: &CStr) -> Result<(usize, usize, usize), RawError> {
        let (mut i, mut o, mut b) = (0usize, 0usize, 0usize);
        let mut err = empty_error();
        // SAFETY: live handle, NUL-terminated name, valid out-pointers. Loading a method mutates
        // the C++ module; callers hold the non-Sync PteModule, so no call runs concurrently.
        let status = unsafe {
            sys::dlx_method_counts(
                self.ptr(),
                method.as_ptr(),
                &mut i,
                &mut o,
                &mut b,
                &mut err,
            )
        };
        check(status, &err)?;
        Ok((i, o, b))
    }

    /// Metadata of input or output `index` of a loaded method.
    pub fn value_info(
        &self,
        method: &CStr,
        output: bool,
        index: usize,
    ) -> Result<RawValue, RawError> {
        let mut info = empty_info();
        let mut err = empty_error();
        // SAFETY: live handle, NUL-terminated name, valid out-pointers.
        let status = unsafe {
            sys::dlx_method_value_info(
                self.ptr(),
                method.as_ptr(),
                i32::from(output),
                index,
                &mut info,
                &mut err,
            )
        };
        check(status, &err)?;
        Ok(raw_value(&info))
    }

    /// Name of backend `index` of `method`.
    pub fn backend_name(&self, method: &CStr, index: usize) -> Result<String, RawError> {
        let mut name: *const c_char = ptr::null();
        let mut err = empty_error();
        // SAFETY: live handle, NUL-terminated name, valid out-pointers.
        let status = unsafe {
            sys::dlx_method_backend_name(self.ptr(), method.as_ptr(), index, &mut name, &mut err)
        };
        check(status, &err)?;
        Ok(owned_str(name))
    }

    /// Runs `method`; returns the number of outputs, readable with [`RawModule::output`] until
    /// the next call that takes `&mut self`.
    pub fn execute(
        &mut self,
        method: &CStr,
        inputs: &[sys::dlx_tensor_in],
    ) -> Result<usize, RawError> {
        let mut n = 0usize;
        let mut err = empty_error();
        // SAFETY: live handle; `inputs` point to dtype/sizes/data the caller keeps borrowed for
        // this call (the shim copies what it needs beyond it); out-pointers are valid.
        let status = unsafe {
            sys::dlx_module_execute(
                self.ptr(),
                method.as_ptr(),
                inputs.as_ptr(),
                inputs.len(),
                &mut n,
                &mut err,
            )
        };
        check(status, &err)?;
        Ok(n)
    }

    /// Output `index` of the last execute. Its `data` points into memory owned by the module
    /// that stays valid until the next `execute` or drop.
    pub fn output(&self, index: usize) -> Result<RawValue, RawError> {
        let mut info = empty_info();
        let mut err = empty_error();
        // SAFETY: live handle, valid out-pointers.
        let status = unsafe { sys::dlx_module_output(self.ptr(), index, &mut info, &mut err) };
        check(status, &err)?;
        Ok(raw_value(&info))
    }

    /// The bytes of the program's named data entry `key`, loaded through the module's data
    /// loader without a copy (a mapping of the file, or the module's buffer); `None` if the
    /// program has no such entry. The pointer stays valid, and the bytes unchanged, until the
    /// module is dropped: the C++ module keeps every entry it handed out, and asking again for
    /// the same key returns the same pointer. A present entry of zero bytes is `Some` with a
    /// non-null pointer and length 0.
    pub fn named_data(&self, key: &CStr) -> Result<Option<(*const u8, usize)>, RawError> {
        let mut data: *const std::ffi::c_void = ptr::null();
        let mut len = 0usize;
        let mut err = empty_error();
        // SAFETY: live handle, NUL-terminated key, valid out-pointers. The call may load the
        // entry into the C++ module's cache; callers hold the non-Sync PteModule, so no call runs
        // concurrently.
        let status = unsafe {
            sys::dlx_module_named_data(self.ptr(), key.as_ptr(), &mut data, &mut len, &mut err)
        };
        check(status, &err)?;
        Ok((!data.is_null()).then_some((data.cast::<u8>(), len)))
    }
}

impl Drop for RawModule {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful load and is freed exactly once here.
        unsafe { sys::dlx_module_free(self.ptr()) }
    }
}

/// Thread count of ExecuTorch's process-wide thread pool (creating it on first use).
pub(crate) fn threadpool_thread_count() -> Result<usize, RawError> {
    ensure_runtime()?;
    let mut n = 0usize;
    let mut err = empty_error();
    // SAFETY: valid out-pointers; reading the count takes the pool's own mutex, so it is safe
    // at any time, even while methods execute.
    let status = unsafe { sys::dlx_threadpool_thread_count(&mut n, &mut err) };
    check(status, &err)?;
    Ok(n)
}

/// Replaces ExecuTorch's process-wide thread pool by one with `n` threads.
///
/// # Safety
/// No ExecuTorch module may exist in the process during the call: one could be executing on the
/// pool being destroyed, and XNNPACK methods keep the pool they were loaded with.
pub(crate) unsafe fn threadpool_set_thread_count(n: u32) -> Result<(), RawError> {
    ensure_runtime()?;
    let mut err = empty_error();
    // SAFETY: the caller guarantees no module exists; `err` is valid for writes.
    let status = unsafe { sys::dlx_threadpool_set_thread_count(n, &mut err) };
    check(status, &err)
}

/// Calls `f(i)` for every `i` in `0..n` on ExecuTorch's thread pool (the calling thread takes
/// part) and returns once every call has finished. A panic in `f` is caught on the thread it
/// happens on (it must not unwind through C++) and resumed here, on the caller's thread.
pub(crate) fn threadpool_run(n: usize, f: &(dyn Fn(usize) + Sync)) -> Result<(), RawError> {
    thread_local! {
        /// Set while this thread runs a task: the pool is not reentrant (a nested run would
        /// wait forever for the pool's lock), so nested runs go sequential instead.
        static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if IN_TASK.with(|t| t.get()) {
        (0..n).for_each(f);
        return Ok(());
    }
    ensure_runtime()?;
    struct Task<'a> {
        f: &'a (dyn Fn(usize) + Sync),
        panic: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
    }
    extern "C" fn call(ctx: *mut std::ffi::c_void, i: usize) {
        // SAFETY: `ctx` is the `Task` below, alive until `dlx_threadpool_run` returns, and only
        // read through a shared reference (its mutable part is behind a mutex).
        let task = unsafe { &*(ctx as *const Task) };
        let was_in_task = IN_TASK.with(|t| t.replace(true));
        let run = std::panic::AssertUnwindSafe(|| (task.f)(i));
        let result = std::panic::catch_unwind(run);
        IN_TASK.with(|t| t.set(was_in_task));
        if let Err(payload) = result {
            let mut slot = task.panic.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(payload);
        }
    }
    let task = Task {
        f,
        panic: std::sync::Mutex::new(None),
    };
    let mut err = empty_error();
    // SAFETY: `call` never unwinds (it catches panics) and only reads `task`, which outlives
    // the call because `dlx_threadpool_run` blocks until every index has run; `err` is valid
    // for writes.
    let status = unsafe {
        sys::dlx_threadpool_run(
            Some(call),
            &task as *const Task as *mut std::ffi::c_void,
            n,
            &mut err,
        )
    };
    if let Some(payload) = task.panic.into_inner().unwrap_or_else(|p| p.into_inner()) {
        std::panic::resume_unwind(payload);
    }
    check(status, &err)
}

fn verification(verify: bool) -> i32 {
    if verify {
        sys::DLX_VERIFY_INTERNAL_CONSISTENCY as i32
    } else {
        sys::DLX_VERIFY_MINIMAL as i32
    }
}

fn empty_info() -> sys::dlx_value_info {
    sys::dlx_value_info {
        tag: 0,
        dtype: -1,
        ndim: 0,
        sizes: ptr::null(),
        dynamism: -1,
        nbytes: 0,
        data: ptr::null(),
    }
}

fn raw_value(info: &sys::dlx_value_info) -> RawValue {
    let sizes = if info.sizes.is_null() || info.ndim == 0 {
        Vec::new()
    } else {
        // SAFETY: the shim hands out `ndim` sizes that live in the program or tensor, valid at
        // least until the next call on the module; they are copied right away.
        unsafe { std::slice::from_raw_parts(info.sizes, info.ndim) }
            .iter()
            .map(|&s| i64::from(s))
            .collect()
    };
    RawValue {
        tag: info.tag,
        dtype: info.dtype,
        sizes,
        dynamism: info.dynamism,
        nbytes: info.nbytes,
        data: info.data.cast(),
    }
}

fn owned_str(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null strings from the shim are NUL-terminated and live as long as the module;
    // they are copied immediately.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A NUL-free C string for a method name.
pub(crate) fn c_name(name: &str) -> Option<CString> {
    CString::new(name).ok()
}
