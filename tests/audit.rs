//! The audit trail (issue 6): one event per decision in the session log,
//! the exit summary, `guard log`, `guard explain --suggest`.

mod common;

use common::{Env, canary, modes, py};
use serde_json::Value;

/// A GitHub-token-shaped canary, assembled at run time.
fn token(tag: &str) -> String {
    let body: String = canary(tag)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut body = format!("{body}{body}");
    body.truncate(36);
    // Split so this file holds no token-shaped literal itself.
    let prefix = ["gh", "p_"].concat();
    format!("{prefix}{body}")
}

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn has(events: &[Value], pred: impl Fn(&Value) -> bool) -> bool {
    events.iter().any(pred)
}

#[test]
fn a_session_logs_exactly_what_was_stopped_and_the_summary_says_how_to_allow_it() {
    for mode in modes() {
        let env = Env::new(mode);
        let secret_value = token("env");
        let file_secret = token("file");
        env.project
            .write(".env", &format!("API_TOKEN={file_secret}\n"));
        env.home.write(
            ".config/guard/profiles/audited.toml",
            "version = 1\nextends = [\"default\"]\n[env]\npass = [\"MY_*\"]\n",
        );
        env.own();
        let log = env.home.join("session.jsonl");
        let out = common::Outcome::from(
            env.guard(&[
                "run",
                "-p",
                "audited",
                "--log",
                log.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                "cat .env; echo MY_API_TOKEN=$MY_API_TOKEN; \
                 echo code=$(curl -s -o /dev/null -w '%{http_connect}' https://evil.example.test/)",
            ])
            .env("MY_API_TOKEN", &secret_value)
            .env("NO_COLOR", "1")
            .output()
            .unwrap(),
        );
        out.expect_code(0);
        // The attack failed for the stated reasons.
        assert_eq!(out.field("code").as_deref(), Some("403"), "{}", out.all());
        assert_eq!(
            out.field("MY_API_TOKEN").as_deref(),
            Some(""),
            "{}",
            out.all()
        );
        out.assert_no_canary(&secret_value);
        out.assert_no_canary(&file_secret);

        let ev = events(&log);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !text.contains(&secret_value) && !text.contains(&file_secret),
            "a secret reached the log"
        );
        assert!(has(&ev, |e| e["kind"] == "session"
            && e["event"] == "start"
            && e["profile"] == "audited"));
        assert!(has(&ev, |e| e["kind"] == "session"
            && e["event"] == "end"
            && e["exit"] == 0));
        let hidden: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "fs").collect();
        assert_eq!(hidden.len(), 1, "{hidden:?}");
        assert_eq!(hidden[0]["action"], "hidden");
        assert!(hidden[0]["path"].as_str().unwrap().ends_with("/.env"));
        let secret_env: Vec<&Value> = ev
            .iter()
            .filter(|e| e["kind"] == "env" && e["reason"] == "secret")
            .collect();
        assert_eq!(secret_env.len(), 1, "{secret_env:?}");
        assert_eq!(secret_env[0]["name"], "MY_API_TOKEN");
        let refused: Vec<&Value> = ev
            .iter()
            .filter(|e| e["kind"] == "net" && e["decision"] == "refuse")
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["host"], "evil.example.test");
        assert_eq!(refused[0]["port"], 443);
        for field in ["reason", "bytes_sent", "bytes_received", "duration_ms"] {
            assert!(
                refused[0].get(field).is_some(),
                "net event lacks {field}: {}",
                refused[0]
            );
        }

        // The summary: the refused host and exactly how to allow it; no color.
        assert!(
            out.stderr.contains("guard: session summary"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("evil.example.test:443"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("--allow-host evil.example.test"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("allow = [\"evil.example.test\"]"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("MY_API_TOKEN"), "{}", out.stderr);
        assert!(
            !out.stderr.contains('\u{1b}'),
            "escape codes with NO_COLOR:\n{}",
            out.stderr
        );

        // -q: no summary.
        let quiet = env.run(&[
            "run",
            "-q",
            "--",
            "sh",
            "-c",
            "curl -s https://evil.example.test/ >/dev/null; true",
        ]);
        quiet.expect_code(0);
        assert!(
            !quiet.stderr.contains("session summary"),
            "{}",
            quiet.stderr
        );
    }
}

#[test]
fn explain_suggest_and_guard_log_read_the_last_session() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let run = env.sh("curl -s -o /dev/null https://suggest-me.example.test/; curl -s -o /dev/null http://other.example.test:8080/; true");
        run.expect_code(0);
        let suggest = env.run(&["explain", "--suggest"]);
        suggest.expect_code(0);
        assert!(
            suggest.stdout.contains("\"suggest-me.example.test\","),
            "{}",
            suggest.stdout
        );
        assert!(
            suggest.stdout.contains("\"other.example.test:8080\","),
            "{}",
            suggest.stdout
        );
        // Nothing else is suggested.
        let suggested: Vec<&str> = suggest
            .stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('"'))
            .collect();
        assert_eq!(suggested.len(), 2, "{}", suggest.stdout);

        let log = env.run(&["log", "--last", "--kind", "net"]);
        log.expect_code(0);
        assert!(
            log.stdout.contains("suggest-me.example.test"),
            "{}",
            log.stdout
        );
        assert!(!log.stdout.contains(" env "), "{}", log.stdout);
        let json = env.run(&["log", "--json"]);
        json.expect_code(0);
        for line in json.stdout.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}

