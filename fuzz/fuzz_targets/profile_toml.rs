//! Profile TOML (`guard::profile::parse`): a project's `.guard.toml` is
//! written by whoever controls the repository, so the parser, the
//! cross-checks it runs ([network] validation, [secrets] validation) and
//! what a parsed profile feeds (the allowlist, the secret rule engine) must
//! only ever return errors, never panic.
#![no_main]

use guard::profile;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // Profiles are read as UTF-8 text; invalid UTF-8 is refused earlier.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match profile::parse(text, "fuzz.toml") {
        Err(e) => {
            // Error rendering computes line/column from spans: exercise it.
            let _ = e.render();
            let _ = e.exit_code();
        }
        Ok(p) => {
            let allow = p.network.allowlist("fuzz.toml");
            let _ = allow.transparent_ports();
            let _ = guard::net::describe(&guard::net::NetPolicy {
                enabled: true,
                allow,
            });
            // Profile content rules go into the engine; scanning compiles
            // them (lazily) and runs them over the profile text itself.
            if let Ok(rules) = guard::secrets::Rules::new(
                &p.secrets,
                "fuzz.toml",
                Path::new("/home/u"),
                Path::new("/home/u/project"),
            ) && !p.secrets.content_rules.is_empty()
            {
                let _ = rules.content.scan(data);
            }
        }
    }
});
