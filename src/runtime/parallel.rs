//! Threads for scoring the rows of one denoising step.
//!
//! Between two `execute` calls XNNPACK's thread pool sits idle, while the engine scores every
//! still-masked position of the step against the whole vocabulary: at a 152k vocabulary and a
//! 32-token block that is five million logits per step. Rows are independent, so they are
//! split across threads; each row is still reduced by one thread in its fixed order, so the
//! results are bit-identical to a sequential run whatever the thread count.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 = automatic (see [`scoring_threads`]).
static SCORING_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Below this many logits in a step, spawning threads costs more than it saves.
const MIN_PARALLEL_LOGITS: usize = 1 << 18;

/// Upper bound of the automatic choice: scoring is memory-bound beyond a few cores.
const AUTO_MAX_THREADS: usize = 4;

/// Sets how many threads score the rows of a step, process-wide; 0 restores the automatic
/// choice (the machine's available parallelism, at most 4). Results do not depend on it.
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

/// The number of threads that score the rows of a step (always >= 1).
///
/// ```
/// assert!(diffulex_edge::runtime::parallel::scoring_threads() >= 1);
/// ```
pub fn scoring_threads() -> usize {
    match SCORING_THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(AUTO_MAX_THREADS),
        n => n,
    }
}

/// `(0..n).map(f)` on up to [`scoring_threads`] threads when the step is big enough
/// (`n * logits_per_item`); the output is in index order either way.
///
/// Threads take the next index from a shared counter rather than a fixed range: when the
/// machine is busy and a helper thread starts late, the calling thread simply does more of
/// the rows instead of waiting for the helper's share.
pub(crate) fn map_rows<T: Send>(
    n: usize,
    logits_per_item: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = scoring_threads().min(n);
    if threads <= 1 || n.saturating_mul(logits_per_item) < MIN_PARALLEL_LOGITS {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return done;
            }
            done.push((i, f(i)));
        }
    };
    let mut parts = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut parts = work();
        for h in helpers {
            match h.join() {
                Ok(part) => parts.extend(part),
                // A panic in scoring is a bug; surface it on the caller's thread.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        parts
    });
    parts.sort_unstable_by_key(|&(i, _)| i);
    parts.into_iter().map(|(_, v)| v).collect()
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
