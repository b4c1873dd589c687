//! Per-generation counters and timings.

use std::time::Duration;

/// What one `generate` call cost.
///
/// `execute_time` is time spent inside model forwards; `engine_time()` is the rest
/// (sampling, selection, bookkeeping).
///
/// ```
/// use diffulex_edge::runtime::GenerationStats;
/// let s = GenerationStats { forwards: 4, decode_forwards: 4, tokens_committed: 8, ..Default::default() };
/// assert_eq!(s.tokens_per_forward(), 2.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationStats {
    /// All forward calls (prefill + denoising + commit).
    pub forwards: usize,
    /// Forwards that only encoded the prompt.
    pub prefill_forwards: usize,
    /// Denoising forwards (the ones that commit tokens).
    pub decode_forwards: usize,
    /// Forwards that only write a finished block's K/V (and give Fast-dLLM v2 its next token).
    pub commit_forwards: usize,
    /// Classifier-free-guidance forwards (LLaDA with cfg_scale > 0).
    pub cfg_forwards: usize,
    /// Wall time of the prompt prefill.
    pub prefill_time: Duration,
    /// Wall time after the prefill.
    pub decode_time: Duration,
    /// Time spent inside model forwards.
    pub execute_time: Duration,
    /// Whole `generate` wall time.
    pub total_time: Duration,
    /// Tokens committed (including ones later cut after a stop token).
    pub tokens_committed: usize,
    /// Tokens returned.
    pub tokens_generated: usize,
    /// Rows of logits the forwards computed: every input row, unless the model returns only the
    /// rows a step reads ([`crate::runtime::DiffusionModel::forward_rows`], a contract-2 `.pte`).
    pub logit_rows: usize,
}

impl GenerationStats {
    /// Time outside model forwards.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = diffulex_edge::runtime::GenerationStats { total_time: Duration::from_millis(5), execute_time: Duration::from_millis(3), ..Default::default() };
    /// assert_eq!(s.engine_time(), Duration::from_millis(2));
    /// ```
    pub fn engine_time(&self) -> Duration {
        self.total_time.saturating_sub(self.execute_time)
    }

    /// Committed tokens per denoising forward (the parallelism the sampler achieved).
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::GenerationStats::default().tokens_per_forward(), 0.0);
    /// ```
    pub fn tokens_per_forward(&self) -> f64 {
        if self.decode_forwards == 0 {
            0.0
        } else {
            self.tokens_committed as f64 / self.decode_forwards as f64
        }
    }

    /// Returned tokens per second of total wall time.
    ///
    /// ```
    /// let s = diffulex_edge::runtime::GenerationStats { tokens_generated: 10, total_time: std::time::Duration::from_secs(2), ..Default::default() };
    /// assert_eq!(s.tokens_per_second(), 5.0);
    /// ```
    pub fn tokens_per_second(&self) -> f64 {
        let s = self.total_time.as_secs_f64();
        if s > 0.0 {
            self.tokens_generated as f64 / s
        } else {
            0.0
        }
    }
}
