//! This machine's memory bandwidth, the anchor for decode speed: a block forward of a
//! weight-bound model cannot be faster than streaming its weights from memory once.
//!
//! ```sh
//! cargo run --release --example bandwidth               # 1 GiB buffers
//! cargo run --release --example bandwidth -- 2 model.pte  # 2 GiB; and the .pte's stream time
//! ```
//!
//! Reports the best of several passes of a read (a sum over the buffer) and a copy, with 1 and
//! 2 threads (decode runs ExecuTorch's thread pool on 2). With a `.pte` path it also prints the
//! time to read that many bytes at the measured 2-thread read bandwidth.

use std::hint::black_box;
use std::time::Instant;

const PASSES: usize = 5;

fn main() {
    let mut args = std::env::args().skip(1);
    let gib: usize = match args.next().map(|a| a.parse()) {
        None => 1,
        Some(Ok(g)) if (1..=16).contains(&g) => g,
        Some(_) => {
            eprintln!("usage: bandwidth [GiB 1..=16] [file]");
            std::process::exit(2);
        }
    };
    let file = args.next();
    let words = gib << 27; // u64 words in `gib` GiB
    let src: Vec<u64> = (0..words as u64).collect();
    let mut dst = vec![0u64; words];
    let bytes = (words * 8) as f64;
    println!("buffers: {gib} GiB each");
    let mut read_2 = 0.0;
    for threads in [1usize, 2] {
        let read = best(|| read_pass(&src, threads), bytes);
        let copy = best(|| copy_pass(&src, &mut dst, threads), 2.0 * bytes);
        println!(
            "{threads} thread(s): read {read:.1} GB/s, copy {copy:.1} GB/s (read + write bytes)"
        );
        if threads == 2 {
            read_2 = read;
        }
    }
    if let Some(path) = file {
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let gb = meta.len() as f64 / 1e9;
                println!(
                    "{path}: {gb:.2} GB; reading it once at {read_2:.1} GB/s takes {:.0} ms",
                    gb / read_2 * 1e3
                );
            }
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}

/// Best throughput in GB/s over [`PASSES`] runs of `pass`, which moves `bytes` bytes.
fn best(mut pass: impl FnMut(), bytes: f64) -> f64 {
    pass(); // warm: page faults and caches
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            pass();
            bytes / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn read_pass(src: &[u64], threads: usize) {
    let chunk = src.len().div_ceil(threads);
    std::thread::scope(|s| {
        for part in src.chunks(chunk) {
            s.spawn(move || {
                // Four accumulators so the adds do not serialise on one register.
                let mut acc = [0u64; 4];
                for w in part.chunks_exact(4) {
                    for (a, x) in acc.iter_mut().zip(w) {
                        *a = a.wrapping_add(*x);
                    }
                }
                black_box(acc);
            });
        }
    });
}

fn copy_pass(src: &[u64], dst: &mut [u64], threads: usize) {
    let chunk = src.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (from, to) in src.chunks(chunk).zip(dst.chunks_mut(chunk)) {
            s.spawn(move || to.copy_from_slice(from));
        }
    });
    black_box(dst);
}
