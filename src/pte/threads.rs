//! The size of ExecuTorch's thread pool: how many threads XNNPACK (and the optimized portable
//! kernels) split each operator over.
//!
//! There is one pool per process, created on first use with one thread per performance core
//! (as cpuinfo counts them; the calling thread is one of them). [`set_thread_count`] replaces
//! it with a pool of another size.
//!
//! # When the count can change
//! Replacing the pool destroys the old one, and XNNPACK keeps the pool it was handed when it
//! loaded a method, for as long as the method lives. So the count can only change while no
//! [`PteModule`](super::PteModule) exists in the process: set it first, then load models.
//! This is enforced, not just documented: every module registers itself for its lifetime in
//! a process-wide counter, and [`set_thread_count`] holds that counter's lock while it
//! replaces the pool and returns [`ThreadsError::ModulesAlive`] if the counter is not zero. The
//! cost is one uncontended mutex lock per module load and drop; `execute` takes no lock.
//!
//! Code that drives ExecuTorch without `PteModule` (the raw [`sys`](super::sys) bindings, or
//! another library in the same process) is not covered by the counter.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diffulex_edge::pte::{threads, PteModule};
//! threads::set_thread_count(1)?; // before any module is loaded
//! assert_eq!(threads::thread_count()?, 1);
//! let module = PteModule::load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic/mlp.pte"))?;
//! assert!(threads::set_thread_count(2).is_err()); // a module is alive
//! drop(module);
//! threads::set_thread_count(2)?;
//! assert_eq!(threads::thread_count()?, 2);
//! # Ok(()) }
//! ```

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::error::ErrorCode;
use super::raw;

/// The largest thread count [`set_thread_count`] accepts. The pool starts every thread up front
/// and waits for all of them, so an absurd count would exhaust the process rather than fail.
pub const MAX_THREADS: usize = 256;

/// Why the thread count could not be read or changed.
///
/// ```
/// use diffulex_edge::pte::threads::{set_thread_count, ThreadsError};
/// let e = set_thread_count(0).unwrap_err();
/// assert!(matches!(e, ThreadsError::Zero));
/// assert!(e.to_string().contains("at least 1"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadsError {
    /// A pool needs at least one thread.
    #[error("thread count 0: pass at least 1 (1 runs every operator on the calling thread)")]
    Zero,
    /// More than [`MAX_THREADS`] threads were requested.
    #[error("thread count {requested} is more than the supported maximum of {max}")]
    TooMany {
        /// The requested count.
        requested: usize,
        /// [`MAX_THREADS`].
        max: usize,
    },
    /// Modules are alive, so the pool cannot be replaced (XNNPACK methods keep using it).
    #[error(
        "cannot change the thread count while {alive} model(s) are loaded: set it before loading \
         any model, or drop them first"
    )]
    ModulesAlive {
        /// How many [`PteModule`](super::PteModule)s exist.
        alive: usize,
    },
    /// The runtime failed: [`ErrorCode::NotSupported`] if it was built without its thread
    /// pool, [`ErrorCode::OutOfResources`] if the new pool could not start its threads.
    #[error("thread pool: {code}: {message}")]
    Runtime {
        /// The ExecuTorch error code.
        code: ErrorCode,
        /// The runtime's message.
        message: String,
    },
}

impl From<raw::RawError> for ThreadsError {
    fn from(e: raw::RawError) -> Self {
        ThreadsError::Runtime {
            code: e.code,
            message: e.message,
        }
    }
}

/// Number of [`PteModule`](super::PteModule)s alive in the process.
static LIVE_MODULES: Mutex<usize> = Mutex::new(0);

/// The counter never holds a broken invariant while locked (plain increments), so a panic in
/// another thread cannot leave it inconsistent: poisoning is ignored.
fn live_modules() -> MutexGuard<'static, usize> {
    LIVE_MODULES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A registration in the live-module counter, held by each raw module for its lifetime.
pub(crate) struct LiveModule(());

impl LiveModule {
    /// Registers one more live module.
    pub(crate) fn acquire() -> Self {
        *live_modules() += 1;
        LiveModule(())
    }
}

impl Drop for LiveModule {
    fn drop(&mut self) {
        let mut live = live_modules();
        *live = live.saturating_sub(1);
    }
}

