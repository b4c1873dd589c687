//! The binary target: checks the goldens of the repository given as the first argument (or
//! the one this crate sits in) and prints how many cases matched.

fn main() -> std::process::ExitCode {
    let repo = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(diffulex_downstream::repository);
    match diffulex_downstream::check_goldens(&repo) {
        Ok(n) => {
            println!("{n} golden cases match");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
