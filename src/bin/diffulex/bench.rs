//! `diffulex bench`: load time, latency, throughput, engine overhead and memory of one `.pte`.
//!
//! Every run decodes a fixed amount of work (random prompt, no early stop) so runs are
//! comparable; the medians over `--runs` are reported, after one warm-up forward that pays the
//! lazy method load (XNNPACK weight packing) and is reported on its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use diffulex_edge::runtime::Rng;
use diffulex_edge::runtime::{
    BlockEvent, Control, DiffusionEngine, DiffusionGenerationConfig, DiffusionModel,
    GenerationObserver, GenerationOutput, GenerationStats, ModelMetadata, ModelType, StopReason,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::limits::{self, BenchLengthArgs};
use crate::load::LoadArgs;
use crate::output::write_stdout;
use crate::sampling::DecodeArgs;
use crate::threads::ThreadArgs;

/// Flags of `diffulex bench`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  diffulex bench --model models/default/model.pte
  diffulex bench --model sdar.pte --prompt-len 256 --gen-len 256 --runs 3 --json
  diffulex bench --model sdar.pte --threads 1 --json
  diffulex bench --model sdar.pte --no-kv-cache --threshold 0.9")]
pub struct BenchArgs {
    /// The `.pte` model.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub lengths: BenchLengthArgs,
    /// Timed runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seed of the prompt ids and of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub threads: ThreadArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Recompute the whole sequence every forward instead of using the KV cache.
    #[arg(long)]
    pub no_kv_cache: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Decode greedily one token per forward instead of with the diffusion engine: what an
    /// autoregressive decoder of the same network costs (needs a KV cache). A block-causal
    /// program's one-token forward costs what a causal one's does; export with block size 1
    /// for a decoder that is also autoregressive in what it computes.
    #[arg(long, conflicts_with = "no_kv_cache")]
    pub autoregressive: bool,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// Memory counters of this process, in bytes (Linux `/proc`; zero where unavailable).
/// "private" counts file-backed pages mapped only by this process too (the mmapped .pte pages
/// touched so far), which is why "anonymous" is reported beside it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Memory {
    /// Resident set size now (`VmRSS`).
    rss: u64,
    /// Peak resident set size (`VmHWM`).
    peak_rss: u64,
    /// Anonymous memory (`Anonymous` in smaps_rollup): heap, packed weights, KV cache, arena.
    anonymous: u64,
    /// Private pages, clean + dirty (file-backed private pages included).
    private: u64,
}

fn proc_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl Memory {
    /// Reads `/proc/self/status` and `/proc/self/smaps_rollup`.
    fn now() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
        Memory {
            rss: proc_kb(&status, "VmRSS"),
            peak_rss: proc_kb(&status, "VmHWM"),
            anonymous: proc_kb(&rollup, "Anonymous"),
            private: proc_kb(&rollup, "Private_Clean") + proc_kb(&rollup, "Private_Dirty"),
        }
    }
}

/// Times the first committed block and ticks the progress bar.
struct Watch<'p> {
    start: Instant,
    first_block: Option<Duration>,
    bar: &'p ProgressBar,
}

impl GenerationObserver for Watch<'_> {
    fn on_block(&mut self, event: &BlockEvent<'_>) -> Control {
        self.first_block.get_or_insert_with(|| self.start.elapsed());
        self.bar.inc(event.tokens.len() as u64);
        Control::Continue
    }
}

