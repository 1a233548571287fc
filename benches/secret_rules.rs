//! Start-up cost of the secret rules: `Rules::new` for the default profile,
//! and the built-in path rules built as guard builds them, side by side
//! with compiling the same globs with globset (what the constructor used to
//! do on every start). Each sample is one
//! construction in a fresh process, as on `guard run`'s start-up path (a
//! loop in one process would measure warm caches and a warmed allocator).
//!
//!   cargo bench --bench secret_rules
//!   BASELINE=/path/to/older/secret_rules cargo bench --bench secret_rules
//!
//! With BASELINE (this bench built from another commit), that binary's
//! `Rules::new` and environment checks are sampled in the same run,
//! interleaved with ours. The environment checks (`PATH`, `LANG`, `TERM`:
//! every `guard run` checks the variables it passes) are timed after
//! `Rules::new`, on their own.

use guard::secrets::{self, path_rules};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SAMPLES: usize = 300;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("once") {
        let ns = once(args.get(1).map_or("", String::as_str));
        println!("{ns}");
        return;
    }
    let me = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    let baseline = std::env::var_os("BASELINE");
    let mut variants: Vec<(String, std::path::PathBuf, &str)> = vec![
        ("Rules::new (default profile)".into(), me.clone(), "rules"),
        ("built-in path rules".into(), me.clone(), "paths"),
        ("the same through globset".into(), me.clone(), "globset"),
        ("then 3 environment checks".into(), me.clone(), "env"),
    ];
    if let Some(b) = &baseline {
        variants.push(("baseline Rules::new".into(), b.into(), "rules"));
        variants.push(("baseline environment checks".into(), b.into(), "env"));
    }
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); variants.len()];
    for _ in 0..SAMPLES {
        for (i, (_, exe, what)) in variants.iter().enumerate() {
            let out = Command::new(exe)
                .args(["once", what])
                .output()
                .unwrap_or_else(|e| die(&format!("run {}: {e}", exe.display())));
            let text = String::from_utf8_lossy(&out.stdout);
            let ns = text
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| die(&format!("bad sample from {}: {text}", exe.display())));
            samples[i].push(ns);
        }
    }
    println!("one construction in a fresh process, median of {SAMPLES} (p10 .. p90):");
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            s[s.len() / 2] as f64 / 1000.0
        })
        .collect();
    for ((name, _, _), s) in variants.iter().zip(&samples) {
        let p = |q: usize| s[s.len() * q / 100] as f64 / 1000.0;
        println!(
            "  {name:32} {:8.1} µs   ({:.1} .. {:.1})",
            p(50),
            p(10),
            p(90)
        );
    }
    println!(
        "  built-in path rules: {:.3}x globset's time",
        medians[1] / medians[2]
    );
    if medians.len() > 4 {
        println!(
            "  Rules::new: {:.3}x the baseline's; environment checks: {:.3}x",
            medians[0] / medians[4],
            medians[3] / medians[5]
        );
    }
}

fn once(what: &str) -> u128 {
    let text = "version = 1\n[secrets]\nskip = [\"**/.git/objects\"]\n";
    let profile = guard::profile::parse(text, "bench.toml")
        .unwrap_or_else(|e| die(&format!("profile: {}", e.render())));
    let started = Instant::now();
    match what {
        "rules" => {
            let r = secrets::Rules::new(
                &profile.secrets,
                "bench.toml",
                Path::new("/home/bench"),
                Path::new("/home/bench/project"),
            )
            .unwrap_or_else(|e| die(&e.render()));
            std::hint::black_box(&r);
        }
        "globset" => {
            let mut set = globset::GlobSetBuilder::new();
            let mut excepts = Vec::new();
            for r in path_rules::builtin() {
                for g in &r.globs {
                    set.add(path_rules::glob(g).unwrap_or_else(|e| die(&e.to_string())));
                }
                let mut ex = globset::GlobSetBuilder::new();
                for g in &r.except {
                    ex.add(path_rules::glob(g).unwrap_or_else(|e| die(&e.to_string())));
                }
                excepts.push(ex.build().unwrap_or_else(|e| die(&e.to_string())));
            }
            let set = set.build().unwrap_or_else(|e| die(&e.to_string()));
            std::hint::black_box((&set, &excepts));
        }
        "env" => {
            let r = secrets::Rules::new(
                &profile.secrets,
                "bench.toml",
                Path::new("/home/bench"),
                Path::new("/home/bench/project"),
            )
            .unwrap_or_else(|e| die(&e.render()));
            let t = Instant::now();
            for (k, v) in [
                ("PATH", "/usr/local/bin:/usr/bin:/bin"),
                ("LANG", "C.UTF-8"),
                ("TERM", "xterm-256color"),
            ] {
                std::hint::black_box(r.env_secret(k, v).is_ok());
            }
            return t.elapsed().as_nanos();
        }
        "paths" => {
            let m = secrets::PathMatcher::new(path_rules::builtin());
            std::hint::black_box(&m.is_ok());
        }
        "content" => {
            let m = secrets::ContentEngine::new(secrets::content_rules::builtin());
            std::hint::black_box(&m.is_ok());
        }
        _ => die("usage: secret_rules once rules|paths|globset|content|env"),
    }
    started.elapsed().as_nanos()
}

fn die(msg: &str) -> ! {
    eprintln!("secret_rules: {msg}");
    std::process::exit(2)
}
