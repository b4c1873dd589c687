//! The decoding canvas: prompt followed by generated tokens and mask placeholders.

/// Prompt + generation region; masked positions hold `mask`.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    tokens: Vec<i64>,
    prompt_len: usize,
    mask: i64,
}

impl Canvas {
    /// Prompt followed by `gen_len` masks.
    pub(crate) fn new(prompt: &[i64], gen_len: usize, mask: i64) -> Self {
        let mut tokens = Vec::with_capacity(prompt.len() + gen_len);
        tokens.extend_from_slice(prompt);
        tokens.resize(prompt.len() + gen_len, mask);
        Canvas {
            tokens,
            prompt_len: prompt.len(),
            mask,
        }
    }

    /// All tokens (prompt first).
    pub(crate) fn tokens(&self) -> &[i64] {
        &self.tokens
    }

    /// Canvas length.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Prompt length.
    pub(crate) fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    /// Masked positions in `range`, ascending.
    pub(crate) fn masked_in(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = usize> + '_ {
        range.filter(move |&p| self.tokens[p] == self.mask)
    }

    /// Whether position `pos` (inside the canvas) still holds the mask.
    pub(crate) fn is_masked(&self, pos: usize) -> bool {
        self.tokens[pos] == self.mask
    }

    /// Writes a token into a masked position. Committed and prompt positions are never
    /// overwritten: the official SDAR code can, and this guard is what prevents it.
    pub(crate) fn commit(&mut self, pos: usize, token: i64) -> bool {
        if pos < self.prompt_len || self.tokens[pos] != self.mask {
            return false;
        }
        self.tokens[pos] = token;
        true
    }

    /// Appends masks up to length `len` (block families grow the canvas block by block).
    pub(crate) fn grow_to(&mut self, len: usize) {
        if len > self.tokens.len() {
            self.tokens.resize(len, self.mask);
        }
    }

    /// Whether the generation up to and including the first stop id in `[prompt_len, end)` is
    /// fully committed; returns that stop id's position. Once this holds, nothing decoded later
    /// can change the (truncated) output, so every family may stop.
    pub(crate) fn finished_through_stop(&self, end: usize, stop_ids: &[i64]) -> Option<usize> {
        let end = end.min(self.tokens.len());
        for p in self.prompt_len..end {
            let t = self.tokens[p];
            if t == self.mask {
                return None;
            }
            if stop_ids.contains(&t) {
                return Some(p);
            }
        }
        None
    }

    /// The generated tokens: the committed prefix of `[prompt_len, end)`, cut after the first stop id.
    pub(crate) fn output(&self, end: usize, stop_ids: &[i64]) -> (Vec<i64>, Option<i64>) {
        let end = end.min(self.tokens.len());
        let mut out = Vec::with_capacity(end.saturating_sub(self.prompt_len));
        for &t in &self.tokens[self.prompt_len.min(end)..end] {
            if t == self.mask {
                break;
            }
            out.push(t);
            if stop_ids.contains(&t) {
                return (out, Some(t));
            }
        }
        (out, None)
    }
}

#[cfg(test)]
mod examples {
    use super::*;

    #[test]
    fn canvas_example() {
        let mut c = Canvas::new(&[5, 6], 4, 99);
        assert_eq!(c.tokens(), &[5, 6, 99, 99, 99, 99]);
        c.commit(3, 7);
        assert_eq!(c.masked_in(2..6).collect::<Vec<_>>(), vec![2, 4, 5]);
    }

    #[test]
    fn new_example() {
        let c = Canvas::new(&[1], 2, 9);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn tokens_example() {
        let c = Canvas::new(&[1], 1, 9);
        assert_eq!(c.tokens(), &[1, 9]);
    }

    #[test]
    fn len_example() {
        assert_eq!(Canvas::new(&[1], 3, 9).len(), 4);
    }

    #[test]
    fn prompt_len_example() {
        assert_eq!(Canvas::new(&[1, 2], 3, 9).prompt_len(), 2);
    }

    #[test]
    fn masked_in_example() {
        let c = Canvas::new(&[1], 2, 9);
        assert_eq!(c.masked_in(0..3).count(), 2);
    }

    #[test]
    fn commit_example() {
        let mut c = Canvas::new(&[1], 1, 9);
        assert!(c.commit(1, 4));
        assert!(!c.commit(1, 5)); // committed tokens are final
        assert!(!c.commit(0, 5)); // the prompt too
    }

    #[test]
    fn grow_to_example() {
        let mut c = Canvas::new(&[1], 0, 9);
        c.grow_to(4);
        assert_eq!(c.tokens(), &[1, 9, 9, 9]);
    }

    #[test]
    fn finished_through_stop_example() {
        let mut c = Canvas::new(&[1], 3, 9);
        c.commit(2, 0);
        assert_eq!(c.finished_through_stop(4, &[0]), None); // position 1 still masked
        c.commit(1, 5);
        assert_eq!(c.finished_through_stop(4, &[0]), Some(2));
    }

    #[test]
    fn output_example() {
        let mut c = Canvas::new(&[1], 3, 9);
        c.commit(1, 5);
        c.commit(2, 0);
        assert_eq!(c.output(4, &[0]), (vec![5, 0], Some(0)));
    }
}