/// One timed generation: the engine's stats (their JSON form, `GenerationStats`'s `Serialize`)
/// and what the bench derives from them.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    #[serde(flatten)]
    stats: GenerationStats,
    first_token_ms: f64,
    /// `tokens_generated`, under the name earlier bench reports used.
    tokens: usize,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
    /// Share of the wall time spent outside model forwards.
    engine_overhead: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_s(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

fn run_of(out: GenerationOutput, prompt_len: usize, first: Option<Duration>) -> Run {
    let s = out.stats;
    Run {
        first_token_ms: first.map_or(f64::NAN, ms),
        tokens: s.tokens_generated,
        prefill_tokens_per_s: if s.prefill_forwards > 0 {
            per_s(prompt_len, s.prefill_time)
        } else {
            f64::NAN
        },
        decode_tokens_per_s: per_s(s.tokens_generated, s.decode_time),
        engine_overhead: s.engine_time().as_secs_f64() / s.total_time.as_secs_f64().max(1e-12),
        stats: s,
    }
}

/// Index of the largest logit (the first of equals).
fn argmax(row: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as i64
}

/// One greedy autoregressive generation of `gen_len` tokens over `model`'s KV cache: the
/// prompt but its last token is written in one forward (the prefill), then every forward feeds
/// one token and reads the logits of the next, so every generated token costs one forward.
fn generate_autoregressive<M: DiffusionModel>(
    model: &mut M,
    prompt: &[i64],
    gen_len: usize,
) -> Result<(GenerationOutput, Option<Duration>)> {
    let mut stats = GenerationStats::default();
    let start = Instant::now();
    let (head, last) = prompt.split_at(prompt.len().saturating_sub(1));
    if !head.is_empty() {
        let t = Instant::now();
        model
            .forward_rows(head, Some(0), &[])
            .context("autoregressive prefill")?;
        stats.execute_time += t.elapsed();
        stats.prefill_forwards = 1;
        stats.tokens_fed = head.len();
    }
    stats.prefill_time = start.elapsed();
    let decode_start = Instant::now();
    let mut next = last.first().copied().context("an empty prompt")?;
    let mut tokens = Vec::with_capacity(gen_len);
    let mut first_token = None;
    for i in 0..gen_len {
        let t = Instant::now();
        let logits = model
            .forward_rows(&[next], Some(head.len() + i), &[0])
            .with_context(|| format!("autoregressive forward {}", i + 1))?;
        stats.execute_time += t.elapsed();
        next = argmax(logits.row(0));
        tokens.push(next);
        first_token.get_or_insert_with(|| start.elapsed());
    }
    stats.decode_time = decode_start.elapsed();
    stats.total_time = start.elapsed();
    stats.decode_forwards = gen_len;
    stats.forwards = stats.prefill_forwards + gen_len;
    stats.logit_rows = gen_len;
    stats.tokens_fed += gen_len;
    stats.tokens_committed = gen_len;
    stats.tokens_generated = gen_len;
    let out = GenerationOutput {
        tokens,
        prompt_len: prompt.len(),
        stop_reason: StopReason::MaxNewTokens,
        stats,
    };
    Ok((out, first_token))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// `len` seeded random prompt ids that are neither the mask nor an eos id.
fn random_prompt(meta: &ModelMetadata, len: usize, seed: u64) -> Result<Vec<i64>> {
    // Counted from the excluded ids, not by walking the vocabulary (its size comes from the
    // file).
    let mut excluded: Vec<i64> = meta
        .eos_ids
        .iter()
        .copied()
        .chain([meta.mask_token_id])
        .filter(|&t| t >= 0 && (t as u64) < meta.vocab_size as u64)
        .collect();
    excluded.sort_unstable();
    excluded.dedup();
    if excluded.len() as u64 >= meta.vocab_size as u64 {
        bail!("the vocabulary has no token that is neither the mask nor an eos id");
    }
    let mut rng = Rng::new(seed ^ 0xBE7C_0DE5);
    let mut prompt = Vec::with_capacity(len);
    while prompt.len() < len {
        let t = (rng.next_u64() % meta.vocab_size as u64) as i64;
        if t != meta.mask_token_id && !meta.eos_ids.contains(&t) {
            prompt.push(t);
        }
    }
    Ok(prompt)
}

/// A bar on stderr (indicatif draws nothing when stderr is not a terminal, so JSON on stdout
/// and captured output stay clean).
fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} tokens {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs `diffulex bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.runs == 0 || args.lengths.gen_len == Some(0) || args.lengths.prompt_len == Some(0) {
        bail!("--runs, --gen-len and --prompt-len must be at least 1");
    }
    // Opened first and timed on its own, so `load` stays the model's load alone.
    let t_runtime = Instant::now();
    let runtime = diffulex_edge::pte::runtime()?;
    let runtime_open = t_runtime.elapsed();
    args.threads.apply()?;
    let mem_start = Memory::now();
    let t0 = Instant::now();
    let mut model = args.load.model(&args.model)?;
    let load = t0.elapsed();
    let mem_load = Memory::now();
    let file_size = model.module().file_size();
    let threads = ThreadArgs::in_effect();
    let meta = model.metadata().clone();
    let use_kv_cache = meta.use_kv_cache && !args.no_kv_cache;
    let selects_rows = model.selects_rows();
    // Checked against the model's context before the prompt is allocated.
    let (prompt_len, gen_len, fitted) = limits::bench_lengths(&args.lengths, &meta)?;
    let prompt = random_prompt(&meta, prompt_len, args.seed)?;
    // The first forward loads the method (XNNPACK packs its weights here); one token keeps the
    // compute part negligible. Cached models get position 0, which the prefill overwrites.
    let t1 = Instant::now();
    model
        .forward(&prompt[..1], meta.use_kv_cache.then_some(0))
        .context("warm-up forward")?;
    let method_load = t1.elapsed();
    let mem_method = Memory::now();

    if args.autoregressive && !meta.use_kv_cache {
        bail!(
            "--autoregressive needs a model with a KV cache, and {} has none: export it with --kv-cache",
            args.model.display()
        );
    }
    let bar = progress((args.runs as u64).saturating_mul(gen_len as u64));
    let mut runs = Vec::new();
    let mut tokens = Vec::new();
    if args.autoregressive {
        for i in 0..args.runs {
            bar.set_message(format!("run {}/{}", i + 1, args.runs));
            let (mut out, first_token) = generate_autoregressive(&mut model, &prompt, gen_len)
                .with_context(|| format!("run {}", i + 1))?;
            bar.inc(gen_len as u64);
            if i == 0 {
                tokens = std::mem::take(&mut out.tokens);
            }
            runs.push(run_of(out, prompt.len(), first_token));
        }
    } else {
        let mut engine = DiffusionEngine::from_model(model, ModelType::Auto, use_kv_cache)?;
        let config = DiffusionGenerationConfig {
            max_new_tokens: gen_len,
            seed: args.seed,
            stop_ids: Some(vec![]),
            clamp_to_max_seq_len: false,
            sampler: Some(args.decode.sampler_for(meta.family)?),
        };
        for i in 0..args.runs {
            bar.set_message(format!("run {}/{}", i + 1, args.runs));
            let mut watch = Watch {
                start: Instant::now(),
                first_block: None,
                bar: &bar,
            };
            let mut out = engine
                .generate_with(&prompt, &config, &mut watch)
                .with_context(|| format!("run {}", i + 1))?;
            if i == 0 {
                tokens = std::mem::take(&mut out.tokens);
            }
            runs.push(run_of(out, prompt.len(), watch.first_block));
        }
    }
    bar.finish_and_clear();
    let mem_end = Memory::now();

    let med = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let summary = serde_json::json!({
        "model": args.model.display().to_string(),
        "no_mmap": args.load.no_mmap,
        "file_size": file_size,
        "family": meta.family.name(),
        "vocab_size": meta.vocab_size,
        "block_size": meta.block_size,
        "kv_cache": use_kv_cache,
        "decoder": if args.autoregressive { "autoregressive" } else { "diffusion" },
        "selects_logit_rows": selects_rows,
        "prompt_len": prompt_len,
        "gen_len": gen_len,
        // The default lengths were shortened to fit the model's context.
        "lengths_fitted": fitted,
        "runs": args.runs,
        "threads": threads,
        "runtime": runtime.to_string(),
        "runtime_open_ms": ms(runtime_open),
        "load_ms": ms(load),
        "method_load_ms": ms(method_load),
        "median": {
            "total_ms": med(|r| ms(r.stats.total_time)),
            "first_token_ms": med(|r| r.first_token_ms),
            "prefill_tokens_per_s": med(|r| r.prefill_tokens_per_s),
            "decode_tokens_per_s": med(|r| r.decode_tokens_per_s),
            "tokens_per_forward": med(|r| r.stats.tokens_per_forward()),
            "forwards": med(|r| r.stats.forwards as f64),
            "logit_rows": med(|r| r.stats.logit_rows as f64),
            "tokens_fed": med(|r| r.stats.tokens_fed as f64),
            "engine_overhead": med(|r| r.engine_overhead),
            "engine_ms": med(|r| ms(r.stats.engine_time())),
            "execute_ms": med(|r| ms(r.stats.execute_time)),
        },
        "memory": {
            "start": mem_start,
            "after_load": mem_load,
            "after_method_load": mem_method,
            "end": mem_end,
            "peak_rss": mem_end.peak_rss,
            "private_after_load_over_file": mem_load.private as f64 / file_size.max(1) as f64,
            "private_end_over_file": mem_end.private as f64 / file_size.max(1) as f64,
        },
        "per_run": runs,
        // The first run's output, to check that two configurations decode the same tokens.
        "prompt_tokens": prompt,
        "tokens": tokens,
    });
    if args.json {
        write_stdout(&(serde_json::to_string_pretty(&summary)? + "\n"))
    } else {
        write_stdout(&table(&summary))
    }
}

fn table(s: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    // Writing into a String cannot fail.
    macro_rules! println {
        ($($arg:tt)*) => {{ let _ = writeln!(o, $($arg)*); }};
    }
    let m = &s["median"];
    let mem = &s["memory"];
    let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "model        {:?} ({:.1} MiB, {}, vocab {}, block {}, kv cache {}{})",
        s["model"].as_str().unwrap_or(""),
        mib(&s["file_size"]),
        s["family"].as_str().unwrap_or(""),
        s["vocab_size"],
        s["block_size"],
        s["kv_cache"],
        if s["no_mmap"] == true {
            ", read into memory"
        } else {
            ""
        }
    );
    println!(
        "workload     prompt {} + {} new tokens{}, {} runs (medians below){}",
        s["prompt_len"],
        s["gen_len"],
        if s["lengths_fitted"] == true {
            " (defaults shortened to fit the model's context)"
        } else {
            ""
        },
        s["runs"],
        if s["decoder"] == "autoregressive" {
            ", decoded autoregressively (one token per forward, greedy)"
        } else {
            ""
        }
    );
    println!("threads      {}", s["threads"]);
    println!("runtime open {:.2} ms", f(&s["runtime_open_ms"]));
    println!("load         {:.2} ms", f(&s["load_ms"]));
    println!(
        "method load  {:.2} ms (first forward: delegate init, e.g. XNNPACK weight packing)",
        f(&s["method_load_ms"])
    );
    println!("first token  {:.2} ms", f(&m["first_token_ms"]));
    println!("prefill      {:.1} tokens/s", f(&m["prefill_tokens_per_s"]));
    println!("decode       {:.1} tokens/s", f(&m["decode_tokens_per_s"]));
    println!(
        "forwards     {:.0} ({:.2} tokens per denoising forward), {:.0} tokens fed, {:.0} logit rows{}",
        f(&m["forwards"]),
        f(&m["tokens_per_forward"]),
        f(&m["tokens_fed"]),
        f(&m["logit_rows"]),
        if s["selects_logit_rows"] == true {
            " (only the rows each step reads)"
        } else {
            " (every row: a contract-1 .pte)"
        }
    );
    println!(
        "engine       {:.2}% of wall time outside execute ({:.2} ms of {:.2} ms)",
        f(&m["engine_overhead"]) * 100.0,
        f(&m["engine_ms"]),
        f(&m["total_ms"])
    );
    println!(
        "memory       peak RSS {:.1} MiB; private {:.1} MiB after load, {:.1} MiB after method load, {:.1} MiB at end (anonymous {:.1} MiB)",
        mib(&mem["peak_rss"]),
        mib(&mem["after_load"]["private"]),
        mib(&mem["after_method_load"]["private"]),
        mib(&mem["end"]["private"]),
        mib(&mem["end"]["anonymous"]),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffulex_edge::runtime::Family;

    #[test]
    fn proc_fields_parse_in_bytes() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(proc_kb(text, "VmRSS"), 1024 * 1024);
        assert_eq!(proc_kb(text, "VmHWM"), 2048 * 1024);
        assert_eq!(proc_kb(text, "Missing"), 0);
    }

    #[test]
    fn median_skips_nan() {
        assert_eq!(median(vec![3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert!(median(vec![f64::NAN]).is_nan());
    }

    #[test]
    fn prompt_avoids_mask_and_eos_and_is_seeded() {
        let meta = ModelMetadata::for_family(Family::Sdar, 64, 4, 3, vec![1], 4);
        let p = random_prompt(&meta, 200, 7).unwrap();
        assert!(p.iter().all(|t| *t == 0 || *t == 2));
        assert_eq!(p, random_prompt(&meta, 200, 7).unwrap());
        let only_bad = ModelMetadata::for_family(Family::Sdar, 64, 2, 1, vec![0], 4);
        assert!(random_prompt(&only_bad, 3, 0).is_err());
    }
}
