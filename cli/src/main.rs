//! `berth`: parses docker-style arguments, runs the command, maps exit codes.

use std::io::Write;
use std::process::ExitCode;

use berth_cli::client::{Client, DEFAULT_HOST};
use berth_cli::commands::{self, Output};
use clap::{Parser, Subcommand};
use commands::{archive, image_inspect, images, login, pull, tag};

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
    /// Download an image from a registry.
    Pull(pull::PullArgs),
    /// Upload an image to a registry.
    Push(pull::PushArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(tag::TagArgs),
    /// Remove one or more images.
    Rmi(tag::RmiArgs),
    /// Save one or more images to a tar archive.
    Save(archive::SaveArgs),
    /// Load an image from a tar archive.
    Load(archive::LoadArgs),
    /// Import a root filesystem tarball as an image.
    Import(archive::ImportArgs),
    /// Show the history of an image.
    History(image_inspect::HistoryArgs),
    /// Log in to a registry.
    Login(login::LoginArgs),
    /// Log out from a registry.
    Logout(login::LogoutArgs),
    /// Manage images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(images::ImagesArgs),
    /// Display detailed information on one or more images.
    Inspect(image_inspect::InspectArgs),
    /// Show the history of an image.
    History(image_inspect::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(tag::TagArgs),
    /// Remove one or more images.
    #[command(alias = "remove")]
    Rm(tag::RmiArgs),
    /// Download an image from a registry.
    Pull(pull::PullArgs),
    /// Upload an image to a registry.
    Push(pull::PushArgs),
    /// Save one or more images to a tar archive.
    Save(archive::SaveArgs),
    /// Load an image from a tar archive.
    Load(archive::LoadArgs),
    /// Import a root filesystem tarball as an image.
    Import(archive::ImportArgs),
    /// Remove unused images.
    Prune(tag::PruneArgs),
}

async fn image_command(
    client: &Client,
    host: &str,
    command: &ImageCommand,
) -> anyhow::Result<Output> {
    match command {
        ImageCommand::Ls(a) => images::run(client, a).await,
        ImageCommand::Inspect(a) => image_inspect::inspect(client, a).await,
        ImageCommand::History(a) => image_inspect::history(client, a).await,
        ImageCommand::Tag(a) => tag::tag(host, a).await,
        ImageCommand::Rm(a) => tag::rmi(host, a).await,
        ImageCommand::Pull(a) => pull::pull(host, a).await,
        ImageCommand::Push(a) => pull::push(host, a).await,
        ImageCommand::Save(a) => archive::save(host, a).await,
        ImageCommand::Load(a) => archive::load(host, a).await,
        ImageCommand::Import(a) => archive::import(host, a).await,
        ImageCommand::Prune(a) => tag::prune(host, a).await,
    }
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
            Command::Pull(a) => pull::pull(&cli.host, a).await,
            Command::Push(a) => pull::push(&cli.host, a).await,
            Command::Images(a) => images::run(&client, a).await,
            Command::Tag(a) => tag::tag(&cli.host, a).await,
            Command::Rmi(a) => tag::rmi(&cli.host, a).await,
            Command::Save(a) => archive::save(&cli.host, a).await,
            Command::Load(a) => archive::load(&cli.host, a).await,
            Command::Import(a) => archive::import(&cli.host, a).await,
            Command::History(a) => image_inspect::history(&client, a).await,
            Command::Login(a) => login::login(&cli.host, a).await,
            Command::Logout(a) => login::logout(a).await,
            Command::Image { command } => image_command(&client, &cli.host, command).await,
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
