//! Command-line types (clap). No logic here: `app` turns these into a policy.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "guard",
    version,
    about = "Run AI coding agents in a sandbox: the project and nothing else.",
    propagate_version = true
)]
pub struct Cli {
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND inside the sandbox.
    Run(RunArgs),
    /// Show what this kernel supports and which isolation level guard can build.
    Check,
    /// Print the resolved policy and the ordered sandbox plan, without running.
    Explain(RunArgs),
    /// List the secrets the sandbox would not see (hidden or redacted), and why.
    Scan(ScanArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Profile: a built-in name or a path to a TOML file.
    #[arg(short, long, value_name = "NAME|PATH")]
    pub profile: Option<String>,

    /// Project directory (read-write inside). Default: git root of cwd, else cwd.
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,

    /// Also make PATH visible, read-only.
    #[arg(long = "ro", value_name = "PATH")]
    pub ro: Vec<PathBuf>,

    /// Also make PATH visible, read-write.
    #[arg(long = "rw", value_name = "PATH")]
    pub rw: Vec<PathBuf>,

    /// Hide PATH (an empty file or directory appears in its place).
    #[arg(long = "hide", value_name = "PATH")]
    pub hide: Vec<PathBuf>,

    /// Pass environment variable NAME into the sandbox.
    #[arg(long = "allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,

    /// Run even if a protection layer cannot be applied (says which).
    #[arg(long)]
    pub allow_degraded: bool,

    /// Less output from guard itself.
    #[arg(short, long)]
    pub quiet: bool,

    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Directory to scan (default: the project of the current directory).
    pub dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Profile whose secret rules apply.
    #[arg(short, long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// List the rules in force (id, description, pattern) instead of scanning.
    #[arg(long)]
    pub rules: bool,
}
