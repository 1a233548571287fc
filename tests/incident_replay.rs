//! examples/incident-replay/run.sh as a test: the bare run deletes the
//! volume, the guarded run does not, and the token never appears in the
//! guarded output (the script checks all three and exits 0 only then).

mod common;

use common::{Mode, guard_bin, modes};
use std::process::Command;

#[test]
fn incident_replay_breaks_the_chain() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/incident-replay/run.sh");
    // The example directory must be readable by the unprivileged uid too.
    let copy = common::TempDir::new("incident", Mode::Invoker);
    let st = Command::new("cp")
        .args(["-r"])
        .arg(script.parent().unwrap())
        .arg(&copy.path)
        .status()
        .unwrap();
    assert!(st.success());
    let run_sh = copy.path.join("incident-replay/run.sh");
    for mode in modes() {
        let mut cmd = common::as_mode_user(mode, "bash");
        let home = common::TempDir::new("incident-home", mode);
        let out = common::Outcome::from(
            cmd.arg(&run_sh)
                .arg(guard_bin())
                .env("HOME", &home.path)
                .current_dir(&copy.path)
                .output()
                .unwrap(),
        );
        assert!(
            out.stdout.contains("control plane: 1 volume(s) deleted"),
            "bare run did not delete:\n{}",
            out.all()
        );
        // Both links broke: the token was not visible, the host not reachable.
        assert!(out.stdout.contains("LINK 1 BROKEN"), "{}", out.all());
        assert!(out.stdout.contains("LINK 2 BROKEN"), "{}", out.all());
        out.expect_code(0);
    }
}
