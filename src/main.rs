//! guard: CLI entry. Parse, init tracing, run, print an error once, exit.
//!
//! The same binary is re-executed as the sandbox's setup process
//! (`guard __sandbox ...`); that path is taken before anything else so the
//! setup runs in a fresh, single-threaded process.

use clap::Parser;
use std::path::Path;

fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(guard::sandbox::INTERNAL_ARG)) {
        guard::sandbox::internal_main();
    }

    let cli = guard::cli::Cli::parse();
    let log = match &cli.command {
        guard::cli::Command::Run(a) => a.log.clone(),
        _ => None,
    };
    if let Err(e) = init_tracing(cli.verbose, log.as_deref()) {
        eprintln!("guard: {}", e.render());
        std::process::exit(e.exit_code());
    }
    match guard::app::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("guard: {}", e.render());
            std::process::exit(e.exit_code());
        }
    }
}

/// stderr at the chosen verbosity; with `--log FILE`, every event from INFO
/// up as one JSON object per line (the audit log).
fn init_tracing(verbose: u8, log: Option<&Path>) -> guard::Result<()> {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_filter(level);
    let file = match log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| guard::Error::io("open the log file", path, e))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(LevelFilter::INFO),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    Ok(())
}
