//! Review 13: a second round on the secrets scanner (review 7 was the
//! first): credentials in real files that the rules missed, cut short, or
//! could not read because of how the file was encoded. Each test names the
//! hole it once was.
//!
//! Secret values are assembled at run time so this file holds nothing the
//! scanner would flag.

use crate::support::{
    Case, Expect, FILL, SHOW_DECODING as SHOW, b64, each_mode, each_mode_alone, flagged,
};
use std::path::Path;

#[track_caller]
fn expect_flagged(case: &Case, rel: &str, action: &str, rule: &str) {
    let (got, rules) = flagged(case, rel);
    assert_eq!(got, action, "{rel}: {rules:?}");
    assert!(rules.iter().any(|r| r == rule), "{rel}: {rules:?}");
}

/// Run `show` on each (label, path) in the sandbox and expect each verdict.
fn expect_seen(case: &Case, files: &[(&str, &str, &str)]) {
    let calls: String = files
        .iter()
        .map(|(label, path, _)| format!("show({label:?}, {path:?})\n"))
        .collect();
    let expected: Vec<(&str, &str)> = files.iter().map(|(l, _, v)| (*l, *v)).collect();
    case.python(&format!("{SHOW}\n{calls}")).fields(&expected);
}

/// Hole: `pass` on its own names a password in many files (`DB_PASS`,
/// `SMTP_PASS`, `smtpPass`, rclone's `pass =`), but only `passw…` and
/// `passphrase` counted as secret-sounding: `export SMTP_PASS=<value>` in a
/// shell script was served as is.
#[test]
fn a_password_named_pass_is_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("pass");
        case.write(
            "deploy/notify.sh",
            &format!(
                "#!/bin/sh\nset -eu\nexport SMTP_HOST=mail.example.com\nexport SMTP_USER=alerts\nexport SMTP_PASS={c}{FILL}\nsend_mail \"$1\"\necho sent\n"
            ),
        );
        case.write(
            "web/mailer.js",
            &format!(
                "const nodemailer = require('nodemailer');\nmodule.exports = nodemailer.createTransport({{\n  host: 'mail.example.com',\n  auth: {{ user: 'alerts', smtpPass: '{c}{FILL}' }},\n}});\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("sh", "deploy/notify.sh", "redacted"),
                ("js", "web/mailer.js", "redacted"),
            ],
        );
        expect_flagged(&case, "deploy/notify.sh", "redact", "secret-assignment");
        expect_flagged(&case, "web/mailer.js", "redact", "secret-assignment");
    });
}

/// Hole: an assigned value stopped at the first character that ends an
/// unquoted value (`&`, `(`, `<`, `,`, a space, an escaped quote), so a
/// generated password holding one was redacted only up to it and the rest
/// stayed readable, or, when it came first (`"#x&..."`), not at all. Quoted values now run to their closing quote. Code in
/// a JSON string (a notebook cell: `api_key=\"...\"`) and a value written
/// with JSON `\u` escapes were not matched at all.
#[test]
fn quoted_values_are_redacted_to_their_closing_quote() {
    each_mode(|mut case| {
        let c = case.add_canary("quoted");
        case.write(
            "app/settings.py",
            &format!(
                "import os\n\nDEBUG = False\nDB_PASSWORD = \"{FILL}&{c}\"\nREDIS_PASSWORD = '{FILL}(x)<{c}'\nSMTP_PASSWORD = \"#x&{c}{FILL}\"\nALLOWED_HOSTS = ['*']\nTIME_ZONE = 'UTC'\nUSE_TZ = True\nSTATIC_URL = '/static/'\n"
            ),
        );
        case.write(
            "app/config.json",
            &format!(
                "{{\n  \"name\": \"app\",\n  \"port\": 8080,\n  \"db_password\": \"{FILL}\\\"{c}\",\n  \"workers\": 4\n}}\n"
            ),
        );
        let cell = format!("client = Client(api_key=\\\"{c}{FILL}\\\")\\n");
        case.write(
            "notebooks/explore.ipynb",
            &format!(
                "{{\n \"cells\": [\n  {{\n   \"cell_type\": \"code\",\n   \"execution_count\": 1,\n   \"metadata\": {{}},\n   \"outputs\": [],\n   \"source\": [\n    \"import os\\n\",\n    \"{cell}\",\n    \"client.list()\"\n   ]\n  }}\n ],\n \"metadata\": {{}},\n \"nbformat\": 4,\n \"nbformat_minor\": 5\n}}\n"
            ),
        );
        let escaped: String = format!("{c}{FILL}")
            .chars()
            .map(|ch| format!("\\u{:04x}", ch as u32))
            .collect();
        case.write(
            "app/client.json",
            &format!(
                "{{\n  \"name\": \"client\",\n  \"retries\": 3,\n  \"api_token\": \"{escaped}\",\n  \"timeout\": 30\n}}\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("py", "app/settings.py", "redacted"),
                ("json", "app/config.json", "redacted"),
                ("ipynb", "notebooks/explore.ipynb", "redacted"),
                ("escaped", "app/client.json", "redacted"),
            ],
        );
        for rel in [
            "app/settings.py",
            "app/config.json",
            "notebooks/explore.ipynb",
            "app/client.json",
        ] {
            expect_flagged(&case, rel, "redact", "secret-assignment");
        }
    });
}

