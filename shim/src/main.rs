//! berth-shim (installed as `containerd-shim-berth-v1` too): containerd's shim v2
//! command line.

use std::process::ExitCode;

use berth_shim::bootstrap::{parse_flags, start};
use berth_shim::serve::{delete, serve};

fn main() -> ExitCode {
    let flags = match parse_flags(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("berth-shim: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.version {
        println!("berth-shim {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // RUST_LOG's directives when set; else a plain level, which (unlike an EnvFilter)
    // keeps no compiled matchers in each long-lived shim's heap.
    let _ = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => builder.with_env_filter(filter).try_init(),
        Err(_) => {
            let level = if flags.debug {
                tracing::Level::DEBUG
            } else {
                tracing::Level::INFO
            };
            builder.with_max_level(level).try_init()
        }
    };
    let result = match flags.action.as_str() {
        "start" => start(&flags).map_err(anyhow::Error::from),
        "delete" => delete(&flags),
        "" => serve(&flags),
        other => Err(anyhow::anyhow!("unknown action {other:?} (start, delete)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-shim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
