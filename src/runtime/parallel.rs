//! Threads for scoring the rows of one denoising step.
//!
//! Between two forwards the engine scores every still-masked position of the step against the
//! whole vocabulary: at a 152k vocabulary and a 32-token block that is five million logits per
//! step. Rows are independent, so a greedy step hands them to a [`RowPool`]. The pool comes
//! from the model ([`DiffusionModel::row_pool`](super::DiffusionModel::row_pool)): a `.pte`
//! model hands them to ExecuTorch's own thread pool, whose workers are still spinning for work
//! right after `execute` (threads of our own had to be spawned and then competed with them);
//! any other model scores on the calling thread ([`SequentialPool`]) unless it provides a pool.
//! [`DiffusionEngine::with_row_pool`](super::DiffusionEngine::with_row_pool) overrides the
//! model's choice.
//!
//! Each row is reduced by one thread in its fixed order, so the results are bit-identical to a
//! sequential run whatever the pool and its thread count.

use std::sync::OnceLock;

/// Runs independent row tasks, possibly on several threads.
///
/// Between two forwards the engine scores every still-masked position of the step against the
/// whole vocabulary: at a 152k vocabulary and a 32-token block that is five million logits per
/// step. Rows are independent, so a greedy step hands them to a pool. The pool comes from the
/// model ([`DiffusionModel::row_pool`](super::DiffusionModel::row_pool)): a `.pte` model hands
/// them to ExecuTorch's thread pool, any other model scores on the calling thread
/// ([`SequentialPool`]) unless it provides a pool;
/// [`DiffusionEngine::with_row_pool`](super::DiffusionEngine::with_row_pool) overrides the
/// model's choice.
///
/// The engine calls [`RowPool::run`] with the rows of one greedy step; each task writes its own
/// result slot, so a pool decides only *where* tasks run, never what they compute: the tokens
/// are bit-identical whatever the pool and its thread count.
///
/// ```
/// use diffulex_edge::runtime::RowPool;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// /// Runs the tasks on scoped threads of the standard library, two at a time.
/// struct Scoped;
/// impl RowPool for Scoped {
///     fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
///         std::thread::scope(|s| {
///             for half in [0..n / 2, n / 2..n] {
///                 s.spawn(move || half.for_each(f));
///             }
///         });
///     }
/// }
/// let sum = AtomicUsize::new(0);
/// Scoped.run(100, &|i| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 4950);
/// ```
pub trait RowPool: Send + Sync {
    /// Calls `f(i)` for the indices `i` in `0..n`, each at most once, concurrently and in any
    /// order, and returns when every call it made has returned. A pool that cannot run some
    /// tasks (its runtime failed) may leave them out: the caller runs the missing ones on its
    /// own thread. A panic in `f` should reach the caller.
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync));
}

/// Runs every task in index order on the calling thread: the pool of models that bring none.
///
/// ```
/// use diffulex_edge::runtime::{RowPool, SequentialPool};
/// let seen = std::sync::Mutex::new(Vec::new());
/// SequentialPool.run(3, &|i| seen.lock().unwrap().push(i));
/// assert_eq!(seen.into_inner().unwrap(), [0, 1, 2]);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SequentialPool;

impl RowPool for SequentialPool {
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..n).for_each(f);
    }
}

/// Below this many logits in a step, handing rows to a pool costs more than it saves.
const MIN_PARALLEL_LOGITS: usize = 1 << 18;

/// `(0..n).map(f)` on `pool` when the step is big enough (`n * logits_per_item`); the output
/// is in index order either way.
pub(crate) fn map_rows<T: Send + Sync>(
    pool: &dyn RowPool,
    n: usize,
    logits_per_item: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let small = n < 2 || n.saturating_mul(logits_per_item) < MIN_PARALLEL_LOGITS;
    if small {
        return (0..n).map(f).collect();
    }
    let slots: Vec<OnceLock<T>> = (0..n).map(|_| OnceLock::new()).collect();
    // A pool that left tasks out (its runtime failed to run them) leaves their slots empty;
    // they are filled below on this thread, so the result is the same either way.
    pool.run(n, &|i| {
        let _ = slots[i].set(f(i));
    });
    slots
        .into_iter()
        .enumerate()
        .map(|(i, slot)| slot.into_inner().unwrap_or_else(|| f(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the odd indices only, in reverse, on another thread: the caller must fill the rest.
    struct OddsReversed;
    impl RowPool for OddsReversed {
        fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
            std::thread::scope(|s| {
                s.spawn(|| (0..n).rev().filter(|i| i % 2 == 1).for_each(f));
            });
        }
    }

    #[test]
    fn order_is_kept_for_any_split() {
        for n in [0usize, 1, 2, 3, 7, 33] {
            let want: Vec<usize> = (0..n).map(|i| i * i).collect();
            for pool in [&SequentialPool as &dyn RowPool, &OddsReversed] {
                assert_eq!(map_rows(pool, n, MIN_PARALLEL_LOGITS, |i| i * i), want);
                assert_eq!(map_rows(pool, n, 1, |i| i * i), want);
            }
        }
    }
}