/// Hole: a YAML block scalar (`key: |` or `key: >-`, the value on the
/// indented lines below, as Helm values and CI files write long tokens)
/// put the value out of the assignment's line: it was served as is.
#[test]
fn yaml_block_scalar_values_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("block");
        let (head, tail) = FILL.split_at(12);
        case.write(
            "charts/api/values.yaml",
            &format!(
                "replicaCount: 2\nimage:\n  repository: api\n  tag: stable\nauth:\n  apiToken: |\n    {c}{FILL}\n  webhookSecret: >-\n    {head}\n    {tail}{c}\nservice:\n  port: 80\n"
            ),
        );
        case.env.own();
        expect_seen(&case, &[("values", "charts/api/values.yaml", "redacted")]);
        expect_flagged(
            &case,
            "charts/api/values.yaml",
            "redact",
            "secret-assignment",
        );
    });
}

/// Hole: text with a NUL byte in its first 8 KiB was scanned as binary
/// data, where only known token formats count, so `api_token=<value>` was
/// served; UTF-16 text (what Windows tools write; any program decodes it)
/// was not scanned at all. Both are now scanned as text and hidden.
#[test]
fn text_with_a_nul_byte_or_in_utf16_is_scanned() {
    each_mode(|mut case| {
        let c = case.add_canary("enc");
        case.write(
            "conf/agent.cfg",
            &format!("# agent\0\nname=collector\napi_token={c}{FILL}\ninterval=30\n"),
        );
        let text = format!("name: collector\r\nregion: eu-west-1\r\napi_token: {c}{FILL}\r\n");
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(case.project().join("conf/win.yml"), utf16).expect("write UTF-16");
        let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        std::fs::write(case.project().join("conf/bare.yml"), bare).expect("write UTF-16LE");
        case.env.own();
        expect_seen(
            &case,
            &[
                ("nul", "conf/agent.cfg", "empty"),
                ("utf16", "conf/win.yml", "empty"),
                ("bare", "conf/bare.yml", "empty"),
            ],
        );
        for rel in ["conf/agent.cfg", "conf/win.yml", "conf/bare.yml"] {
            expect_flagged(&case, rel, "hide", "secret-assignment");
        }
    });
}

