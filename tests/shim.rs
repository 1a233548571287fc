//! `guard shim install`: an agent started by name runs inside guard.

mod common;

use common::{Env, Mode};

#[test]
fn shim_runs_the_real_command_inside_guard() {
    let env = Env::new(Mode::Invoker);
    let shims = env.home.join("shims");
    env.run(&[
        "shim",
        "install",
        "printenv",
        "--dir",
        shims.to_str().unwrap(),
    ])
    .expect_code(0);
    let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap());
    let secret = common::canary("shim");
    let out = common::Outcome::from(
        std::process::Command::new("printenv")
            .env("PATH", &path)
            .env("HOME", &env.home.path)
            .env("SHIM_SECRET", &secret)
            .current_dir(&env.project.path)
            .output()
            .unwrap(),
    );
    out.expect_code(0);
    // Inside guard: the marker is set and the caller's variable is gone.
    assert!(out.stdout.contains("GUARD_SANDBOX=1"), "{}", out.all());
    out.assert_no_canary(&secret);
}
