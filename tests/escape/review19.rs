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
const SWAP_FILE: &str = r#"echo swapping
end=$(( $(date +%s) + $1 ))
while [ "$(date +%s)" -lt "$end" ]; do
  ln -s ../.ssh/id_ed25519 l.tmp && mv -T l.tmp ssh_config
  ln ssh_config.real f.tmp && mv -T f.tmp ssh_config
done
echo done"#;

/// The same, one directory up: swap the directory `ssh` for a link to
/// `~/.kube`, which holds a file of the same name as the granted one
/// (`config`).
const SWAP_DIR: &str = r#"echo swapping
end=$(( $(date +%s) + $1 ))
while [ "$(date +%s)" -lt "$end" ]; do
  mv ssh ssh.real && ln -s ../.kube ssh
  rm ssh && mv ssh.real ssh
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
        case.env.home.write("dotfiles/ssh_config.real", USER_CONFIG);
        case.env.home.write("dotfiles/ssh_config", USER_CONFIG);
        case.env.home.write("dotfiles/swap.sh", SWAP_FILE);
        std::os::unix::fs::symlink("../dotfiles/ssh_config", home.join(".ssh/config"))
            .expect("link ~/.ssh/config");
        race(&mut case, "~/dotfiles/ssh_config");
    });
}

/// Hole (left by the fix above, which refused a link only as the granted
/// entry itself): the same race one directory up. With
/// `~/.ssh/config -> ../dotfiles/ssh/config`, the attacking sandbox swaps
/// its directory `ssh` for a link to `../.kube`: the granted path then
/// names `~/.kube/config`, a regular file, which the setup opened without
/// following a link (there was none as its last component) and mounted,
/// and concurrent sessions of the git profile read the cluster token. Now
/// the granted path is opened refusing a link anywhere on its way (policy
/// paths are canonical, so one found there was put there since).
#[test]
fn a_directory_on_the_way_to_a_grant_swapped_for_a_link_is_not_followed() {
    each_mode(|mut case| {
        let token = case.add_canary("kubetoken");
        let home = case.home().to_path_buf();
        case.env.home.write(
            ".kube/config",
            &format!("users:\n- name: admin\n  user:\n    token: {token}\n"),
        );
        case.env.home.write("dotfiles/ssh/config", USER_CONFIG);
        case.env.home.write("dotfiles/swap.sh", SWAP_DIR);
        std::fs::create_dir_all(home.join(".ssh")).expect("mkdir ~/.ssh");
        std::os::unix::fs::symlink("../dotfiles/ssh/config", home.join(".ssh/config"))
            .expect("link ~/.ssh/config");
        race(&mut case, "~/dotfiles/ssh/config");
    });
}

/// The user's ssh config, what the victim's sessions should see.
const USER_CONFIG: &str = "Host dev\n  User dev\n";

/// Start the attacking sandbox (`swap.sh` in `~/dotfiles`, its project, at
/// the `landlock` level), then run sessions of the git profile in another
/// project that `cat` the granted file at `shown`, for up to 8 seconds.
/// Some must show the user's file and some must meet the swap in their
/// setup and refuse to start, naming the link; `case.run` checks that no
/// run's output holds a canary.
fn race(case: &mut crate::support::Case, shown_at: &str) {
    let dotfiles = case.home().join("dotfiles");
    case.env.own();
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
    let script = format!("echo ran=1; cat {shown_at}");
    let (mut shown, mut refused, mut runs) = (0, 0, 0);
    let start = Instant::now();
    while runs < 60 && start.elapsed() < Duration::from_secs(8) {
        runs += 1;
        let out = case.run(&["run", "-p", "git", "--", "sh", "-c", &script]);
        if out.stdout.contains("User dev") {
            shown += 1;
        } else if out.code == 125 && out.stderr.contains("became a link") {
            refused += 1;
        }
    }
    let _ = attacker.0.wait();
    // The swaps reached some runs' setup (they were refused, naming the
    // link), and the others showed the user's file or nothing; the secret
    // never.
    assert!(shown > 0, "no run showed {shown_at} ({runs} runs)");
    assert!(
        refused > 0,
        "no run met the swap in its setup ({runs} runs, {shown} shown)"
    );
}
