//! berth-runtime: runc's command line over the berth-runtime library.

mod cli;
mod exec;
mod logging;
mod relay;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let log = logging::init(&args.global);
    match cli::dispatch(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            log.error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}