/// Hole: files that exist to hold credentials, in forms the content rules
/// only partly know, were served or only partly redacted: an Ansible Vault
/// password file (one bare line), a KeePass database (binary, so never
/// read), Composer's auth.json (a token under the
/// host name: `"github.com": "<token>"`), wp-config.php (`define('DB_PASSWORD',
/// ...)` and salts), rclone.conf (its obscured `pass`). Now the first is
/// hidden by name, the others as soon as any secret is found in them.
#[test]
fn credential_files_are_hidden_whole() {
    each_mode(|mut case| {
        let c = case.add_canary("cred");
        case.write("ansible/.vault_pass", &format!("{c}{FILL}\n"));
        // A KeePass database: binary, so only its name tells.
        let mut kdbx = vec![0x03, 0xd9, 0xa2, 0x9a, 0x67, 0xfb, 0x4b, 0xb5, 0, 0, 4, 0];
        kdbx.extend_from_slice(format!("{c}\0\x01\x02").as_bytes());
        std::fs::create_dir_all(case.project().join("ops")).expect("mkdir ops");
        std::fs::write(case.project().join("ops/team.kdbx"), kdbx).expect("write kdbx");
        case.write(
            "auth.json",
            &format!(
                "{{\n  \"http-basic\": {{\n    \"repo.example.com\": {{\"username\": \"deploy\", \"password\": \"{FILL}\"}}\n  }},\n  \"github-oauth\": {{\"github.com\": \"{c}\"}}\n}}\n"
            ),
        );
        case.write(
            "wordpress/wp-config.php",
            &format!(
                "<?php\ndefine( 'DB_NAME', 'wordpress' );\ndefine( 'DB_USER', 'wp' );\ndefine( 'DB_PASSWORD', '{FILL}{c}' );\ndefine( 'DB_HOST', 'localhost' );\ndefine( 'AUTH_KEY', '{FILL} |x{c}' );\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n"
            ),
        );
        case.write(
            "backup/rclone.conf",
            &format!(
                "[remote]\ntype = sftp\nhost = backup.example.com\nuser = backup\npass = {c}{FILL}\nshell_type = unix\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("vault", "ansible/.vault_pass", "empty"),
                ("kdbx", "ops/team.kdbx", "empty"),
                ("composer", "auth.json", "empty"),
                ("wp", "wordpress/wp-config.php", "empty"),
                ("rclone", "backup/rclone.conf", "empty"),
            ],
        );
        expect_flagged(
            &case,
            "ansible/.vault_pass",
            "hide",
            "ansible-vault-password",
        );
        expect_flagged(&case, "ops/team.kdbx", "hide", "password-database");
        expect_flagged(&case, "auth.json", "hide", "secret-assignment");
        expect_flagged(
            &case,
            "wordpress/wp-config.php",
            "hide",
            "php-define-secret",
        );
        expect_flagged(&case, "backup/rclone.conf", "hide", "secret-assignment");
    });
}

/// Hole: a PuTTY key saved without its `.ppk` extension, and the registry
/// credentials of a Kubernetes pull secret (`.dockerconfigjson`: base64 of
/// Docker's config.json, under a key no rule reads as a secret name),
/// matched no rule and were served as is.
#[test]
fn putty_keys_and_registry_pull_secrets_are_not_served() {
    each_mode(|mut case| {
        let c = case.add_canary("keyfile");
        case.write(
            "keys/bastion",
            &format!(
                "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: bastion\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAI{FILL}\n{FILL}\nPrivate-Lines: 1\nAAAAI{c}{FILL}\nPrivate-MAC: {}\n",
                "0f".repeat(32)
            ),
        );
        let auth = b64(format!("deploy:{c}").as_bytes());
        let config = b64(
            format!(
                "{{\"auths\":{{\"registry.example.com\":{{\"username\":\"deploy\",\"password\":\"{c}\",\"auth\":\"{auth}\"}}}}}}"
            )
            .as_bytes(),
        );
        case.write(
            "k8s/pull-secret.yaml",
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry\n  namespace: prod\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {config}\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("ppk", "keys/bastion", "empty"),
                ("k8s", "k8s/pull-secret.yaml", "redacted"),
            ],
        );
        expect_flagged(&case, "keys/bastion", "hide", "putty-private-key");
        expect_flagged(
            &case,
            "k8s/pull-secret.yaml",
            "redact",
            "docker-config-base64",
        );
    });
}

