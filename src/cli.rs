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
    Explain(ExplainArgs),
    /// Show a past session's audit events.
    Log(LogArgs),
    /// Wrapper scripts that run agents inside guard when started by name
    /// (from an IDE terminal, `docker exec`, scripts).
    #[command(subcommand)]
    Shim(ShimCommand),
    /// List profiles, or show one merged, with where each setting came from.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Trust the project's .guard.toml (shows what it widens; pins its hash).
    Trust {
        /// Project directory (default: the project of the current directory).
        dir: Option<PathBuf>,
    },
    /// List the secrets the sandbox would not see (hidden or redacted), and why.
    Scan(ScanArgs),
    /// Remove what guard keeps for projects that no longer exist (the
    /// agents' persistent homes, copy-on-write cache layers, scan caches),
    /// or for the project named with --project.
    Prune {
        /// Remove the state of this project (it exists) instead of gone ones.
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
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

    /// Allow connections to HOST: a name, `*.suffix`, or an IP address; on
    /// PORT only, or on 443 and 80 when no port is given. Repeatable.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_host: Vec<String>,

    /// No network at all: no proxy, no DNS, only loopback inside.
    #[arg(long, conflicts_with = "allow_host")]
    pub no_network: bool,

    /// Run even if a protection layer cannot be applied (says which); without
    /// namespaces, fall back to the `landlock` isolation level.
    #[arg(long)]
    pub allow_degraded: bool,

    /// Force an isolation level: `full` (namespaces + Landlock + seccomp) or
    /// `landlock` (no namespaces, as inside Docker; weaker, and says how).
    #[arg(long, value_name = "LEVEL")]
    pub isolation: Option<crate::profile::Isolation>,

    /// No exit summary.
    #[arg(short, long)]
    pub quiet: bool,

    /// Write the audit log (JSON lines) here instead of the session directory.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// The command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Read the last session's log and print the profile lines that would
    /// allow what was refused (nothing is applied).
    #[arg(long)]
    pub suggest: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Session log file or name (default: the last session).
    pub session: Option<String>,
    /// The last session (the default).
    #[arg(long)]
    pub last: bool,
    /// Print the raw JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Only events of this kind (net, fs, env, session, trust, degraded).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
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

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Built-in and user profiles.
    List,
    /// The merged profile, each setting annotated with its source file.
    Show {
        /// Profile name or path.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Write a wrapper for each AGENT into DIR; put DIR first in PATH.
    Install {
        /// Agent commands to wrap (claude, codex, cursor-agent ...).
        #[arg(required = true)]
        agents: Vec<String>,
        /// Where to write them (default: $XDG_DATA_HOME/guard/shims).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}
