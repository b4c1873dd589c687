/*
 * diffulex_et.h: a small C ABI over the ExecuTorch 1.5.1 C++ runtime, for Rust (bindgen).
 *
 * Conventions:
 * - Every function that can fail returns an `int32_t` status: 0 on success, otherwise the value
 *   of ExecuTorch's `executorch::runtime::Error` enum (0x01 Internal, 0x12 InvalidArgument,
 *   0x14 OperatorMissing, 0x23 InvalidProgram, ...). A C++ exception becomes Internal (0x01).
 * - On failure the caller-provided `dlx_error` (may be NULL) receives the code and a message
 *   that includes the error-level lines ExecuTorch logged during the call.
 * - No exception ever crosses this boundary: each function body sits in one try/catch.
 * - Pointers handed out (names, sizes, output data) point into memory owned by the module; each
 *   function documents how long they stay valid.
 *
 * This header is plain C and includes no ExecuTorch header, so bindings need only libclang.
 */
#ifndef DIFFULEX_ET_H
#define DIFFULEX_ET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Size of the message buffer inside `dlx_error`.
#define DLX_ERROR_MESSAGE_LEN 1024

/// Status value for success; every other value is an ExecuTorch `Error` code.
#define DLX_OK 0

/// Version of this C ABI. A Rust crate built against one version refuses a shim library of
/// another (`dlx_abi_version`), so a stale `libdiffulex_et` copied beside a binary is an error
/// at load, not undefined behaviour at the first call. Bump it on every change to this header.
#define DLX_ABI_VERSION 3

/// Error details filled in by a failing call.
typedef struct dlx_error {
  /// The ExecuTorch error code (same as the returned status).
  int32_t code;
  /// NUL-terminated message, truncated to fit.
  char message[DLX_ERROR_MESSAGE_LEN];
} dlx_error;

/// A loaded program plus its lazily loaded methods (`extension::Module`). Not thread-safe: a
/// handle may move between threads but must not be used from two threads at once.
typedef struct dlx_module dlx_module;

/// Program verification level used when a module is loaded.
typedef enum dlx_verification {
  /// Only check the header (ExecuTorch's `Minimal`).
  DLX_VERIFY_MINIMAL = 0,
  /// Verify the whole flatbuffer (ExecuTorch's `InternalConsistency`); the default in Rust.
  DLX_VERIFY_INTERNAL_CONSISTENCY = 1,
} dlx_verification;

/// Runtime log levels, least to most severe; `DLX_LOG_OFF` silences everything.
typedef enum dlx_log_level {
  DLX_LOG_DEBUG = 0,
  DLX_LOG_INFO = 1,
  DLX_LOG_ERROR = 2,
  DLX_LOG_FATAL = 3,
  DLX_LOG_OFF = 4,
} dlx_log_level;

/// Description of one method input or output, or of one produced output value.
typedef struct dlx_value_info {
  /// ExecuTorch `Tag`: 0 None, 1 Tensor, 2 String, 3 Double, 4 Int, 5 Bool, 6.. lists.
  int32_t tag;
  /// ExecuTorch `ScalarType` of a tensor (6 Float, 4 Long, ...); for scalars the type the value
  /// is exposed as (Int -> 4 Long, Double -> 7 Double, Bool -> 11 Bool); -1 otherwise.
  int32_t dtype;
  /// Number of dimensions (0 for scalars).
  size_t ndim;
  /// `ndim` sizes; for method metadata of a dynamic tensor these are the upper bounds.
  const int32_t* sizes;
  /// 0 static, 1 dynamic with upper bound, 2 unbounded, -1 unknown (non-tensor, or method
  /// metadata, whose dynamism the caller reads from the program).
  int32_t dynamism;
  /// Size of the data in bytes (outputs: current size; metadata: upper-bound size).
  size_t nbytes;
  /// Outputs only: the data (tensor storage or the scalar value); NULL in metadata.
  const void* data;
} dlx_value_info;

/// One input tensor, borrowed for the duration of `dlx_module_execute`.
typedef struct dlx_tensor_in {
  /// ExecuTorch `ScalarType`.
  int32_t dtype;
  /// Number of dimensions.
  size_t ndim;
  /// `ndim` sizes.
  const int64_t* sizes;
  /// Contiguous row-major data of the given dtype and shape.
  const void* data;
} dlx_tensor_in;

/// Sets the minimum level of ExecuTorch log lines that are printed to stderr (default:
/// `DLX_LOG_FATAL`: the Info chatter of the runtime and XNNPACK stays quiet, and error lines
/// are not printed because they are captured into `dlx_error` messages whatever the level).
void dlx_set_log_level(int32_t level);

/// Loads a program from a file through ExecuTorch's `MmapDataLoader` (no copy of the weights)
/// and verifies it. On success `*out` owns the module; free it with `dlx_module_free`.
int32_t dlx_module_load_file(
    const char* path,
    int32_t verification,
    dlx_module** out,
    dlx_error* err);

/// Loads a program from a caller-owned buffer through `BufferDataLoader`. The buffer must stay
/// valid and unchanged until `dlx_module_free`. It should be 16-byte aligned.
int32_t dlx_module_load_buffer(
    const void* data,
    size_t len,
    int32_t verification,
    dlx_module** out,
    dlx_error* err);

/// Frees a module (NULL is ignored). All pointers obtained from it become invalid.
void dlx_module_free(dlx_module* module);

