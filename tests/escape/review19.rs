//! The nineteenth review: what guard does on the host between resolving a
//! run's policy and building its view, while another sandbox may be
//! changing the host directories it writes. Each test names the attack;
//! the ones that say "Hole" failed before the fix that came with them.

use crate::common::KillOnDrop;
use crate::support::each_mode;
use std::time::{Duration, Instant};

/// The attacking sandbox's loop, in its project (the dotfiles repository):
/// for `$1` seconds, swap `ssh_config` between the user's file and a link
/// to the ssh key, each atomically (rename).
const SWAPPER: &str = r#"echo swapping
end=$(( $(date +%s) + $1 ))
while [ "$(date +%s)" -lt "$end" ]; do
  ln -s ../.ssh/id_ed25519 l.tmp && mv -T l.tmp ssh_config
  ln ssh_config.real f.tmp && mv -T f.tmp ssh_config
done
echo done"#;

/// Hole: a file the profile shows read-only in the home, where a link of
/// the user's leads (`~/.ssh/config -> ../dotfiles/ssh_config`, as dotfiles
/// managers leave it), lies in a directory another sandbox may write at
/// the same moment: the dotfiles repository, opened as that sandbox's
/// project at the `landlock` level (where the files home links lead to
/// are protected by a restore after the run, not by a read-only mount).
/// guard resolved the policy (a regular file: scanned, granted) and then,
/// in the setup, copied or bind-mounted the path, following whatever link
/// stood there by then: a sandbox swapping `ssh_config` for a link to
/// `../.ssh/id_ed25519` had concurrent sessions of the git profile (every
/// agent profile builds on it) read the user's ssh key at
/// `~/dotfiles/ssh_config`, a third of the runs. Now the setup never
/// follows a link at a granted path: such a run fails to start, naming it.
#[test]
fn a_granted_file_swapped_for_a_link_by_a_concurrent_sandbox_is_not_followed() {
    each_mode(|mut case| {
        let key = case.add_canary("sshkey");
        let home = case.home().to_path_buf();
        case.env.home.write(
            ".ssh/id_ed25519",
            &format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{key}\n-----END OPENSSH PRIVATE KEY-----\n"
            ),
        );
        let user_config = "Host dev\n  User dev\n";
        case.env.home.write("dotfiles/ssh_config.real", user_config);
        case.env.home.write("dotfiles/ssh_config", user_config);
        case.env.home.write("dotfiles/swap.sh", SWAPPER);
        std::os::unix::fs::symlink("../dotfiles/ssh_config", home.join(".ssh/config"))
            .expect("link ~/.ssh/config");
        case.env.own();
        let dotfiles = home.join("dotfiles");
        // The attacker: a sandbox whose project is the dotfiles repository.
        let mut attacker = case.guard(&[
            "run",
            "-q",
            "--isolation",
            "landlock",
            "--project",
            dotfiles.to_str().expect("utf-8 path"),
            "--",
            "sh",
            "swap.sh",
            "10",
        ]);
        attacker.current_dir(&dotfiles);
        attacker.stdout(std::process::Stdio::piped());
        let mut attacker = KillOnDrop(attacker.spawn().expect("spawn the attacking sandbox"));
        let mut first = String::new();
        if let Some(out) = attacker.0.stdout.as_mut() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(out).read_line(&mut first);
        }
        assert_eq!(
            first.trim(),
            "swapping",
            "the attacking sandbox did not start"
        );
        // The victim: sessions of the git profile in another project.
        let (mut shown, mut refused, mut runs) = (0, 0, 0);
        let start = Instant::now();
        while runs < 60 && start.elapsed() < Duration::from_secs(8) {
            runs += 1;
            let out = case.run(&[
                "run",
                "-p",
                "git",
                "--",
                "sh",
                "-c",
                "echo ran=1; cat ~/dotfiles/ssh_config",
            ]);
            if out.stdout.contains("User dev") {
                shown += 1;
            } else if out.code == 125 && out.stderr.contains("became a link") {
                refused += 1;
            }
        }
        let _ = attacker.0.wait();
        // The swaps reached some runs' setup (they were refused, naming
        // the link), and the others showed the user's file or nothing; the
        // key never (`case.run` checks every run's output).
        assert!(
            shown > 0,
            "no run showed ~/dotfiles/ssh_config ({runs} runs)"
        );
        assert!(
            refused > 0,
            "no run met the swap in its setup ({runs} runs, {shown} shown)"
        );
    });
}
