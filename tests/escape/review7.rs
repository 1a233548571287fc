//! Review 7: secrets in realistic places the content rules once missed, and
//! the DNS server under hostile input (see each test's comment for the hole
//! it once was).
//!
//! Secret values are assembled at run time so this file holds nothing the
//! scanner would flag.

use crate::support::{Expect, each_mode};

/// Python: `show(label, path)` prints `label=empty`, `label=redacted` (a
/// guard-redacted marker and no canary), `label=leaked` (the canary, as is
/// or inside any base64 run of the file) or `label=other-N`; never content.
const SHOW: &str = r#"
import base64, re
def show(label, path):
    try:
        data = open(path, "rb").read()
    except OSError as e:
        out(label, "errno-%d" % e.errno)
        return
    decoded = b""
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}={0,2}", data):
        try:
            decoded += base64.b64decode(run + b"=" * (-len(run) % 4))
        except ValueError:
            pass
    if not data:
        out(label, "empty")
    elif b"CANARY" in data or b"CANARY" in decoded:
        out(label, "leaked")
    elif b"guard-redacted:" in data:
        out(label, "redacted")
    else:
        out(label, "other-%d" % len(data))
"#;

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i > c.len() {
                '=' // padding
            } else {
                char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
            });
        }
    }
    out
}

/// Hole: a bearer token saved with its header as JSON (a browser's .har
/// export, an API client's collection) sits next to `"value"`, not next to
/// a secret-sounding name, and was neither a known token format: the file
/// was served as is, and the token with it. Now the `bearer-token` rule
/// finds it and the file is redacted.
#[test]
fn bearer_token_in_a_har_file_is_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("har");
        let token = format!("{c}Zq8vL2mN4pQ6rS8tU0vW1xY3");
        case.write(
            "captures/session.har",
            &format!(
                r#"{{"log": {{"version": "1.2", "entries": [{{
  "request": {{
    "method": "POST",
    "url": "https://api.example.com/graphql",
    "httpVersion": "HTTP/1.1",
    "headers": [
      {{"name": "Content-Type", "value": "application/json"}},
      {{"name": "Authorization", "value": "Bearer {token}"}},
      {{"name": "Accept", "value": "application/json"}}
    ],
    "postData": {{"mimeType": "application/json", "text": "{{}}"}}
  }},
  "response": {{"status": 200, "statusText": "OK"}}
}}]}}}}
"#
            ),
        );
        case.env.own();
        case.python(&format!(
            "{SHOW}\nshow(\"har\", \"captures/session.har\")\n"
        ))
        .fields(&[("har", "redacted")]);
    });
}

/// Hole: a private key base64-encoded as kubeconfig's `client-key-data`
/// (or a Kubernetes TLS secret's `tls.key`, or wrapped over the lines of a
/// YAML block scalar) matched no rule: the PEM header is only there once
/// decoded. Both files were served as is; now they are hidden.
#[test]
fn base64_private_keys_in_kubeconfig_and_helm_values_are_hidden() {
    each_mode(|mut case| {
        let c = case.add_canary("kubekey");
        let pem = format!(
            "{}RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA{c}q8vL2mN4pQ6rS8tU0vW1xY3\nAoGBAK7{c}\n{}RSA PRIVATE KEY-----\n",
            "-----BEGIN ", "-----END "
        );
        let key = b64(pem.as_bytes());
        let cert = b64(b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
        case.write(
            "deploy/kubeconfig.yaml",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://k8s.example.com\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: admin\n  name: prod\ncurrent-context: prod\nusers:\n- name: admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n"
            ),
        );
        let wrapped: Vec<String> = key
            .as_bytes()
            .chunks(64)
            .map(|l| format!("    {}", String::from_utf8_lossy(l)))
            .collect();
        case.write(
            "charts/app/values.yaml",
            &format!(
                "replicaCount: 2\nimage:\n  repository: nginx\n  tag: stable\ntls:\n  enabled: true\n  key: |\n{}\n",
                wrapped.join("\n")
            ),
        );
        case.env.own();
        case.python(&format!(
            "{SHOW}\nshow(\"kubeconfig\", \"deploy/kubeconfig.yaml\")\nshow(\"values\", \"charts/app/values.yaml\")\n"
        ))
        .fields(&[("kubeconfig", "empty"), ("values", "empty")]);
    });
}

/// Hole: a cookie jar (`curl -c`, a browser's cookies.txt export for
/// yt-dlp) holds logged-in session cookies, which are as good as a
/// password and have no recognizable format: the file was served as is.
/// Now each cookie line is a finding and the file is hidden.
#[test]
fn session_cookies_in_a_cookie_jar_are_hidden() {
    each_mode(|mut case| {
        let c = case.add_canary("cookie");
        case.write(
            "scraper/cookies.txt",
            &format!(
                "# Netscape HTTP Cookie File\n# This file was generated by libcurl! Edit at your own risk.\n\n#HttpOnly_.example.com\tTRUE\t/\tTRUE\t1798000000\tsession_id\t{c}\n.example.com\tTRUE\t/\tFALSE\t1798000000\tlang\ten\n"
            ),
        );
        case.env.own();
        case.python(&format!("{SHOW}\nshow(\"jar\", \"scraper/cookies.txt\")\n"))
            .fields(&[("jar", "empty")]);
    });
}
