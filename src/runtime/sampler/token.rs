//! Token-level samplers: pick one token from one row of logits (autoregressive use, and the
//! building block the seed API names). Seeded and reproducible; greedy ties go to the lowest
//! index; NaN logits are never chosen.

use super::base::{DistSpec, Extra, FilterOrder, Scorer};
use super::{check_temperature, check_top_k, check_top_p};
use crate::runtime::error::{invalid, Result};
use crate::runtime::rng::Rng;

/// Common interface of the token samplers.
///
/// ```
/// use diffulex_edge::runtime::sampler::{GreedySampler, TokenSampler};
/// let mut s = GreedySampler::new();
/// assert_eq!(s.sample(&[0.5, 2.0, 2.0]).unwrap(), 1);
/// ```
pub trait TokenSampler {
    /// Index of the chosen token.
    fn sample(&mut self, logits: &[f32]) -> Result<usize>;
    /// Restarts the random stream from the seed.
    fn reset(&mut self);
}

/// Argmax (lowest index on ties; NaN ignored).
///
/// ```
/// use diffulex_edge::runtime::sampler::{GreedySampler, TokenSampler};
/// assert_eq!(GreedySampler::new().sample(&[f32::NAN, 1.0]).unwrap(), 1);
/// ```
#[derive(Debug, Default)]
pub struct GreedySampler {
    scorer: Scorer,
    rng: Rng0,
}

#[derive(Debug)]
struct Rng0(Rng);
impl Default for Rng0 {
    fn default() -> Self {
        Rng0(Rng::new(0))
    }
}

impl GreedySampler {
    /// A greedy sampler.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::{GreedySampler, TokenSampler};
    /// assert_eq!(GreedySampler::new().sample(&[0.0, 1.0]).unwrap(), 1);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenSampler for GreedySampler {
    fn sample(&mut self, logits: &[f32]) -> Result<usize> {
        Ok(self
            .scorer
            .propose(
                logits,
                None,
                &DistSpec::greedy(),
                Extra::None,
                &mut self.rng.0,
                0,
            )?
            .token)
    }
    fn reset(&mut self) {}
}

/// Samples from the k most likely tokens at a temperature.
///
/// ```
/// use diffulex_edge::runtime::sampler::{TokenSampler, TopKSampler};
/// let mut s = TopKSampler::new(1, 0.8).unwrap().with_seed(7);
/// assert_eq!(s.sample(&[0.0, 3.0, 1.0]).unwrap(), 1);
/// assert!(TopKSampler::new(0, 1.0).is_err());
/// ```
#[derive(Debug)]
pub struct TopKSampler {
    draw: SeededDraw,
}

impl TopKSampler {
    /// `k >= 1`, `temperature > 0` (use [`GreedySampler`] for argmax). Seed 0 until `with_seed`.
    ///
    /// ```
    /// assert!(diffulex_edge::runtime::sampler::TopKSampler::new(5, 0.0).is_err()); // use GreedySampler
    /// ```
    pub fn new(k: usize, temperature: f64) -> Result<Self> {
        check_top_k(Some(k))?;
        check_positive_temperature(temperature)?;
        Ok(TopKSampler {
            draw: SeededDraw::new(temperature, Some(k), None),
        })
    }

    /// Sets the seed and restarts the stream.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::{TokenSampler, TopKSampler};
    /// let l = [0.0f32, 0.1, 0.2, 0.3];
    /// let a = TopKSampler::new(4, 1.0).unwrap().with_seed(5).sample(&l).unwrap();
    /// assert_eq!(a, TopKSampler::new(4, 1.0).unwrap().with_seed(5).sample(&l).unwrap());
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.draw.reseed(seed);
        self
    }
}

impl TokenSampler for TopKSampler {
    fn sample(&mut self, logits: &[f32]) -> Result<usize> {
        self.draw.sample(logits)
    }
    fn reset(&mut self) {
        self.draw.reset();
    }
}

