//! `berth`: parses docker-style arguments, runs the command, maps exit codes.

use std::io::Write;
use std::process::ExitCode;

use berth_cli::client::{Client, DEFAULT_HOST};
use berth_cli::commands::{self, Output};
use clap::{Parser, Subcommand};

/// A docker-style client for the berth container engine.
#[derive(Parser)]
#[command(name = "berth", version, disable_help_subcommand = true)]
struct Cli {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long = "host", env = "DOCKER_HOST", default_value = DEFAULT_HOST, global = true)]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the berth version information.
    Version {
        /// Format the output using the given Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Display system-wide information.
    Info {
        /// Format the output using the given Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("berth: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let client = Client::new(&cli.host)?;
        match &cli.command {
            Command::Version { format } => commands::version::run(&client, format.as_deref()).await,
            Command::Info { format } => commands::info::run(&client, format.as_deref()).await,
        }
    });
    match result {
        Ok(Output { stdout, error }) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(stdout.as_bytes());
            if !stdout.is_empty() && !stdout.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            match error {
                None => ExitCode::SUCCESS,
                Some(err) => {
                    eprintln!("{err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
