//! Sampler settings by name, for front ends (a command line, a config file, a request body):
//! one flat set of optional knobs that [`BlockSampler::from_options`] turns into the family's
//! sampler. Unset knobs keep the sampler's own defaults (its `Default`), so every default lives
//! once, in the sampler; knobs the family's algorithm has no use for are refused with
//! [`EngineError::OptionNotApplicable`] instead of being silently ignored.
//!
//! Which knob applies to which family is the table in [`not_applicable`]; values are checked
//! against the model when generation starts (each sampler's `validate`), as for a sampler built
//! by hand.

use crate::runtime::error::{EngineError, Result};
use crate::runtime::model::Family;
use crate::runtime::sampler::{
    BlockSampler, CacheMode, DreamAlg, DreamSampler, FastdLLMV2Sampler, LLaDARemasking,
    LLaDASampler, SDARSampler, SdarStrategy,
};

/// Decoding knobs by name; `None` keeps the family sampler's default.
///
/// The names are those of the `diffulex generate` flags (`--block-size` is `block_size`).
/// What each knob means, and for which families, is on its field.
///
/// ```
/// use diffulex_edge::runtime::sampler::{BlockSampler, SDARSampler, SamplerOptions};
/// use diffulex_edge::runtime::{EngineError, Family};
///
/// let options = SamplerOptions { steps: Some(4), strategy: Some("sequential".into()), ..Default::default() };
/// let sampler = BlockSampler::from_options(Family::Sdar, &options)?;
/// let by_hand = SDARSampler { denoising_steps: Some(4), strategy: "sequential".parse()?, ..Default::default() };
/// assert_eq!(sampler, by_hand.into());
///
/// // Nothing set: the family's defaults.
/// let defaults = BlockSampler::from_options(Family::Dream, &SamplerOptions::default())?;
/// assert_eq!(defaults, BlockSampler::default_for(Family::Dream));
///
/// // A knob the family does not use is an error, not ignored.
/// let cfg = SamplerOptions { cfg_scale: Some(1.5), ..Default::default() };
/// assert!(matches!(
///     BlockSampler::from_options(Family::Dream, &cfg),
///     Err(EngineError::OptionNotApplicable { option: "cfg_scale", family: Family::Dream, .. })
/// ));
/// # Ok::<(), EngineError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerOptions {
    /// Block length. SDAR, Fast-dLLM v2: must equal the model's; LLaDA: the
    /// semi-autoregressive block; Dream: Fast-dLLM v1's block (selects its block loop).
    pub block_size: Option<usize>,
    /// Denoising steps. SDAR: per block; LLaDA, Dream: in total. Not Fast-dLLM v2 (it decodes a
    /// sub-block until it is done).
    pub steps: Option<usize>,
    /// Confidence threshold for parallel commits: SDAR's dynamic strategy, Fast-dLLM v2,
    /// LLaDA's and Dream's Fast-dLLM v1 mode.
    pub threshold: Option<f64>,
    /// Commit rule, by its official name. SDAR ([`SdarStrategy`]): `low_confidence_dynamic`,
    /// `low_confidence_static`, `sequential`, `entropy_bounded`. LLaDA ([`LLaDARemasking`]):
    /// `low_confidence`, `random`. Dream ([`DreamAlg`]): `origin`, `maskgit_plus`,
    /// `topk_margin`, `entropy`. Not Fast-dLLM v2.
    pub strategy: Option<String>,
    /// Sampling temperature; 0 decodes greedily. Every family.
    pub temperature: Option<f64>,
    /// Keep the k most likely tokens: SDAR (when sampling), Dream (always). Not Fast-dLLM v2 or
    /// LLaDA.
    pub top_k: Option<usize>,
    /// Nucleus mass in (0, 1]: SDAR and Fast-dLLM v2 (when sampling), Dream (always). Not
    /// LLaDA.
    pub top_p: Option<f64>,
    /// Cumulative entropy bound of SDAR's `entropy_bounded` strategy. SDAR only.
    pub eb_threshold: Option<f64>,
    /// Classifier-free guidance scale. LLaDA only.
    pub cfg_scale: Option<f64>,
    /// Final time of the schedule. Dream only.
    pub eps: Option<f64>,
    /// Sample positions from softmax(confidence / alg_temp). Dream only.
    pub alg_temp: Option<f64>,
    /// Fast-dLLM v1's KV cache: `none`, `prefix` or `dual` ([`CacheMode`]). LLaDA and Dream
    /// only (SDAR and Fast-dLLM v2 use their model's block cache whenever it has one).
    pub cache: Option<CacheMode>,
    /// Fast-dLLM v2's sub-block cache, the official `use_block_cache`
    /// ([`FastdLLMV2Sampler::sub_block_cache`]). Fast-dLLM v2 only.
    pub sub_block_cache: Option<bool>,
    /// Positions committed at least per forward ([`FastdLLMV2Sampler::min_tokens_per_step`]).
    /// Fast-dLLM v2 only (SDAR's `steps` set its parallelism).
    pub min_tokens_per_step: Option<usize>,
}