/// Nucleus sampling: the smallest most-likely set whose mass reaches p (the crossing token kept).
///
/// ```
/// use diffulex_edge::runtime::sampler::{TokenSampler, TopPSampler};
/// let mut s = TopPSampler::new(0.5, 1.0).unwrap().with_seed(1);
/// assert_eq!(s.sample(&[5.0, 0.0, 0.0]).unwrap(), 0);
/// assert!(TopPSampler::new(0.0, 1.0).is_err());
/// ```
#[derive(Debug)]
pub struct TopPSampler {
    draw: SeededDraw,
}

impl TopPSampler {
    /// `p` in (0, 1], `temperature > 0`. Seed 0 until `with_seed`.
    ///
    /// ```
    /// assert!(diffulex_edge::runtime::sampler::TopPSampler::new(1.2, 1.0).is_err());
    /// ```
    pub fn new(p: f64, temperature: f64) -> Result<Self> {
        check_top_p(Some(p))?;
        check_positive_temperature(temperature)?;
        Ok(TopPSampler {
            draw: SeededDraw::new(temperature, None, Some(p)),
        })
    }

    /// Sets the seed and restarts the stream.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::{TokenSampler, TopPSampler};
    /// let l = [0.0f32, 0.1, 0.2, 0.3];
    /// let a = TopPSampler::new(0.9, 1.0).unwrap().with_seed(5).sample(&l).unwrap();
    /// assert_eq!(a, TopPSampler::new(0.9, 1.0).unwrap().with_seed(5).sample(&l).unwrap());
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.draw.reseed(seed);
        self
    }
}

impl TokenSampler for TopPSampler {
    fn sample(&mut self, logits: &[f32]) -> Result<usize> {
        self.draw.sample(logits)
    }
    fn reset(&mut self) {
        self.draw.reset();
    }
}

/// The state both sampling samplers share: a fixed distribution spec, the seeded stream and the
/// scorer's reusable buffers.
#[derive(Debug)]
struct SeededDraw {
    spec: DistSpec,
    seed: u64,
    rng: Rng,
    scorer: Scorer,
}

impl SeededDraw {
    fn new(temperature: f64, top_k: Option<usize>, top_p: Option<f64>) -> Self {
        SeededDraw {
            spec: DistSpec {
                temperature,
                top_k,
                top_p,
                order: FilterOrder::TopKThenTopP,
                filter_greedy: false,
            },
            seed: 0,
            rng: Rng::new(0),
            scorer: Scorer::default(),
        }
    }

    fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.reset();
    }

    fn reset(&mut self) {
        self.rng = Rng::new(self.seed);
    }

    fn sample(&mut self, logits: &[f32]) -> Result<usize> {
        Ok(self
            .scorer
            .propose(logits, None, &self.spec, Extra::None, &mut self.rng, 0)?
            .token)
    }
}

fn check_positive_temperature(t: f64) -> Result<()> {
    check_temperature(t)?;
    if t == 0.0 {
        return Err(invalid(
            "temperature",
            t,
            "must be > 0 for a sampling sampler (use GreedySampler)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_samplers_reproduce_after_reset() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut s = TopKSampler::new(10, 1.0).unwrap().with_seed(9);
        let a: Vec<usize> = (0..30).map(|_| s.sample(&logits).unwrap()).collect();
        s.reset();
        let b: Vec<usize> = (0..30).map(|_| s.sample(&logits).unwrap()).collect();
        assert_eq!(a, b);
        let mut t = TopPSampler::new(0.9, 0.7).unwrap().with_seed(9);
        let c: Vec<usize> = (0..30).map(|_| t.sample(&logits).unwrap()).collect();
        t.reset();
        assert_eq!(
            c,
            (0..30)
                .map(|_| t.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        );
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1);
    }

    #[test]
    fn nan_never_chosen() {
        let mut s = TopKSampler::new(3, 1.0).unwrap().with_seed(1);
        for _ in 0..100 {
            assert_ne!(s.sample(&[f32::NAN, 0.0, 0.0, f32::NAN]).unwrap() % 3, 0);
        }
    }
}
