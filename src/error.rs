//! One error type for guard. Every variant renders as one paragraph:
//! "failed to <verb> <object>: <cause>" plus, when the user can fix it, a
//! `hint:` line. `main` prints the chain once and exits with [`Error::exit_code`].

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: CLI arguments, paths, environment.
    #[error("{msg}")]
    Usage { msg: String, hint: Option<String> },

    /// A profile that cannot be used (syntax, unknown key, bad value).
    /// `location` is `file:line:column` when known.
    #[error("invalid profile {location}: {msg}")]
    Profile {
        location: String,
        msg: String,
        hint: Option<String>,
    },

    /// The kernel or environment lacks something the policy relies on.
    #[error("{what} is not available: {cause}")]
    Unsupported {
        what: String,
        cause: String,
        hint: Option<String>,
    },

    /// Namespaces cannot be created here (inside Docker, or disabled): the
    /// `landlock` isolation level is the fallback, with --allow-degraded.
    #[error("namespaces (user, mount, pid, net, ipc, uts, cgroup) are not available: {cause}")]
    NoNamespaces { cause: String, hint: String },

    /// An operation on a path failed.
    #[error("failed to {verb} {}: {}", path.display(), os_text(source))]
    Io {
        verb: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A system call outside the filesystem failed.
    #[error("failed to {verb}: {}", os_text(source))]
    Sys {
        verb: String,
        #[source]
        source: std::io::Error,
    },

    /// The command could not be started inside the sandbox (126/127).
    #[error("{msg}")]
    Exec { msg: String, code: i32 },

    /// The sandbox reported a failure during setup (already formatted there).
    #[error("{msg}")]
    Sandbox {
        msg: String,
        hint: Option<String>,
        code: i32,
    },
}

/// An I/O error as a sentence fragment: "permission denied", not
/// "Permission denied (os error 13)" (the number helps no user).
pub fn os_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        // Lower-case only a capitalised word ("No such file"), not an
        // acronym ("EOF").
        Some(c) if chars.next().is_some_and(char::is_lowercase) => c
            .to_lowercase()
            .chain(text[c.len_utf8()..].chars())
            .collect(),
        _ => text.to_string(),
    }
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage {
            msg: msg.into(),
            hint: None,
        }
    }

    pub fn usage_hint(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            msg: msg.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn io(verb: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            verb,
            path: path.into(),
            source,
        }
    }

    pub fn sys(verb: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            verb: verb.into(),
            source: source.into(),
        }
    }

    pub fn unsupported(
        what: impl Into<String>,
        cause: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Unsupported {
            what: what.into(),
            cause: cause.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Usage { hint, .. }
            | Error::Profile { hint, .. }
            | Error::Unsupported { hint, .. }
            | Error::Sandbox { hint, .. } => hint.as_deref(),
            Error::NoNamespaces { hint, .. } => Some(hint),
            _ => None,
        }
    }

    /// Exit status guard uses when it fails: 125 for its own failures, 126/127
    /// when the command cannot be executed (the `env`/`timeout` convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { code, .. } | Error::Sandbox { code, .. } => *code,
            _ => 125,
        }
    }

    /// The whole message, cause chain included, as printed once by `main`.
    pub fn render(&self) -> String {
        use std::error::Error as _;
        let mut out = self.to_string();
        let mut cur = self.source();
        // `Io`/`Sys` already print their source inline; print deeper causes only.
        if matches!(self, Error::Io { .. } | Error::Sys { .. }) {
            cur = cur.and_then(|c| c.source());
        }
        while let Some(c) = cur {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cur = c.source();
        }
        if let Some(h) = self.hint() {
            out.push_str("\n  hint: ");
            out.push_str(h);
        }
        out
    }
}
