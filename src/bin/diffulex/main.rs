//! `diffulex`: the DiffuLex Edge command line.
//!
//! One module per subcommand; `main` only parses arguments and dispatches.

mod bench;
mod block_text;
mod chat;
mod chat_args;
mod generate;
mod inspect;
mod limits;
mod load;
mod output;
mod runtime;
mod sampling;
mod serve;
mod session;
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
    /// Show where the ExecuTorch runtime was loaded from and the files a copy of `diffulex`
    /// needs beside it; `--copy-to DIR` copies them there.
    Runtime(runtime::Args),
    /// Check that a .pte's weights match the digest recorded at export (and its tokenizer).
    Verify(verify::Args),
    /// Chat with the model, turn after turn (line editing, /reset, /exit; streams answers).
    Chat(Box<chat::ChatCommandArgs>),
    /// Serve the model over a local OpenAI-compatible HTTP API (/v1/chat/completions,
    /// /v1/completions, /v1/models, /health), streaming with server-sent events.
    Serve(Box<serve::ServeArgs>),
}

/// Errors are printed as one line (the context chain, no backtrace; control characters
/// escaped) with exit code 1: the user needs to know what was wrong and what to do, not where
/// in our code it was noticed. Flag errors from the parser get the same treatment; `--help`
/// and `--version` print normally and exit 0. A closed stdout ends the program quietly.
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // A closed stdout while printing help is not worth a message either.
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let command = std::env::args()
                .nth(1)
                .filter(|a| ["generate", "bench", "inspect"].contains(&a.as_str()))
                .map_or("diffulex".to_string(), |c| format!("diffulex {c}"));
            let message = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                "a subcommand is required: generate, bench or inspect".to_string()
            } else {
                output::clap_message(&e)
            };
            output::eprint_line(&format!("error: {message} (see {command} --help)"));
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            output::eprint_line(&format!("error: {}", output::one_line(&format!("{e:#}"))));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Generate(args) => generate::run(&args),
        Commands::Inspect(args) => inspect::run(&args),
        Commands::Bench(args) => bench::run(&args),
        Commands::Runtime(args) => runtime::run(&args),
        Commands::Verify(args) => verify::run(&args),
        Commands::Serve(args) => serve::run(&args),
        Commands::Chat(args) => chat::run(&args),
    }
}