/// The number of threads in ExecuTorch's thread pool (the calling thread included).
///
/// If no model has created the pool yet, this creates it with one thread per performance core.
///
/// # Errors
/// [`ThreadsError::Runtime`] with [`ErrorCode::NotSupported`] if the runtime was built
/// without its thread pool.
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::threads::ThreadsError> {
/// let n = diffulex_edge::pte::threads::thread_count()?;
/// assert!(n >= 1);
/// # Ok(()) }
/// ```
pub fn thread_count() -> Result<usize, ThreadsError> {
    // The lock orders this read after any replacement in progress.
    let _live = live_modules();
    Ok(raw::threadpool_thread_count()?)
}

/// Replaces ExecuTorch's process-wide thread pool by one with `n` threads.
///
/// `1` runs every operator on the calling thread. Call it before loading any model: it is
/// refused while a [`PteModule`](super::PteModule) exists (see the module docs). Models loaded
/// afterwards use the new pool; asking for the current count does nothing.
///
/// # Errors
/// [`ThreadsError::Zero`] for `0`, [`ThreadsError::TooMany`] above [`MAX_THREADS`],
/// [`ThreadsError::ModulesAlive`] while models are loaded, [`ThreadsError::Runtime`] if the
/// runtime has no thread pool or could not create the new one (the old size is then kept).
///
/// ```
/// # fn main() -> Result<(), diffulex_edge::pte::threads::ThreadsError> {
/// use diffulex_edge::pte::threads::{set_thread_count, thread_count, ThreadsError};
/// set_thread_count(2)?;
/// assert_eq!(thread_count()?, 2);
/// assert!(matches!(set_thread_count(100_000), Err(ThreadsError::TooMany { .. })));
/// # Ok(()) }
/// ```
pub fn set_thread_count(n: usize) -> Result<(), ThreadsError> {
    if n == 0 {
        return Err(ThreadsError::Zero);
    }
    if n > MAX_THREADS {
        return Err(ThreadsError::TooMany {
            requested: n,
            max: MAX_THREADS,
        });
    }
    let live = live_modules();
    if *live > 0 {
        return Err(ThreadsError::ModulesAlive { alive: *live });
    }
    // `n <= MAX_THREADS`, so it fits.
    let n = n as u32;
    // SAFETY: no module exists (the counter is zero), and none can be created until `live` is
    // released after this call, because creating one first increments the counter under the
    // same lock. So nothing executes on the old pool or has an XNNPACK method holding it.
    unsafe { raw::threadpool_set_thread_count(n) }?;
    drop(live);
    Ok(())
}

/// Calls `f(i)` for every `i` in `0..n` on ExecuTorch's thread pool, the calling thread
/// included, and returns when all calls are done; calls run concurrently, in no set order.
///
/// Between two `execute` calls the pool's workers are idle (and, right after one, still
/// spinning for work), so work handed to them starts at once and does not compete with them
/// for the cores, as threads of our own would. With a pool of one thread, or a runtime
/// without a pool, the calls run in order on the calling thread. Concurrent callers, and
/// methods executing in other threads, take turns on the pool. A call made from inside `f`
/// runs on the calling thread (the pool is not reentrant).
///
/// # Errors
/// [`ThreadsError::Runtime`] if the runtime reports a failure. A panic in `f` is resumed on
/// the calling thread after every call has returned.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// # fn main() -> Result<(), diffulex_edge::pte::threads::ThreadsError> {
/// let sum = AtomicUsize::new(0);
/// diffulex_edge::pte::threads::run_on_pool(100, &|i| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// })?;
/// assert_eq!(sum.into_inner(), 4950);
/// # Ok(()) }
/// ```
pub fn run_on_pool(n: usize, f: &(dyn Fn(usize) + Sync)) -> Result<(), ThreadsError> {
    Ok(raw::threadpool_run(n, f)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only the checks made before the pool is touched: this binary's other tests load modules
    // concurrently (tests/threads.rs covers the rest in a process of its own).
    #[test]
    fn zero_and_too_many_are_refused_before_the_runtime() {
        assert!(matches!(set_thread_count(0), Err(ThreadsError::Zero)));
        match set_thread_count(MAX_THREADS + 1) {
            Err(ThreadsError::TooMany { requested, max }) => {
                assert_eq!((requested, max), (MAX_THREADS + 1, MAX_THREADS));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_registration_blocks_replacing_the_pool() {
        // Other tests load and drop modules meanwhile, so only the own registration is relied
        // on: while it is alive, the counter is at least 1.
        let _live = LiveModule::acquire();
        match set_thread_count(1) {
            Err(ThreadsError::ModulesAlive { alive }) => assert!(alive >= 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_index_runs_once_and_a_panic_reaches_the_caller() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let hits: Vec<AtomicU32> = (0..257).map(|_| AtomicU32::new(0)).collect();
        run_on_pool(hits.len(), &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        })
        .expect("pool run");
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));

        let caught = std::panic::catch_unwind(|| {
            let _ = run_on_pool(8, &|i| assert_ne!(i, 5, "task {i} failed"));
        });
        let payload = caught.expect_err("the panic of task 5 is resumed");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("task 5 failed"), "{message}");
        // The pool still works after a task panicked.
        run_on_pool(4, &|_| ()).expect("pool run after a panic");

        // A nested run (which would deadlock on the pool's lock) runs inline.
        let nested = AtomicU32::new(0);
        run_on_pool(3, &|_| {
            run_on_pool(5, &|_| {
                nested.fetch_add(1, Ordering::Relaxed);
            })
            .expect("nested run");
        })
        .expect("outer run");
        assert_eq!(nested.into_inner(), 15);
    }
}
