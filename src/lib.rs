//! guard: run AI coding agents in a Linux sandbox.
//!
//! Layers (see DESIGN.md): `profile` (TOML) → `policy` (pure, resolved) →
//! `plan` (pure: mount ops, Landlock rules, seccomp table) → `sandbox` (the
//! only module with namespace/mount/exec side effects).

pub mod app;
pub mod audit;
pub mod check;
pub mod cli;
pub mod error;
pub mod host;
pub mod net;
pub mod plan;
pub mod policy;
pub mod profile;
pub mod sandbox;

pub use error::{Error, Result};
