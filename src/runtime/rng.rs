//! Portable seeded random numbers: xoshiro256** seeded by SplitMix64.
//!
//! The Python reference decoders (`diffulex_export.reference.rng`) implement the same
//! generator, so a seed gives bit-identical draws in both languages. docs/decoding.md lists
//! the order in which every decoding mode consumes draws.

/// SplitMix64 output function (also used to hash in the test model).
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The engine's sampling stream: xoshiro256** seeded by SplitMix64, bit-identical to the
/// Python reference's, so a seed gives the same draws in both languages. Public for tools that
/// need reproducible random inputs (the benchmark's prompts).
///
/// ```
/// use diffulex_edge::runtime::Rng;
/// let (mut a, mut b) = (Rng::new(7), Rng::new(7));
/// assert_eq!(a.next_u64(), b.next_u64());
/// let u = a.next_f64();
/// assert!((0.0..1.0).contains(&u));
/// ```
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds the four state words with consecutive SplitMix64 outputs of `seed`.
    ///
    /// ```
    /// let mut r = diffulex_edge::runtime::Rng::new(1);
    /// let _ = r.next_u64();
    /// ```
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix64(sm)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// Next 64 random bits.
    ///
    /// ```
    /// let mut r = diffulex_edge::runtime::Rng::new(1);
    /// assert_ne!(r.next_u64(), r.next_u64());
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) from the top 53 bits (exact in float64).
    ///
    /// ```
    /// let mut r = diffulex_edge::runtime::Rng::new(1);
    /// assert!(r.next_f64() < 1.0);
    /// ```
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_published_vector() {
        // First SplitMix64 output for seed 0 (Vigna's reference implementation).
        assert_eq!(mix64(0x9E37_79B9_7F4A_7C15), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn uniform_range_and_reproducibility() {
        let mut r = Rng::new(42);
        let v: Vec<f64> = (0..1000).map(|_| r.next_f64()).collect();
        assert!(v.iter().all(|u| (0.0..1.0).contains(u)));
        let mut r2 = Rng::new(42);
        assert!(v.iter().all(|u| *u == r2.next_f64()));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 0.5).abs() < 0.05);
    }
}
