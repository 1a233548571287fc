//! Review 32: everyday developer work inside guard (does the agent still
//! work?). Each test names what broke; each failed before the fix that
//! came with it.

use crate::support::{Expect, FILL, each_mode, expect_flagged, expect_not_flagged, expect_seen};

/// Broke: the generic rule's guesses in installed packages (minified
/// JavaScript, generated JSON) were redacted: `next build` failed on a
/// rewritten identifier, boto3's paginators lost their keys, and every
/// covered file was a mount point `npm uninstall` and `pip uninstall`
/// could not remove (EBUSY; pip left the venv half-removed on the host).
/// In installed packages only well-known token formats and keys count.
#[test]
fn installed_packages_are_searched_for_known_token_formats_only() {
    each_mode(|mut case| {
        let gh = case.add_gh_canary("pkgtoken");
        // Looks like an assignment of a random value; code in a package.
        let guess = format!("  internalKey = \"{FILL}$\" + randomKey;");
        case.write(
            "node_modules/lexer/index.js",
            &format!("module.exports = 1;\n{guess}\n"),
        );
        case.write(
            ".venv/lib/python3.11/site-packages/lib/gen.py",
            &format!("ROUNDS = 3\nsecret_key = \"{FILL}\"\n"),
        );
        case.write(
            "node_modules/leaky/config.js",
            &format!(
                "module.exports = {{\n  url: 'https://x',\n  timeout: 30,\n  retries: 2,\n  gh: '{gh}',\n}};\n"
            ),
        );
        case.write(
            "src/app.py",
            &format!("ROUNDS = 3\nsecret_key = \"{FILL}\"\n"),
        );
        case.env.own();
        expect_seen(
            &case,
            &[("leaky", "node_modules/leaky/config.js", "redacted")],
            &[("leaky_kept", "node_modules/leaky/config.js", "timeout: 30,")],
        );
        // Read as they are (the script names the files only: a value in it
        // would have the script itself redacted).
        let out = case.sh(
            "cat node_modules/lexer/index.js .venv/lib/python3.11/site-packages/lib/gen.py; echo ran=1",
        );
        out.ran();
        assert!(
            out.stdout.contains(&guess) && out.stdout.contains(&format!("secret_key = \"{FILL}\"")),
            "{}",
            out.all()
        );
        expect_not_flagged(
            &case,
            &[
                "node_modules/lexer/index.js",
                ".venv/lib/python3.11/site-packages/lib/gen.py",
            ],
        );
        expect_flagged(
            &case,
            "node_modules/leaky/config.js",
            "redact",
            "github-token",
        );
        // The same assignment in the project's own code is a secret.
        expect_flagged(&case, "src/app.py", "hide", "secret-assignment");
    });
}
