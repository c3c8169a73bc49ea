//! The `vigie` binary: parses the command line and the configuration, then hands over
//! to one subcommand in [`commands`]; everything they call is a library function.

mod commands;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use vigie::config::Settings;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use commands::{
    demo::DemoArgs, ingest::IngestArgs, replay::ReplayArgs, serve::ServeArgs,
    simulate::SimulateArgs,
};

#[derive(Parser, Debug)]
#[command(
    name = "vigie",
    version,
    about = "Real-time hypervision of omnichannel customer-service centres"
)]
struct Cli {
    /// TOML configuration file (defaults, then this file, then VIGIE__SECTION__KEY variables).
    #[arg(long, global = true, env = "VIGIE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Feed a recorded stream through the engine and print one KPI snapshot as JSON.
    Replay(ReplayArgs),
    /// Write a realistic simulated stream of interaction events, to a file or to Kafka.
    Simulate(SimulateArgs),
    /// Consume interaction events from Kafka into the engine (rebuilding state first).
    Serve(ServeArgs),
    /// Bridge an ACD's own log or events to the events topic (`vigie ingest asterisk`).
    Ingest(IngestArgs),
    /// The whole path with nothing installed: an in-process Kafka cluster, the simulator
    /// producing live traffic into it, the consumer and the engine; prints the KPIs.
    Demo(DemoArgs),
    /// Print the API's route table (method and path, one a line), as the router has it.
    #[command(hide = true)]
    Routes,
    /// Print the API's OpenAPI document (JSON), as `/api/v1/openapi.json` serves it.
    #[command(hide = true)]
    Openapi,
}

fn main() -> std::process::ExitCode {
    transparent_huge_pages_off();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Turns transparent huge pages off for this process, as Redis and MongoDB advise for
/// theirs. A huge page is zeroed whole (2 MiB) at its first touch, which on a virtual
/// machine can cost the host hundreds of faults: `scripts/bench-replay.sh`'s replays
/// spent 2.3-2.8 s in the kernel with huge pages and 0.4-0.6 s without, for the same
/// work (README, Performance: issue 17's thirteenth session). The memory is also held
/// more tightly (a third less), the allocator's pages no longer rounded up to 2 MiB.
/// A kernel without the setting (before 3.15) keeps its default: failing is harmless.
/// (The allocator's first arena is made before `main`: mimalloc's `no_thp` feature
/// keeps it from asking for huge pages there.)
fn transparent_huge_pages_off() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

fn run(cli: Cli) -> Result<()> {
    // What the binary serves, without configuration nor logging.
    match cli.command {
        Command::Routes => {
            for route in vigie::server::routes() {
                println!("{route}");
            }
            return Ok(());
        }
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vigie::server::openapi::spec())?
            );
            return Ok(());
        }
        _ => {}
    }
    let settings = Settings::load(cli.config.as_deref())?;
    vigie::telemetry::init(&settings.log.filter);
    match cli.command {
        Command::Replay(args) => commands::replay::run(&settings, args),
        Command::Simulate(args) => commands::simulate::run(&settings, args),
        Command::Serve(args) => commands::serve::run(settings, args),
        Command::Demo(args) => commands::demo::run(settings, args),
        Command::Ingest(args) => commands::ingest::run(&settings, args),
        Command::Routes | Command::Openapi => Ok(()),
    }
}