/// Hole: a password on a command line (`curl -u user:PASSWORD` in a README,
/// `--user`, `mysql -pPASSWORD`, `--password PASSWORD` in a script) has no
/// secret-sounding name next to it: it was served as is.
#[test]
fn passwords_on_command_lines_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("cli");
        case.write(
            "README.md",
            &format!(
                "# Service\n\nCheck that it is up:\n\n```\ncurl -u admin:{c}{FILL} https://api.example.com/health\n```\n\nThen open the dashboard.\n"
            ),
        );
        case.write(
            "scripts/backup.sh",
            &format!(
                "#!/bin/sh\nset -eu\ncd /srv/backup\nmysqldump -h db -u backup -p{c}{FILL} app > app.sql\ncurl --user 'backup:{FILL}{c}' -T app.sql https://files.example.com/\nrestic backup --password {c}{FILL} app.sql\nrm app.sql\necho done\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("readme", "README.md", "redacted"),
                ("script", "scripts/backup.sh", "redacted"),
            ],
        );
        expect_flagged(&case, "README.md", "redact", "cli-password");
        expect_flagged(&case, "scripts/backup.sh", "redact", "cli-password");
    });
}

/// Hole: netrc syntax (`machine HOST login USER password PASSWORD`, on
/// one line or several) has no separator between name and value, so files
/// in that format under other names than `.netrc` (apt's auth.conf, a CI
/// template, a setup guide) were served as is.
#[test]
fn netrc_style_passwords_are_found() {
    each_mode(|mut case| {
        let c = case.add_canary("netrc");
        case.write(
            "ci/auth.conf",
            &format!(
                "machine pkgs.example.com
login deploy
password {c}{FILL}
"
            ),
        );
        case.write(
            "docs/setup.md",
            &format!(
                "# Setup

Add the private index to `~/.netrc`:

```
machine pkgs.example.com login deploy password {FILL}{c}
```

Then run `make install`.
"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("conf", "ci/auth.conf", "redacted"),
                ("md", "docs/setup.md", "redacted"),
            ],
        );
        expect_flagged(&case, "ci/auth.conf", "redact", "netrc-password");
        expect_flagged(&case, "docs/setup.md", "redact", "netrc-password");
    });
}

/// Hole: world-readable credential files in /etc (an apt source's login in
/// `/etc/apt/auth.conf.d`; also k3s kubeconfigs written with
/// `--write-kubeconfig-mode 644`, OpenVPN configs with inline keys) are
/// readable by any user, so neither the sandbox's uid nor guard's handling
/// of root-only files kept them out: served as is in every mode. Now the
/// default profile hides them. (Only a file in a directory that stays is
/// planted: creating or removing a hidden path itself would race with the
/// other tests' sandboxes, which hide it too.)
#[test]
fn world_readable_credentials_in_etc_are_hidden() {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        crate::common::is_root(),
        "this test plants files in /etc and must run as root (as CI does)"
    );
    assert!(
        Path::new("/etc/apt/auth.conf.d").is_dir(),
        "this host has no /etc/apt/auth.conf.d to plant a login in"
    );
    each_mode_alone(|mut case| {
        let c = case.add_canary("etc");
        let n = std::process::id();
        let apt = EtcFile(format!("/etc/apt/auth.conf.d/guard-review13-{n}.conf").into());
        std::fs::write(
            &apt.0,
            format!("machine pkgs.example.com\nlogin deploy\npassword {c}{FILL}\n"),
        )
        .expect("write the /etc fixture");
        std::fs::set_permissions(&apt.0, std::fs::Permissions::from_mode(0o644))
            .expect("chmod the /etc fixture");
        // Hidden as an empty directory (so the file is absent) or an empty
        // file: never the content.
        let code = format!(
            r#"{SHOW}
import os
path = {path:?}
if os.path.exists(path):
    show("apt", path)
else:
    out("apt", "gone")
"#,
            path = apt.0.display().to_string()
        );
        let verdict = case.python(&code).get("apt");
        assert!(
            matches!(verdict.as_str(), "gone" | "empty"),
            "apt={verdict}"
        );
    });
}

/// A file planted in the host's /etc, removed when dropped.
struct EtcFile(std::path::PathBuf);

impl Drop for EtcFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
