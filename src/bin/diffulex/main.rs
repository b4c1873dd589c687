//! `diffulex`: the DiffuLex Edge command line.
//!
//! One module per subcommand; `main` only parses arguments and dispatches.

mod bench;
mod generate;
mod inspect;
mod sampling;
mod threads;
mod verify;

use clap::{Parser, Subcommand};

/// Run diffusion language models exported as ExecuTorch `.pte` files.
#[derive(Debug, Parser)]
#[command(name = "diffulex", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Commands {
    /// Generate text from a prompt with a diffusion LM (streams blocks as they are committed).
    Generate(Box<generate::GenerateArgs>),
    /// Measure load time, latency, throughput, engine overhead and memory of a .pte model.
    Bench(Box<bench::BenchArgs>),
    /// Show a .pte program's methods, their inputs/outputs, delegates and constant values.
    Inspect(inspect::Args),
    /// Check that a .pte's weights match the digest recorded at export (and its tokenizer).
    Verify(verify::Args),
}

/// Errors are printed as one line (the context chain, no backtrace) with exit code 1: the user
/// needs to know what was wrong and what to do, not where in our code it was noticed.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Generate(args) => generate::run(&args),
        Commands::Inspect(args) => inspect::run(&args),
        Commands::Bench(args) => bench::run(&args),
        Commands::Verify(args) => verify::run(&args),
    }
}
