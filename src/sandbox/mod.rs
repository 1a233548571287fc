//! The only module with namespace, mount and exec side effects.
//!
//! `supervisor` runs in guard's own process; `init` runs in the re-executed
//! setup process and the sandbox's pid 1. They talk over `channel`.

mod channel;
mod init;
mod keeper;
mod listeners;
mod lock;
mod mounts;
pub mod probe;
mod supervisor;
mod sys;

pub use keeper::{Keeper, Uncovered};
pub use mounts::Cover;
pub use supervisor::{Pending, spawn};
pub use sys::{StreamModes, TerminalModes, discard_terminal_input};

/// argv[1] that selects the internal setup mode of the guard binary.
pub const INTERNAL_ARG: &str = "__sandbox";

/// Environment variable carrying the supervisor's pid to the setup process.
const SUPERVISOR_PID_ENV: &str = "GUARD_SUPERVISOR_PID";

/// Entry point of `guard __sandbox FD LEVEL KEEPER_FD` (never returns).
pub fn internal_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    let fd = args.get(2).and_then(|s| s.parse::<i32>().ok());
    let parent = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|s| s.parse::<i32>().ok());
    let isolation = match args.get(3).map(String::as_str) {
        Some("full") => Some(crate::profile::Isolation::Full),
        Some("landlock") => Some(crate::profile::Isolation::Landlock),
        _ => None,
    };
    let keeper = args.get(4).and_then(|s| s.parse::<i32>().ok());
    let reaped = args.get(5).and_then(|s| s.parse::<i32>().ok());
    match (fd, parent, isolation, keeper, reaped) {
        (Some(fd), Some(parent), Some(isolation), Some(keeper), Some(reaped)) => init::setup_main(
            init::Fds {
                control: fd,
                keeper,
                reaped,
            },
            parent,
            isolation,
        ),
        _ => {
            eprintln!("guard: {INTERNAL_ARG} is internal to guard; run `guard run -- COMMAND`");
            sys::exit_now(125)
        }
    }
}