impl SamplerOptions {
    /// The names of the options that are set, in field order.
    fn given(&self) -> impl Iterator<Item = &'static str> {
        [
            ("block_size", self.block_size.is_some()),
            ("steps", self.steps.is_some()),
            ("threshold", self.threshold.is_some()),
            ("strategy", self.strategy.is_some()),
            ("temperature", self.temperature.is_some()),
            ("top_k", self.top_k.is_some()),
            ("top_p", self.top_p.is_some()),
            ("eb_threshold", self.eb_threshold.is_some()),
            ("cfg_scale", self.cfg_scale.is_some()),
            ("eps", self.eps.is_some()),
            ("alg_temp", self.alg_temp.is_some()),
            ("cache", self.cache.is_some()),
            ("sub_block_cache", self.sub_block_cache.is_some()),
            ("min_tokens_per_step", self.min_tokens_per_step.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
    }
}

/// The options `family`'s decoding has no use for, each with the reason given to the user.
fn not_applicable(family: Family) -> &'static [(&'static str, &'static str)] {
    const CFG_SCALE: (&str, &str) = ("cfg_scale", "classifier-free guidance is LLaDA's");
    const EB_THRESHOLD: (&str, &str) = (
        "eb_threshold",
        "the entropy bound belongs to SDAR's entropy_bounded strategy",
    );
    const EPS: (&str, &str) = ("eps", "the schedule's final time is Dream's");
    const ALG_TEMP: (&str, &str) = ("alg_temp", "sampling positions by confidence is Dream's");
    const CACHE: (&str, &str) = (
        "cache",
        "its block cache is used whenever the model has one (Fast-dLLM v1's prefix and dual \
         caches are LLaDA's and Dream's)",
    );
    const SUB_BLOCK_CACHE: (&str, &str) =
        ("sub_block_cache", "the sub-block cache is Fast-dLLM v2's");
    const MIN_TOKENS_PER_STEP: (&str, &str) = (
        "min_tokens_per_step",
        "a per-forward minimum is Fast-dLLM v2's (SDAR: --steps; LLaDA, Dream: --steps)",
    );
    match family {
        Family::Sdar => &[
            CFG_SCALE,
            EPS,
            ALG_TEMP,
            CACHE,
            SUB_BLOCK_CACHE,
            MIN_TOKENS_PER_STEP,
        ],
        Family::FastDllmV2 => &[
            (
                "steps",
                "it decodes each sub-block until it is done, with no step count",
            ),
            ("strategy", "it always commits by threshold"),
            ("top_k", "it filters with top_p only"),
            EB_THRESHOLD,
            CFG_SCALE,
            EPS,
            ALG_TEMP,
            CACHE,
        ],
        Family::Llada => &[
            ("top_k", "it samples with Gumbel noise, without filtering"),
            ("top_p", "it samples with Gumbel noise, without filtering"),
            EB_THRESHOLD,
            EPS,
            ALG_TEMP,
            SUB_BLOCK_CACHE,
            MIN_TOKENS_PER_STEP,
        ],
        Family::Dream => &[
            EB_THRESHOLD,
            CFG_SCALE,
            SUB_BLOCK_CACHE,
            MIN_TOKENS_PER_STEP,
        ],
    }
}

