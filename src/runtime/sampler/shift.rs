//! Where a canvas position's logits live in a forward's output.
//!
//! Unshifted families (SDAR, LLaDA): position j reads row j. Shifted families (Fast-dLLM v2,
//! Dream): the model predicts token j from the hidden state at j − 1, so j reads row j − 1 of
//! the same forward. There is no wrap-around: a position whose predecessor is not in the
//! forward has no logits (the engines never ask for one; the prototype silently used the block's
//! last row instead).

/// Row of the output that holds the logits for absolute position `pos`, for a forward whose
/// first input token sits at absolute position `start`.
pub(crate) fn logit_row(pos: usize, start: usize, shifted: bool) -> Option<usize> {
    let src = if shifted { pos.checked_sub(1)? } else { pos };
    src.checked_sub(start)
}

/// The rows a forward starting at `start` must return to score `positions`: their
/// [`logit_row`]s (a position without one reads row 0, as the decoders do), ascending and
/// unique, written to `out`. Asking the model for these rows alone skips the output layer of the
/// rest.
pub(crate) fn rows_for(positions: &[usize], start: usize, shifted: bool, out: &mut Vec<usize>) {
    out.clear();
    out.extend(
        positions
            .iter()
            .map(|&p| logit_row(p, start, shifted).unwrap_or(0)),
    );
    out.sort_unstable();
    out.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_positions_read_the_row_before() {
        assert_eq!(logit_row(10, 8, false), Some(2));
        assert_eq!(logit_row(10, 8, true), Some(1));
        assert_eq!(logit_row(8, 8, true), None);
    }

    #[test]
    fn rows_are_ascending_unique_and_default_to_row_0() {
        let mut rows = Vec::new();
        rows_for(&[9, 10, 12], 8, true, &mut rows);
        assert_eq!(rows, [0, 1, 3]);
        rows_for(&[0, 1], 0, true, &mut rows);
        assert_eq!(rows, [0]);
    }
}