#[test]
fn endless_refusals_do_not_grow_the_supervisor_and_are_all_logged() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let log = env.home.join("flood.jsonl");
        // 2,100 refused CONNECTs, more than guard keeps in memory (2,000).
        let flood = py("import socket\n\
             n = 0\n\
             for i in range(2100):\n\
             \x20   s = socket.create_connection((\"127.0.0.1\", 3128))\n\
             \x20   s.sendall(b\"CONNECT nope%d.example:443 HTTP/1.1\\r\\nHost: nope%d.example:443\\r\\n\\r\\n\" % (i, i))\n\
             \x20   n += s.recv(100).startswith(b\"HTTP/1.1 403\")\n\
             \x20   s.close()\n\
             print(\"refused=%d\" % n)\n");
        let r = env.run(&[
            "run",
            "--log",
            log.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &flood,
        ]);
        r.expect_code(0);
        assert_eq!(r.field("refused").as_deref(), Some("2100"), "{}", r.all());
        assert!(
            r.stderr
                .contains("100 more refused connection(s) are in the log only"),
            "{}",
            r.stderr
        );
        let logged = std::fs::read_to_string(&log)
            .expect("read log")
            .lines()
            .filter(|l| l.contains("\"decision\":\"refuse\""))
            .count();
        assert_eq!(logged, 2100);
    }
}

/// Two sessions that start in the same second: `guard log` shows the one
/// made last, whatever their pids (10002 sorts before 9998 as text, and
/// pids wrap). It showed the one with the greater pid as text.
#[test]
fn guard_log_reads_the_session_made_last_within_one_second() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        env.sh("true").expect_code(0);
        let dir = env.home.path.join(".local/state/guard/sessions");
        assert!(dir.is_dir(), "no sessions dir at {}", dir.display());
        for (pid, mark) in [("9998", "first-made"), ("10002", "made-last")] {
            std::fs::write(
                dir.join(format!("20991231-235959-{pid}.jsonl")),
                format!(
                    "{{\"kind\":\"session\",\"event\":\"start\",\"command\":\"{mark}\",\"ts\":\"2099-12-31T23:59:59.000Z\"}}\n"
                ),
            )
            .unwrap();
            // Birth times a clear step apart.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        env.own();
        let log = env.run(&["log", "--json"]);
        log.expect_code(0);
        assert!(
            log.stdout.contains("made-last") && !log.stdout.contains("first-made"),
            "{}",
            log.all()
        );
    }
}