impl BlockSampler {
    /// The `family`'s sampler with `options` applied over its defaults.
    ///
    /// Errors: [`EngineError::OptionNotApplicable`] for the first set option the family does
    /// not use; [`EngineError::OptionNeedsSampling`] for `top_k`/`top_p` at temperature 0 on
    /// SDAR and Fast-dLLM v2 (they filter only when sampling; Dream filters also when greedy,
    /// since it changes the confidence); [`EngineError::InvalidConfig`] for an unknown
    /// `strategy` name. Ranges are checked when generation starts.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::{BlockSampler, FastdLLMV2Sampler, SamplerOptions};
    /// use diffulex_edge::runtime::Family;
    /// let options = SamplerOptions { temperature: Some(0.7), ..Default::default() };
    /// let sampler = BlockSampler::from_options(Family::FastDllmV2, &options).unwrap();
    /// assert_eq!(sampler, FastdLLMV2Sampler { temperature: 0.7, ..Default::default() }.into());
    /// ```
    pub fn from_options(family: Family, options: &SamplerOptions) -> Result<BlockSampler> {
        let refused = not_applicable(family);
        if let Some((option, reason)) = options
            .given()
            .find_map(|name| refused.iter().find(|(n, _)| *n == name))
        {
            return Err(EngineError::OptionNotApplicable {
                option,
                family,
                reason,
            });
        }
        // Each arm starts from the sampler's `Default` and sets what was given. Every option
        // the table above lets through lands in a field here (a test sets each one alone and
        // checks that the sampler changed).
        let sampler: BlockSampler = match family {
            Family::Sdar => {
                let mut sampler = SDARSampler::default();
                apply(&mut sampler.threshold, options.threshold);
                apply(&mut sampler.temperature, options.temperature);
                apply(
                    &mut sampler.strategy,
                    parse::<SdarStrategy>(&options.strategy)?,
                );
                apply(&mut sampler.eb_threshold, options.eb_threshold);
                apply(&mut sampler.denoising_steps, options.steps.map(Some));
                apply(&mut sampler.block_length, options.block_size.map(Some));
                apply(&mut sampler.top_k, options.top_k.map(Some));
                apply(&mut sampler.top_p, options.top_p.map(Some));
                sampler.into()
            }
            Family::FastDllmV2 => {
                let mut sampler = FastdLLMV2Sampler::default();
                apply(&mut sampler.threshold, options.threshold);
                apply(&mut sampler.temperature, options.temperature);
                apply(&mut sampler.top_p, options.top_p.map(Some));
                apply(&mut sampler.block_length, options.block_size.map(Some));
                apply(&mut sampler.sub_block_cache, options.sub_block_cache);
                apply(
                    &mut sampler.min_tokens_per_step,
                    options.min_tokens_per_step,
                );
                sampler.into()
            }
            Family::Llada => {
                let mut sampler = LLaDASampler::default();
                apply(&mut sampler.temperature, options.temperature);
                apply(&mut sampler.cfg_scale, options.cfg_scale);
                apply(
                    &mut sampler.remasking,
                    parse::<LLaDARemasking>(&options.strategy)?,
                );
                apply(&mut sampler.steps, options.steps.map(Some));
                apply(&mut sampler.block_length, options.block_size.map(Some));
                apply(&mut sampler.threshold, options.threshold.map(Some));
                apply(&mut sampler.cache, options.cache.map(Some));
                sampler.into()
            }
            Family::Dream => {
                let mut sampler = DreamSampler::default();
                apply(&mut sampler.temperature, options.temperature);
                apply(&mut sampler.eps, options.eps);
                apply(&mut sampler.alg, parse::<DreamAlg>(&options.strategy)?);
                apply(&mut sampler.steps, options.steps.map(Some));
                apply(&mut sampler.alg_temp, options.alg_temp.map(Some));
                apply(&mut sampler.top_p, options.top_p.map(Some));
                apply(&mut sampler.top_k, options.top_k.map(Some));
                apply(&mut sampler.block_length, options.block_size.map(Some));
                apply(&mut sampler.threshold, options.threshold.map(Some));
                apply(&mut sampler.cache, options.cache.map(Some));
                sampler.into()
            }
        };
        // SDAR and Fast-dLLM v2 filter candidates only when they sample; Dream filters also
        // when greedy (it changes the confidence), and LLaDA was refused above.
        let greedy_filter = match &sampler {
            BlockSampler::Sdar(sdar) => sdar.temperature == 0.0,
            BlockSampler::FastdLLMV2(fast) => fast.temperature == 0.0,
            BlockSampler::LLaDA(_) | BlockSampler::Dream(_) => false,
        };
        if greedy_filter {
            let filter = [
                ("top_k", options.top_k.is_some()),
                ("top_p", options.top_p.is_some()),
            ];
            if let Some((option, _)) = filter.into_iter().find(|(_, set)| *set) {
                return Err(EngineError::OptionNeedsSampling { option, family });
            }
        }
        Ok(sampler)
    }
}

/// Sets `field` to the given option; an unset option leaves the sampler's default in place.
fn apply<T>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

