//! What a cached model's KV cache holds between generations, so that a later prompt that
//! starts with the same tokens (a chat transcript) prefills only what is new.
//!
//! The rule, for block-causal families (SDAR, Fast-dLLM v2): the K/V of a position depend only
//! on the token ids of its own block and of the blocks before it. A forward `(tokens,
//! input_pos = s)` overwrites the cache from `s` on, and the K/V it writes for a block it feeds
//! *whole* are exactly what a prefill of those ids writes. So after every forward the engine
//! knows the ids whose K/V sit at `[0, n)`:
//!
//! - before the forward, forget everything from the block containing `s` on (it is about to
//!   be overwritten; if the forward then fails, nothing past `s` is trusted);
//! - after it, if the remembered prefix reached `s`, append the ids of the whole blocks the
//!   forward fed (a trailing partial block saw only part of its block, so it is not final).
//!
//! The ids are recorded as they were *fed*, masks included. A block decoded with masks still
//! in it is therefore remembered with those mask ids, and no prompt can match it (prompts never
//! hold the mask token). That covers the last block of a generation, whose K/V were last written
//! by a denoising forward, and tokens after a stop id: they are whatever the forward fed, and a
//! later prompt reuses them only if it holds the same ids.

/// The token ids whose K/V are in the model's cache at positions `[0, len)`, whole blocks only.
#[derive(Debug, Clone, Default)]
pub(crate) struct KvPrefix {
    ids: Vec<i64>,
}

impl KvPrefix {
    /// The remembered ids (a multiple of the block size long).
    pub(crate) fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// Forgets everything: the next forward must start at 0 to be remembered.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
    }

    /// Length of the longest common prefix of `prompt` and the remembered ids, rounded down to
    /// whole blocks of `block_size`.
    pub(crate) fn reusable(&self, prompt: &[i64], block_size: usize) -> usize {
        let common = self
            .ids
            .iter()
            .zip(prompt)
            .take_while(|(cached, new)| cached == new)
            .count();
        common - common % block_size
    }

    /// Called before a forward that writes from `start`: forgets what it overwrites. Returns
    /// whether the forward's whole blocks may be appended after it (the remembered prefix
    /// reaches `start`, which is a block boundary).
    pub(crate) fn before_forward(&mut self, start: usize, block_size: usize) -> bool {
        let kept = self.ids.len().min(start - start % block_size);
        self.ids.truncate(kept);
        kept == start
    }

    /// Called after a successful forward that fed `fed` from `start` (where
    /// [`KvPrefix::before_forward`] returned true): remembers its whole blocks.
    pub(crate) fn after_forward(&mut self, fed: &[i64], block_size: usize) {
        let whole = fed.len() - fed.len() % block_size;
        self.ids.extend_from_slice(&fed[..whole]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_keeps_what_is_before_it_and_appends_whole_blocks() {
        let mut kv = KvPrefix::default();
        assert!(kv.before_forward(0, 4));
        kv.after_forward(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 4);
        assert_eq!(kv.ids(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        // Rewriting the second block drops it, then remembers it with the ids fed.
        assert!(kv.before_forward(4, 4));
        assert_eq!(kv.ids(), &[1, 2, 3, 4]);
        kv.after_forward(&[5, 6, 7, 0], 4);
        assert_eq!(kv.ids(), &[1, 2, 3, 4, 5, 6, 7, 0]);
        // A forward past the remembered prefix reads slots nobody tracked: nothing appended.
        assert!(!kv.before_forward(12, 4));
        // A forward starting inside a block drops that whole block.
        assert!(!kv.before_forward(6, 4));
        assert_eq!(kv.ids(), &[1, 2, 3, 4]);
    }

    #[test]
    fn reuse_is_the_common_prefix_in_whole_blocks() {
        let mut kv = KvPrefix::default();
        kv.before_forward(0, 4);
        kv.after_forward(&[1, 2, 3, 4, 5, 6, 7, 8], 4);
        assert_eq!(kv.reusable(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 4), 8);
        assert_eq!(kv.reusable(&[1, 2, 3, 4, 5, 6, 0, 8, 9], 4), 4);
        assert_eq!(kv.reusable(&[1, 2, 3], 4), 0);
        assert_eq!(kv.reusable(&[9, 2, 3, 4, 5], 4), 0);
        kv.clear();
        assert_eq!(kv.reusable(&[1, 2, 3, 4], 4), 0);
    }
}