/// Number of methods in the program.
int32_t dlx_module_num_methods(dlx_module* module, size_t* out, dlx_error* err);

/// Name of method `index`; the string lives as long as the module.
int32_t dlx_module_method_name(
    dlx_module* module,
    size_t index,
    const char** out,
    dlx_error* err);

/// Reports the input, output and backend counts of `method` from the program, without loading
/// the method (loading initialises its delegates).
int32_t dlx_method_counts(
    dlx_module* module,
    const char* method,
    size_t* num_inputs,
    size_t* num_outputs,
    size_t* num_backends,
    dlx_error* err);

/// Describes input (`is_output == 0`) or output `index` of a method (not loaded by this). `sizes` point into
/// the program and live as long as the module.
int32_t dlx_method_value_info(
    dlx_module* module,
    const char* method,
    int32_t is_output,
    size_t index,
    dlx_value_info* out,
    dlx_error* err);

/// Name of delegate backend `index` used by `method` (e.g. "XnnpackBackend"); the string lives
/// as long as the module.
int32_t dlx_method_backend_name(
    dlx_module* module,
    const char* method,
    size_t index,
    const char** out,
    dlx_error* err);

/// Runs `method` on `inputs`. On success `*num_outputs` outputs can be read with
/// `dlx_module_output` until the next execute on this module (the runtime reuses the method's
/// planned memory). Mutable buffers of the method keep their state across calls.
int32_t dlx_module_execute(
    dlx_module* module,
    const char* method,
    const dlx_tensor_in* inputs,
    size_t num_inputs,
    size_t* num_outputs,
    dlx_error* err);

/// Describes output `index` of the last successful execute, with a pointer to its data.
int32_t dlx_module_output(
    dlx_module* module,
    size_t index,
    dlx_value_info* out,
    dlx_error* err);

/// Looks up the program's named data entry `key` (a NUL-terminated string; XNNPACK stores its
/// weights there under the SHA-256 hex of their bytes) through the module's own data loader,
/// without a copy. On success `*data` and `*len` are the entry's bytes; an entry of zero bytes
/// gives a non-NULL `*data` and `*len == 0`. A program without named data, or without `key`, is
/// not an error: DLX_OK with `*data == NULL` and `*len == 0`.
///
/// The bytes are the program's and read-only: for a module loaded with `dlx_module_load_file`
/// they are the mapped file, for `dlx_module_load_buffer` the caller's buffer. They stay valid
/// until `dlx_module_free`: the module keeps each loaded entry, and a second call with the same
/// key returns the same pointer without loading it again.
int32_t dlx_module_named_data(
    dlx_module* module,
    const char* key,
    const void** data,
    size_t* len,
    dlx_error* err);

/// Number of threads of ExecuTorch's process-wide thread pool, the one XNNPACK and the optimized
/// kernels parallelise over (the calling thread counts as one). The pool is created on first
/// use with one thread per performance core (cpuinfo). NotSupported (0x10) if the runtime was
/// built without its thread pool.
int32_t dlx_threadpool_thread_count(size_t* out, dlx_error* err);

/// Replaces the process-wide thread pool by one with `num_threads` threads (at least 1;
/// 0 is InvalidArgument). OutOfResources (0x25) if the new pool could not be created with that
/// many threads (the previous size is then restored if possible). NotSupported (0x10) without a
/// thread pool.
///
/// Contract (not checked here): no method of any module may be executing during the call, and
/// no module that has loaded an XNNPACK-delegated method may be used afterwards: the old pool is
/// destroyed, and XNNPACK keeps the pool it was given when it loaded the method. Call this
/// before loading modules.
int32_t dlx_threadpool_set_thread_count(uint32_t num_threads, dlx_error* err);

/// A task of `dlx_threadpool_run`: called once per index in [0, range) with the caller's `ctx`.
/// It must not unwind or throw (a Rust caller catches panics inside it).
typedef void (*dlx_task_fn)(void* ctx, size_t index);

/// Calls `task(ctx, i)` for every i in [0, range) on the process-wide thread pool (the calling
/// thread takes part) and returns when all calls have finished. Calls run concurrently and in
/// no particular order. Runs take the pool's lock, so concurrent callers (and XNNPACK methods
/// executing in other threads) take turns. Without a thread pool the calls run in order on the
/// calling thread. InvalidArgument for a null task.
int32_t dlx_threadpool_run(dlx_task_fn task, void* ctx, size_t range, dlx_error* err);

/// The `DLX_ABI_VERSION` this shim library was compiled with. Never fails.
uint32_t dlx_abi_version(void);

/// Number of operator kernels registered in the process (by the kernel libraries' static
/// initializers). Several kernels may share a name (one per dtype / dim-order key).
int32_t dlx_registered_kernel_count(size_t* out, dlx_error* err);

/// Name of registered kernel `index` (`aten::add.out`, `quantized_decomposed::add.out`, ...).
/// The string is static: it stays valid for the life of the process. InvalidArgument past the
/// count.
int32_t dlx_registered_kernel_name(size_t index, const char** out, dlx_error* err);

/// Number of delegate backends registered in the process (`XnnpackBackend`, ...).
int32_t dlx_registered_backend_count(size_t* out, dlx_error* err);

/// Name of registered backend `index`; static, valid for the life of the process.
/// InvalidArgument past the count.
int32_t dlx_registered_backend_name(size_t index, const char** out, dlx_error* err);

#ifdef __cplusplus
} // extern "C"
#endif

#endif // DIFFULEX_ET_H
