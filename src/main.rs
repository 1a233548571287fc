//! guard: CLI entry. Parse, init tracing, run, print an error once, exit.
//!
//! The same binary is re-executed as the sandbox's setup process
//! (`guard __sandbox ...`); that path is taken before anything else so the
//! setup runs in a fresh, single-threaded process.

use clap::Parser;

fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(guard::sandbox::INTERNAL_ARG)) {
        guard::sandbox::internal_main();
    }

    let cli = guard::cli::Cli::parse();
    init_tracing(cli.verbose);
    match guard::app::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("guard: {}", e.render());
            std::process::exit(e.exit_code());
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
