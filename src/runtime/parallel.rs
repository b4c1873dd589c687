//! Threads for scoring the rows of one denoising step.
//!
//! Between two `execute` calls XNNPACK's thread pool sits idle, while the engine scores every
//! still-masked position of the step against the whole vocabulary: at a 152k vocabulary and a
//! 32-token block that is five million logits per step. Rows are independent, so they are
//! handed to that same pool ([`run_on_pool`]): its workers are still spinning for work right
//! after `execute`, so they start at once, where threads of our own had to be spawned and then
//! competed with the spinning workers for the cores (on 2 vCPUs a second thread of our own
//! gained nothing). Each row is still reduced by one thread in its fixed order, so the results
//! are bit-identical to a sequential run whatever the thread count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::pte::threads::{run_on_pool, thread_count};

/// 0 = automatic (see [`scoring_threads`]).
static SCORING_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Below this many logits in a step, handing rows to the pool costs more than it saves.
const MIN_PARALLEL_LOGITS: usize = 1 << 18;

/// Chooses who scores the rows of a step, process-wide: `1` keeps scoring on the calling
/// thread; any other value (0 = automatic, the default) scores on ExecuTorch's thread pool,
/// whose size [`crate::pte::threads::set_thread_count`] sets. Results do not depend on it.
///
/// ```
/// use diffulex_edge::runtime::parallel::{scoring_threads, set_scoring_threads};
/// set_scoring_threads(1);
/// assert_eq!(scoring_threads(), 1);
/// set_scoring_threads(0);
/// assert!(scoring_threads() >= 1);
/// ```
pub fn set_scoring_threads(n: usize) {
    SCORING_THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads that score the rows of a step (always >= 1): 1 if
/// [`set_scoring_threads`] chose the calling thread, otherwise the size of ExecuTorch's thread
/// pool (1 if the runtime has none).
///
/// ```
/// assert!(diffulex_edge::runtime::parallel::scoring_threads() >= 1);
/// ```
pub fn scoring_threads() -> usize {
    match SCORING_THREADS.load(Ordering::Relaxed) {
        1 => 1,
        _ => thread_count().unwrap_or(1).max(1),
    }
}

/// `(0..n).map(f)` on ExecuTorch's thread pool when the step is big enough
/// (`n * logits_per_item`) and [`scoring_threads`] allows; the output is in index order either
/// way.
pub(crate) fn map_rows<T: Send + Sync>(
    n: usize,
    logits_per_item: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let small = n < 2 || n.saturating_mul(logits_per_item) < MIN_PARALLEL_LOGITS;
    if small || SCORING_THREADS.load(Ordering::Relaxed) == 1 {
        return (0..n).map(f).collect();
    }
    let slots: Vec<OnceLock<T>> = (0..n).map(|_| OnceLock::new()).collect();
    // An error from the pool (the runtime failed to run it) leaves some slots empty; they are
    // filled below on this thread, so the result is the same either way.
    let _ = run_on_pool(n, &|i| {
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

    #[test]
    fn order_is_kept_for_any_split() {
        for n in [0usize, 1, 2, 3, 7, 33] {
            let want: Vec<usize> = (0..n).map(|i| i * i).collect();
            assert_eq!(map_rows(n, MIN_PARALLEL_LOGITS, |i| i * i), want);
            assert_eq!(map_rows(n, 1, |i| i * i), want);
        }
    }
}
