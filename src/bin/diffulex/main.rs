//! `diffulex`: the DiffuLex Edge command line.
//!
//! One module per subcommand; `main` only parses arguments and dispatches.

mod inspect;

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
    /// Show a .pte program's methods, their inputs/outputs, delegates and constant values.
    Inspect(inspect::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Commands::Inspect(args) => inspect::run(&args),
    }
}
