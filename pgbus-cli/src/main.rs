//! `pgbus`: the command-line tool of pgbus. See `pgbus --help`, and the README's
//! "Operating pgbus" section.

mod cli;
mod commands;
mod exit;
mod output;
mod time;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pgbus: {failure}");
            failure.exit_code()
        }
    }
}
