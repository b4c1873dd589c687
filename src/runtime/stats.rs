//! Per-generation counters and timings, and their JSON form.

use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::diffusion::StopReason;

/// What one `generate` call cost.
///
/// `execute_time` is time spent inside model forwards; `engine_time()` is the rest
/// (sampling, selection, bookkeeping).
///
/// Serializes (serde) as a flat object: every counter under its field name, durations as
/// milliseconds (`f64`) under `*_ms` names (`prefill_ms`, `decode_ms`, `execute_ms`,
/// `total_ms`), and the derived `engine_ms`, `tokens_per_forward` and `tokens_per_second`.
/// This is the `stats` object of `diffulex generate --json`.
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
    /// Prompt tokens whose prefill was skipped because an earlier generation left their K/V in
    /// the cache (whole blocks of a common prefix; SDAR and Fast-dLLM v2 with a cache only).
    pub reused_prompt_tokens: usize,
    /// Input tokens the forwards ran over, summed: what a forward's compute grows with, and
    /// what the caches cut (Fast-dLLM v2's sub-block cache feeds 8 tokens instead of 32).
    pub tokens_fed: usize,
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

/// Milliseconds as a float, the unit of every `*_ms` key.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The flat JSON form described on [`GenerationStats`].
///
/// ```
/// use std::time::Duration;
/// use diffulex_edge::runtime::GenerationStats;
/// let stats = GenerationStats {
///     decode_forwards: 2, tokens_committed: 6,
///     total_time: Duration::from_millis(30), execute_time: Duration::from_millis(20),
///     ..Default::default()
/// };
/// let json = serde_json::to_value(&stats).unwrap();
/// assert_eq!(json["tokens_per_forward"], 3.0);
/// assert_eq!(json["total_ms"], 30.0);
/// assert_eq!(json["engine_ms"], 10.0);
/// ```
impl Serialize for GenerationStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Destructured, so a counter added to the struct cannot be left out of the JSON.
        let GenerationStats {
            forwards,
            prefill_forwards,
            decode_forwards,
            commit_forwards,
            cfg_forwards,
            prefill_time,
            decode_time,
            execute_time,
            total_time,
            tokens_committed,
            tokens_generated,
            logit_rows,
            reused_prompt_tokens,
            tokens_fed,
        } = self;
        let mut out = serializer.serialize_struct("GenerationStats", 17)?;
        out.serialize_field("forwards", forwards)?;
        out.serialize_field("prefill_forwards", prefill_forwards)?;
        out.serialize_field("decode_forwards", decode_forwards)?;
        out.serialize_field("commit_forwards", commit_forwards)?;
        out.serialize_field("cfg_forwards", cfg_forwards)?;
        out.serialize_field("tokens_generated", tokens_generated)?;
        out.serialize_field("tokens_committed", tokens_committed)?;
        out.serialize_field("tokens_per_forward", &self.tokens_per_forward())?;
        out.serialize_field("logit_rows", logit_rows)?;
        out.serialize_field("reused_prompt_tokens", reused_prompt_tokens)?;
        out.serialize_field("tokens_fed", tokens_fed)?;
        out.serialize_field("tokens_per_second", &self.tokens_per_second())?;
        out.serialize_field("prefill_ms", &ms(*prefill_time))?;
        out.serialize_field("decode_ms", &ms(*decode_time))?;
        out.serialize_field("execute_ms", &ms(*execute_time))?;
        out.serialize_field("engine_ms", &ms(self.engine_time()))?;
        out.serialize_field("total_ms", &ms(*total_time))?;
        out.end()
    }
}

/// A string: `"Eos(<id>)"`, `"MaxNewTokens"` or `"Cancelled"` (the `stop_reason` of
/// `diffulex generate --json`; the spelling of the variants, kept stable for scripts).
///
/// ```
/// use diffulex_edge::runtime::StopReason;
/// assert_eq!(serde_json::to_value(StopReason::Eos(2)).unwrap(), "Eos(2)");
/// assert_eq!(serde_json::to_value(StopReason::MaxNewTokens).unwrap(), "MaxNewTokens");
/// ```
// Implemented here, beside the stats it is reported with, to keep `diffusion.rs` about decoding.
impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StopReason::Eos(id) => serializer.collect_str(&format_args!("Eos({id})")),
            StopReason::MaxNewTokens => serializer.serialize_str("MaxNewTokens"),
            StopReason::Cancelled => serializer.serialize_str("Cancelled"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_the_cli_reports() {
        let stats = GenerationStats {
            forwards: 7,
            prefill_forwards: 1,
            decode_forwards: 4,
            commit_forwards: 2,
            cfg_forwards: 0,
            prefill_time: Duration::from_micros(1500),
            decode_time: Duration::from_millis(8),
            execute_time: Duration::from_millis(6),
            total_time: Duration::from_millis(10),
            tokens_committed: 12,
            tokens_generated: 10,
            logit_rows: 40,
            reused_prompt_tokens: 32,
            tokens_fed: 96,
        };
        let json = serde_json::to_value(&stats).unwrap();
        let expected = serde_json::json!({
            "forwards": 7, "prefill_forwards": 1, "decode_forwards": 4, "commit_forwards": 2,
            "cfg_forwards": 0, "tokens_generated": 10, "tokens_committed": 12,
            "tokens_per_forward": 3.0, "logit_rows": 40, "reused_prompt_tokens": 32,
            "tokens_fed": 96,
            "tokens_per_second": 1000.0,
            "prefill_ms": 1.5, "decode_ms": 8.0, "execute_ms": 6.0, "engine_ms": 4.0,
            "total_ms": 10.0,
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn stop_reasons_serialize_as_their_names() {
        for (reason, text) in [
            (StopReason::Eos(151643), "\"Eos(151643)\""),
            (StopReason::Eos(-1), "\"Eos(-1)\""),
            (StopReason::MaxNewTokens, "\"MaxNewTokens\""),
            (StopReason::Cancelled, "\"Cancelled\""),
        ] {
            assert_eq!(serde_json::to_string(&reason).unwrap(), text);
            // The spelling `{:?}` gave before it was serialized.
            assert_eq!(format!("\"{reason:?}\""), text);
        }
    }
}
