//! Property tests of the token samplers on hostile logits (NaN, ±inf, huge values, ties, rows
//! with no finite entry): they never panic, fail only with `NoValidToken` when no entry is
//! finite, and only ever choose a finite entry that the sampler's own definition allows
//! (argmax with the lowest index on ties; one of the k best; any finite entry for top-p).
//! The reference for each property is computed here, independently of `sampler::base`.

use diffulex_edge::runtime::sampler::{GreedySampler, TokenSampler, TopKSampler, TopPSampler};
use diffulex_edge::runtime::EngineError;
use proptest::prelude::*;

/// One logit drawn from a hostile mix: ordinary values, exact ties, huge magnitudes, NaN, ±inf.
fn logit() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -20.0f32..20.0,
        3 => (0i32..3).prop_map(|x| x as f32),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => prop_oneof![Just(f32::MAX), Just(-f32::MAX), Just(f32::MIN_POSITIVE)],
    ]
}

/// A row of 1..64 logits, sometimes forced to contain no finite entry at all.
fn row() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        6 => prop::collection::vec(logit(), 1..64),
        1 => prop::collection::vec(
            prop_oneof![Just(f32::NEG_INFINITY), Just(f32::NAN), Just(f32::INFINITY)],
            1..16
        ),
    ]
}

fn has_finite(row: &[f32]) -> bool {
    row.iter().any(|x| x.is_finite())
}

/// Checks the shared contract and returns the chosen index when there was one.
fn check_common(row: &[f32], got: Result<usize, EngineError>) -> Option<usize> {
    match got {
        Ok(i) => {
            assert!(i < row.len(), "index {i} outside row of {}", row.len());
            assert!(
                row[i].is_finite(),
                "chose non-finite logit {} at {i}",
                row[i]
            );
            Some(i)
        }
        Err(EngineError::NoValidToken { .. }) => {
            assert!(
                !has_finite(row),
                "NoValidToken although {row:?} has a finite entry"
            );
            None
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

proptest! {
    #[test]
    fn greedy_is_lowest_index_argmax_of_finite(row in row()) {
        let got = GreedySampler::new().sample(&row);
        if let Some(i) = check_common(&row, got) {
            let want = row
                .iter()
                .enumerate()
                .filter(|(_, x)| x.is_finite())
                .fold(None::<(usize, f32)>, |best, (j, &x)| match best {
                    Some((_, b)) if b >= x => best,
                    _ => Some((j, x)),
                });
            prop_assert_eq!(Some(i), want.map(|w| w.0));
        }
    }

    #[test]
    fn top_k_chooses_among_k_best(row in row(), k in 1usize..10, t in 0.05f64..5.0, seed: u64) {
        let mut s = TopKSampler::new(k, t).unwrap().with_seed(seed);
        for _ in 0..4 {
            if let Some(i) = check_common(&row, s.sample(&row)) {
                let better = row.iter().filter(|x| x.is_finite() && **x > row[i]).count();
                prop_assert!(better < k, "chose {i} with {better} finite logits above it, k = {k}");
            }
        }
    }

    #[test]
    fn top_p_chooses_finite_and_top_when_p_tiny(row in row(), p in 0.0001f64..=1.0, t in 0.05f64..5.0, seed: u64) {
        let mut s = TopPSampler::new(p, t).unwrap().with_seed(seed);
        let got = check_common(&row, s.sample(&row));
        // With a nucleus smaller than the top token's own probability only argmax survives.
        let finite: Vec<f64> = row.iter().filter(|x| x.is_finite()).map(|&x| x as f64 / t).collect();
        if let (Some(i), false) = (got, finite.is_empty()) {
            let m = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = finite.iter().map(|x| (x - m).exp()).sum();
            if m.is_finite() && 1.0 / z > p + 1e-9 {
                let top = row.iter().filter(|x| x.is_finite()).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                prop_assert_eq!(row[i], top);
            }
        }
    }

    /// Temperatures so small that logit / temperature overflows: still no panic and a finite pick.
    #[test]
    fn extreme_temperatures_never_panic(row in row(), k in 1usize..10, p in 0.0001f64..=1.0, t in prop_oneof![Just(1e-300f64), Just(f64::MIN_POSITIVE), Just(1e300)], seed: u64) {
        check_common(&row, TopKSampler::new(k, t).unwrap().with_seed(seed).sample(&row));
        check_common(&row, TopPSampler::new(p, t).unwrap().with_seed(seed).sample(&row));
    }

    /// The T -> 0 limit: at temperatures where `logit / T` overflows f64 (or lies just below),
    /// softmax(logits / T) puts all mass on the largest finite logit, so top-k and top-p pick a
    /// maximum: the greedy token when it is unique, one of the tied maxima otherwise. (Before
    /// the fix, `inf - inf` made every weight NaN and the draw fell to the last candidate.)
    #[test]
    fn tiny_temperatures_pick_the_greedy_token(row in row(), k in 1usize..10, p in 0.0001f64..=1.0, t in prop_oneof![Just(1e-300f64), Just(1e-310), Just(5e-324), Just(f64::MIN_POSITIVE)], seed: u64) {
        let top = row.iter().filter(|x| x.is_finite()).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let ties = row.iter().filter(|&&x| x == top).count();
        let greedy = GreedySampler::new().sample(&row).ok();
        for got in [
            TopKSampler::new(k, t).unwrap().with_seed(seed).sample(&row),
            TopPSampler::new(p, t).unwrap().with_seed(seed).sample(&row),
        ] {
            if let Some(i) = check_common(&row, got) {
                prop_assert_eq!(row[i], top, "T={:e} chose {} in {:?}", t, i, row);
                if ties == 1 {
                    prop_assert_eq!(Some(i), greedy);
                }
            }
        }
    }

    /// The same seed replays the same choices after `reset`.
    #[test]
    fn reset_replays(row in row(), k in 1usize..10, seed: u64) {
        let mut s = TopKSampler::new(k, 1.0).unwrap().with_seed(seed);
        let a: Vec<_> = (0..5).map(|_| s.sample(&row).ok()).collect();
        s.reset();
        let b: Vec<_> = (0..5).map(|_| s.sample(&row).ok()).collect();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn invalid_sampler_settings_are_errors_not_panics() {
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(TopKSampler::new(3, t).is_err(), "temperature {t}");
        assert!(TopPSampler::new(0.5, t).is_err(), "temperature {t}");
    }
    assert!(TopKSampler::new(0, 1.0).is_err());
    for p in [0.0, -0.1, 1.0001, f64::NAN] {
        assert!(TopPSampler::new(p, 1.0).is_err(), "p {p}");
    }
    assert!(GreedySampler::new().sample(&[]).is_err());
}