/// The family's commit rule named by `strategy`, if one was given.
fn parse<T: std::str::FromStr<Err = EngineError>>(strategy: &Option<String>) -> Result<Option<T>> {
    strategy.as_deref().map(str::parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sampling (temperature 1), so top_k/top_p are judged on the family alone.
    fn sampling() -> SamplerOptions {
        SamplerOptions {
            temperature: Some(1.0),
            ..Default::default()
        }
    }

    /// `sampling()` with one option set to a valid value that differs from every default.
    fn with_one(family: Family, name: &str) -> SamplerOptions {
        let mut options = sampling();
        match name {
            "block_size" => options.block_size = Some(8),
            "steps" => options.steps = Some(4),
            "threshold" => options.threshold = Some(0.5),
            "strategy" => {
                let name = match family {
                    Family::Llada => "random",
                    Family::Dream => "origin",
                    _ => "sequential",
                };
                options.strategy = Some(name.into());
            }
            "temperature" => options.temperature = Some(0.5),
            "top_k" => options.top_k = Some(5),
            "top_p" => options.top_p = Some(0.5),
            "eb_threshold" => options.eb_threshold = Some(0.5),
            "cfg_scale" => options.cfg_scale = Some(1.0),
            "eps" => options.eps = Some(0.01),
            "alg_temp" => options.alg_temp = Some(0.1),
            "cache" => options.cache = Some(CacheMode::Prefix),
            "sub_block_cache" => options.sub_block_cache = Some(true),
            "min_tokens_per_step" => options.min_tokens_per_step = Some(2),
            other => panic!("unknown option {other}"),
        }
        options
    }

    const ALL_OPTIONS: [&str; 14] = [
        "block_size",
        "steps",
        "threshold",
        "strategy",
        "temperature",
        "top_k",
        "top_p",
        "eb_threshold",
        "cfg_scale",
        "eps",
        "alg_temp",
        "cache",
        "sub_block_cache",
        "min_tokens_per_step",
    ];

    #[test]
    fn nothing_set_is_each_samplers_default() {
        for family in Family::ALL {
            let sampler = BlockSampler::from_options(family, &SamplerOptions::default()).unwrap();
            assert_eq!(sampler, BlockSampler::default_for(family), "{family}");
        }
        // The defaults the CLI used to repeat are the constructors' (SDAR 0.9, Fast-dLLM v2 0.95).
        let sdar = BlockSampler::from_options(Family::Sdar, &SamplerOptions::default()).unwrap();
        assert_eq!(sdar, SDARSampler::default().into());
        let fast = BlockSampler::from_options(Family::FastDllmV2, &SamplerOptions::default());
        assert_eq!(fast.unwrap(), FastdLLMV2Sampler::default().into());
    }

    #[test]
    fn every_option_is_either_used_or_refused_never_ignored() {
        for family in Family::ALL {
            let baseline = BlockSampler::from_options(family, &sampling()).unwrap();
            for name in ALL_OPTIONS {
                let refused = not_applicable(family).iter().any(|(n, _)| *n == name);
                match BlockSampler::from_options(family, &with_one(family, name)) {
                    Ok(sampler) => {
                        assert!(!refused, "{family}: {name} should be refused");
                        assert_ne!(sampler, baseline, "{family}: {name} was ignored");
                        assert_eq!(sampler.family(), family);
                    }
                    Err(EngineError::OptionNotApplicable {
                        option,
                        family: refused_for,
                        reason,
                    }) => {
                        assert!(refused, "{family}: {name} refused: {reason}");
                        assert_eq!((option, refused_for), (name, family));
                        assert!(!reason.is_empty());
                    }
                    Err(e) => panic!("{family}: {name}: {e}"),
                }
            }
        }
    }

    #[test]
    fn options_land_in_the_samplers_fields() {
        let options = SamplerOptions {
            block_size: Some(4),
            steps: Some(2),
            threshold: Some(0.8),
            strategy: Some("entropy_bounded".into()),
            temperature: Some(0.5),
            top_k: Some(3),
            top_p: Some(0.9),
            eb_threshold: Some(0.2),
            ..Default::default()
        };
        let expected = SDARSampler {
            strategy: SdarStrategy::EntropyBounded,
            threshold: 0.8,
            eb_threshold: 0.2,
            denoising_steps: Some(2),
            block_length: Some(4),
            temperature: 0.5,
            top_k: Some(3),
            top_p: Some(0.9),
        };
        assert_eq!(
            BlockSampler::from_options(Family::Sdar, &options).unwrap(),
            expected.into()
        );

        let options = SamplerOptions {
            block_size: Some(32),
            threshold: Some(0.7),
            temperature: Some(0.5),
            top_p: Some(0.8),
            sub_block_cache: Some(true),
            min_tokens_per_step: Some(3),
            ..Default::default()
        };
        let expected = FastdLLMV2Sampler {
            threshold: 0.7,
            temperature: 0.5,
            top_p: Some(0.8),
            block_length: Some(32),
            sub_block_cache: true,
            min_tokens_per_step: 3,
            ..Default::default()
        };
        assert_eq!(
            BlockSampler::from_options(Family::FastDllmV2, &options).unwrap(),
            expected.into()
        );

        let options = SamplerOptions {
            block_size: Some(8),
            steps: Some(16),
            threshold: Some(0.9),
            strategy: Some("random".into()),
            temperature: Some(0.3),
            cfg_scale: Some(1.5),
            ..Default::default()
        };
        let expected = LLaDASampler {
            steps: Some(16),
            block_length: Some(8),
            temperature: 0.3,
            cfg_scale: 1.5,
            remasking: LLaDARemasking::Random,
            threshold: Some(0.9),
            ..Default::default()
        };
        assert_eq!(
            BlockSampler::from_options(Family::Llada, &options).unwrap(),
            expected.into()
        );

        let options = SamplerOptions {
            steps: Some(5),
            strategy: Some("maskgit_plus".into()),
            temperature: Some(0.2),
            top_k: Some(7),
            top_p: Some(0.95),
            eps: Some(0.01),
            alg_temp: Some(0.5),
            ..Default::default()
        };
        let expected = DreamSampler {
            steps: Some(5),
            eps: 0.01,
            alg: DreamAlg::MaskgitPlus,
            alg_temp: Some(0.5),
            temperature: 0.2,
            top_p: Some(0.95),
            top_k: Some(7),
            ..Default::default()
        };
        assert_eq!(
            BlockSampler::from_options(Family::Dream, &options).unwrap(),
            expected.into()
        );
    }

    #[test]
    fn filters_at_temperature_zero_are_refused_where_they_change_nothing() {
        let greedy_top_k = SamplerOptions {
            top_k: Some(5),
            ..Default::default()
        };
        let greedy_top_p = SamplerOptions {
            top_p: Some(0.5),
            temperature: Some(0.0),
            ..Default::default()
        };
        for (family, options, option) in [
            (Family::Sdar, &greedy_top_k, "top_k"),
            (Family::Sdar, &greedy_top_p, "top_p"),
            (Family::FastDllmV2, &greedy_top_p, "top_p"),
        ] {
            match BlockSampler::from_options(family, options) {
                Err(EngineError::OptionNeedsSampling {
                    option: refused,
                    family: refused_for,
                }) => assert_eq!((refused, refused_for), (option, family)),
                other => panic!("{family} {option}: {other:?}"),
            }
        }
        // Dream filters when greedy too; LLaDA has no filters at all.
        assert!(BlockSampler::from_options(Family::Dream, &greedy_top_k).is_ok());
        assert!(matches!(
            BlockSampler::from_options(Family::Llada, &greedy_top_k),
            Err(EngineError::OptionNotApplicable {
                option: "top_k",
                ..
            })
        ));
        // Fast-dLLM v2 has no top_k whatever the temperature.
        assert!(matches!(
            BlockSampler::from_options(Family::FastDllmV2, &greedy_top_k),
            Err(EngineError::OptionNotApplicable {
                option: "top_k",
                ..
            })
        ));
    }

    #[test]
    fn unknown_strategy_names_are_invalid_config() {
        for family in [Family::Sdar, Family::Llada, Family::Dream] {
            let options = SamplerOptions {
                strategy: Some("fastest".into()),
                ..Default::default()
            };
            let e = BlockSampler::from_options(family, &options).unwrap_err();
            assert!(
                matches!(e, EngineError::InvalidConfig { ref value, .. } if value == "fastest"),
                "{family}: {e}"
            );
        }
    }

    #[test]
    fn the_first_refused_option_is_named_with_its_family() {
        let options = SamplerOptions {
            eb_threshold: Some(0.5),
            cfg_scale: Some(1.0),
            ..Default::default()
        };
        let e = BlockSampler::from_options(Family::Dream, &options).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sampler option eb_threshold does not apply to dream models: the entropy bound \
             belongs to SDAR's entropy_bounded strategy"
        );
    }
}
