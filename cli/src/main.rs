//! `berth`: parses docker-style arguments, runs the command, maps exit codes.

use std::io::Write;
use std::process::ExitCode;

use berth_cli::client::{Client, DEFAULT_HOST};
use berth_cli::commands::ps::PsFlags;
use berth_cli::commands::{self, container, Output};
use berth_cli::run_args::CreateFlags;
use clap::{Args, Parser, Subcommand};
use commands::{archive, attach, exec, image_inspect, images, login, pull, tag};

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

/// Commands on containers, at the top level and under `berth container`.
#[derive(Subcommand)]
enum ContainerCommand {
    /// Create and run a new container from an image.
    Run {
        /// Run the container in the background and print its ID.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Proxy received signals to the process.
        #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Override the key sequence for detaching a container.
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[command(flatten)]
        flags: CreateFlags,
        /// IMAGE [COMMAND] [ARG...]
        // Hyphens are the command's from the image on (`run busybox ls -l`); before
        // it, an unknown `--flag` is an error, not an image name.
        #[arg(required = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Create a new container.
    Create {
        #[command(flatten)]
        flags: CreateFlags,
        /// IMAGE [COMMAND] [ARG...]
        // Hyphens are the command's from the image on (`run busybox ls -l`); before
        // it, an unknown `--flag` is an error, not an image name.
        #[arg(required = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Start one or more stopped containers.
    Start {
        /// Attach STDOUT/STDERR and forward signals.
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach container's STDIN.
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Override the key sequence for detaching a container.
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach local standard input, output, and error streams to a running container.
    Attach {
        /// Do not attach STDIN.
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        /// Proxy all received signals to the process.
        #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Override the key sequence for detaching a container.
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        container: String,
    },
    /// Execute a command in a running container.
    Exec(exec::ExecArgs),
    /// Stop one or more running containers.
    Stop {
        /// Seconds to wait before killing the container.
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers.
    Restart {
        /// Seconds to wait before killing the container.
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers.
    Kill {
        /// Signal to send to the container.
        #[arg(short = 's', long)]
        signal: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers.
    Rm {
        /// Force the removal of a running container (uses SIGKILL).
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove anonymous volumes associated with the container.
        #[arg(short = 'v', long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    #[command(alias = "ls", alias = "list")]
    Ps(PsArgs),
    /// Update configuration of one or more containers.
    Update {
        /// CPU shares (relative weight).
        #[arg(short = 'c', long)]
        cpu_shares: Option<i64>,
        /// Limit CPU CFS (Completely Fair Scheduler) period.
        #[arg(long)]
        cpu_period: Option<i64>,
        /// Limit CPU CFS (Completely Fair Scheduler) quota.
        #[arg(long)]
        cpu_quota: Option<i64>,
        /// Number of CPUs.
        #[arg(long)]
        cpus: Option<String>,
        /// CPUs in which to allow execution (0-3, 0,1).
        #[arg(long)]
        cpuset_cpus: Option<String>,
        /// MEMs in which to allow execution (0-3, 0,1).
        #[arg(long)]
        cpuset_mems: Option<String>,
        /// Memory limit.
        #[arg(short = 'm', long)]
        memory: Option<String>,
        /// Memory soft limit.
        #[arg(long)]
        memory_reservation: Option<String>,
        /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap.
        #[arg(long, allow_hyphen_values = true)]
        memory_swap: Option<String>,
        /// Tune container pids limit (set -1 for unlimited).
        #[arg(long, allow_hyphen_values = true)]
        pids_limit: Option<i64>,
        /// Restart policy to apply when a container exits.
        #[arg(long)]
        restart: Option<String>,
        /// Block IO (relative weight), between 10 and 1000, or 0 to disable.
        #[arg(long)]
        blkio_weight: Option<u16>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display a live stream of container(s) resource usage statistics.
    Stats {
        /// Show all containers (default shows just running).
        #[arg(short = 'a', long)]
        all: bool,
        /// Disable streaming stats and only pull the first result.
        #[arg(long)]
        no_stream: bool,
        /// Do not truncate output.
        #[arg(long)]
        no_trunc: bool,
        /// Pretty-print images using a Go template.
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// Get real time events from the server.
    Events {
        /// Filter output based on conditions provided (type=, container=, event=…).
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format the output using the given Go template.
        #[arg(long)]
        format: Option<String>,
        /// Show all events created since timestamp.
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this timestamp.
        #[arg(long)]
        until: Option<String>,
    },
    /// Fetch the logs of a container.
    Logs {
        /// Follow log output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Number of lines to show from the end of the logs ("all").
        #[arg(short = 'n', long)]
        tail: Option<String>,
        /// Show logs since a timestamp or relative time (e.g. 42m).
        #[arg(long)]
        since: Option<String>,
        /// Show logs before a timestamp or relative time (e.g. 42m); with -f, stop
        /// following then.
        #[arg(long)]
        until: Option<String>,
        /// Show timestamps.
        #[arg(short = 't', long)]
        timestamps: bool,
        container: String,
    },
    /// Block until one or more containers stop, then print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display detailed information on one or more containers.
    Inspect {
        /// Format the output using the given Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display the running processes of a container.
    Top { container: String },
    /// List port mappings or a specific mapping for the container.
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        private_port: Option<String>,
    },
    /// Copy files/folders between a container and the local filesystem.
    Cp(commands::cp::CpArgs),
    /// Export a container's filesystem as a tar archive.
    Export(commands::export::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff { container: String },
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// Pause all processes within one or more containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

#[derive(Args)]
struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided.
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Pretty-print containers using a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last")]
    last: Option<i64>,
    /// Show the latest created container.
    #[arg(short = 'l', long)]
    latest: bool,
}

/// `berth container …`.
// Parsed once per process and matched straight away; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ContainerGroup {
    #[command(flatten)]
    Each(ContainerCommand),
    /// Remove all stopped containers.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Remove build cache.
    Prune {
        /// Remove all unused build cache, not just dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Containers(ContainerCommand),
    /// Build an image from a Dockerfile.
    Build(commands::build::BuildArgs),
    /// Manage builds.
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
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
    /// Manage containers.
    Container {
        #[command(subcommand)]
        command: ContainerGroup,
    },
    /// Manage networks.
    Network {
        #[command(subcommand)]
        command: commands::network::NetworkCommand,
    },
    /// Manage volumes.
    Volume {
        #[command(subcommand)]
        command: commands::volume::VolumeCommand,
    },
    /// Manage berth: disk usage, pruning.
    System {
        #[command(subcommand)]
        command: commands::system::SystemCommand,
    },
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

/// Parses the command line; usage errors exit as docker's do: 125 for a bad flag or
/// value, 1 for a missing argument or an unknown command, 0 after help.
fn parse() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
            ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand
            | ErrorKind::InvalidSubcommand => ExitCode::FAILURE,
            _ => ExitCode::from(commands::run::EXIT_DAEMON_ERROR),
        }
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
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
            Command::Containers(c) => container_command(&client, &cli.host, c).await,
            Command::Build(a) => commands::build::build(&cli.host, a).await,
            Command::Builder {
                command: BuilderCommand::Prune { all, force },
            } => commands::build::prune(&client, *all, *force).await,
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
            Command::Volume { command } => commands::volume::run(&client, command).await,
            Command::System { command } => commands::system::run(&client, command).await,
            Command::Network { command } => commands::network::run(&client, command).await,
            Command::Container { command } => match command {
                ContainerGroup::Each(c) => container_command(&client, &cli.host, c).await,
                ContainerGroup::Prune { force } => container::prune(&client, *force).await,
            },
        }
    });
    match result {
        Ok(Output {
            stdout,
            error,
            code,
        }) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(stdout.as_bytes());
            if !stdout.is_empty() && !stdout.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
            if let Some(err) = &error {
                eprintln!("{err:#}");
            }
            match (code, error) {
                (Some(code), _) => ExitCode::from(code),
                (None, None) => ExitCode::SUCCESS,
                (None, Some(_)) => ExitCode::FAILURE,
            }
        }
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn container_command(
    client: &Client,
    host: &str,
    c: &ContainerCommand,
) -> anyhow::Result<Output> {
    use ContainerCommand as C;
    match c {
        C::Run {
            detach,
            sig_proxy,
            detach_keys,
            flags,
            args,
        } => {
            let foreground = commands::run::Foreground {
                sig_proxy: *sig_proxy,
                detach_keys: detach_keys.clone(),
            };
            let foreground = (!*detach).then_some(&foreground);
            commands::run::run(client, host, flags, foreground, &args[0], &args[1..]).await
        }
        C::Create { flags, args } => {
            commands::run::create(client, host, flags, &args[0], &args[1..]).await
        }
        C::Start {
            attach: true,
            interactive,
            detach_keys,
            containers,
        } => attach::start(client, containers, *interactive, detach_keys.as_deref()).await,
        C::Start {
            interactive: true,
            detach_keys,
            containers,
            ..
        } => attach::start(client, containers, true, detach_keys.as_deref()).await,
        C::Start { containers, .. } => container::start(client, containers).await,
        C::Attach {
            no_stdin,
            sig_proxy,
            detach_keys,
            container,
        } => {
            attach::attach(
                client,
                container,
                *no_stdin,
                *sig_proxy,
                detach_keys.as_deref(),
            )
            .await
        }
        C::Exec(args) => exec::exec(client, args).await,
        C::Stop { time, containers } => container::stop(client, containers, *time).await,
        C::Restart { time, containers } => container::restart(client, containers, *time).await,
        C::Kill { signal, containers } => {
            container::kill(client, containers, signal.as_deref()).await
        }
        C::Rm {
            force,
            volumes,
            containers,
        } => container::rm(client, containers, *force, *volumes).await,
        C::Ps(a) => {
            let flags = PsFlags {
                all: a.all,
                quiet: a.quiet,
                no_trunc: a.no_trunc,
                filters: a.filter.clone(),
                format: a.format.clone(),
                last: if a.latest { Some(1) } else { a.last },
            };
            commands::ps::run(client, &flags).await
        }
        C::Logs {
            follow,
            tail,
            since,
            until,
            timestamps,
            container,
        } => {
            container::logs(
                client,
                container,
                *follow,
                tail.as_deref(),
                (since.as_deref(), until.as_deref()),
                *timestamps,
            )
            .await
        }
        C::Update {
            cpu_shares,
            cpu_period,
            cpu_quota,
            cpus,
            cpuset_cpus,
            cpuset_mems,
            memory,
            memory_reservation,
            memory_swap,
            pids_limit,
            restart,
            blkio_weight,
            containers,
        } => {
            let flags = commands::update::UpdateFlags {
                cpu_shares: *cpu_shares,
                cpu_period: *cpu_period,
                cpu_quota: *cpu_quota,
                cpus: cpus.clone(),
                cpuset_cpus: cpuset_cpus.clone(),
                cpuset_mems: cpuset_mems.clone(),
                memory: memory.clone(),
                memory_reservation: memory_reservation.clone(),
                memory_swap: memory_swap.clone(),
                pids_limit: *pids_limit,
                restart: restart.clone(),
                blkio_weight: *blkio_weight,
            };
            commands::update::run(client, &flags, containers).await
        }
        C::Stats {
            all,
            no_stream,
            no_trunc,
            format,
            containers,
        } => {
            let flags = commands::stats::StatsFlags {
                all: *all,
                no_stream: *no_stream,
                no_trunc: *no_trunc,
                format: format.clone(),
                containers: containers.clone(),
            };
            commands::stats::run(client, &flags).await
        }
        C::Events {
            filter,
            format,
            since,
            until,
        } => {
            let flags = commands::events::EventsFlags {
                filters: filter.clone(),
                format: format.clone(),
                since: since.clone(),
                until: until.clone(),
            };
            commands::events::run(client, &flags).await
        }
        C::Wait { containers } => container::wait(client, containers).await,
        C::Inspect { format, containers } => {
            container::inspect(client, containers, format.as_deref()).await
        }
        C::Top { container } => container::top(client, container).await,
        C::Port {
            container,
            private_port,
        } => container::port(client, container, private_port.as_deref()).await,
        C::Cp(a) => commands::cp::run(host, a).await,
        C::Export(a) => commands::export::export(host, a).await,
        C::Diff { container } => commands::export::diff(host, container).await,
        C::Rename {
            container,
            new_name,
        } => container::rename(client, container, new_name).await,
        C::Pause { containers } => container::pause(client, containers, true).await,
        C::Unpause { containers } => container::pause(client, containers, false).await,
    }
}
