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

    let cli = match guard::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version end well; a bad option is bad input, which
        // guard answers with 125 like its other usage errors (clap's own
        // code, 2, could be mistaken for the command's status).
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            std::process::exit(code)
        }
    };
    if !matches!(cli.command, guard::cli::Command::Run(_)) {
        // Commands that only print should end quietly when their reader
        // goes away (`guard log | head`), like other command-line tools.
        // `guard run` keeps SIGPIPE ignored: it must outlive a closed pipe
        // to report the command's status.
        // SAFETY: restoring the default disposition of one signal before
        // any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // Only `guard run` keeps a session log.
    let (log, required) = match &cli.command {
        guard::cli::Command::Run(args) => match &args.log {
            Some(p) => (Some(p.clone()), true),
            None => (guard::audit::new_session_path(), false),
        },
        _ => (None, false),
    };
    let session = match guard::audit::init(cli.verbose, log, required) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("guard: {}", e.render());
            std::process::exit(e.exit_code())
        }
    };
    let code = match guard::app::run(cli, &session) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("guard: {}", e.render());
            e.exit_code()
        }
    };
    // process::exit runs no destructors: write out the session log first.
    session.flush();
    std::process::exit(code)
}
