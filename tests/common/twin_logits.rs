//! Comparing the logits of two programs of the same weights (a twin exported another way:
//! another backend, other operators) call by call. Loaded with `#[path]` by the test files that
//! need it.

use diffulex_edge::runtime::{DiffusionModel, PteModel};

/// Feeds `reference` and `twin` the same calls (`tokens`, `input_pos`) and returns the largest
/// |difference| of any logit. Panics, naming `name`, the call and its length, when the row
/// counts differ, a twin logit is not finite, or the difference passes `tolerance`.
pub fn max_logit_difference(
    name: &str,
    reference: &mut PteModel,
    twin: &mut PteModel,
    calls: &[(Vec<i64>, Option<usize>)],
    tolerance: f32,
) -> f32 {
    let mut worst = 0f32;
    for (i, (tokens, pos)) in calls.iter().enumerate() {
        let want = reference.forward(tokens, *pos).unwrap();
        let want: Vec<Vec<f32>> = (0..want.rows()).map(|r| want.row(r).to_vec()).collect();
        let got = twin.forward(tokens, *pos).unwrap();
        assert_eq!(got.rows(), want.len(), "{name} call {i}");
        for (r, want_row) in want.iter().enumerate() {
            for (a, b) in got.row(r).iter().zip(want_row) {
                assert!(a.is_finite(), "{name} call {i} row {r}: {a}");
                worst = worst.max((a - b).abs());
            }
        }
        assert!(
            worst <= tolerance,
            "{name} call {i} ({} tokens at {pos:?}): max |twin - reference| = {worst}",
            tokens.len()
        );
    }
    worst
}

/// Deterministic tokens covering the vocabulary (no RNG crate needed): call `salt`'s `len` ids.
pub fn spread_tokens(len: usize, salt: i64, vocab: i64) -> Vec<i64> {
    (0..len as i64)
        .map(|j| (j * 7919 + salt * 104_729) % vocab)
        .collect()
}
