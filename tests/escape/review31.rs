//! Review 31: credentials as developers' tools keep them, still readable
//! inside under every profile before this review: an MCP server's key in
//! its `args` (one element a line, as agents write their settings), a
//! token as a URL's whole userinfo, password options of their own
//! (`sshpass -p`, `redis-cli -a`), an IDE run configuration's `<env
//! name=… value=…/>`, git's `smtppass`, an OpenVPN file with its password
//! inline, and secret files under names the path rules did not know
//! (`.env-prod`, `kaggle.json`). Each failed before the fix that came with
//! it; files are checked through the sandbox's view and `guard scan --json`.
//!
//! Secret values are assembled at run time so this file holds nothing the
//! scanner would flag.

use crate::support::{FILL, each_mode, expect_flagged, expect_seen};

#[test]
fn credentials_where_tools_keep_them_are_redacted_or_hidden() {
    each_mode(|mut case| {
        let mcp = case.add_canary("mcp");
        let url = case.add_canary("url");
        let ssh = case.add_canary("sshpass");
        let xml = case.add_canary("xml");
        let smtp = case.add_canary("smtp");
        let vpn = case.add_canary("vpn");
        let prod = case.add_canary("prod");
        let kaggle = case.add_canary("kaggle");
        case.write(
            ".mcp.json",
            &format!(
                "{{\n  \"mcpServers\": {{\n    \"context7\": {{\n      \"command\": \"npx\",\n      \"args\": [\n        \"-y\",\n        \"@upstash/context7-mcp\",\n        \"--api-key\",\n        \"{mcp}{FILL}\"\n      ]\n    }}\n  }}\n}}\n"
            ),
        );
        case.write(
            "requirements.txt",
            &format!(
                "--extra-index-url https://{url}{FILL}@pypi.fury.io/acme/\nrequests==2.32.3\nflask==3.0.3\ngunicorn==22.0.0\nacme-billing==1.4.2\n"
            ),
        );
        case.write(
            "scripts/db.sh",
            &format!(
                "#!/bin/sh\nsshpass -p {ssh}{FILL} ssh deploy@db.internal pg_dump app > app.sql\necho dumped\n"
            ),
        );
        case.write(
            ".run/Server.run.xml",
            &format!(
                "<component name=\"ProjectRunConfigurationManager\">\n  <envs>\n    <env name=\"DB_PASSWORD\" value=\"{xml}{FILL}\" />\n    <env name=\"PORT\" value=\"8080\" />\n  </envs>\n</component>\n"
            ),
        );
        case.write(
            "tools/gitconfig",
            &format!("[sendemail]\n\tsmtpserver = smtp.acme.dev\n\tsmtppass = {smtp}{FILL}\n"),
        );
        case.write(
            "vpn/office.ovpn",
            &format!(
                "client\nremote vpn.acme.dev 1194\n{open}\nalice\n{vpn}{FILL}\n{close}\n",
                open = ["<auth-", "user-pass>"].concat(),
                close = ["</auth-", "user-pass>"].concat(),
            ),
        );
        case.write(".env-prod", &format!("STRIPE_SK={prod}{FILL}\n"));
        case.write(
            "notebooks/kaggle.json",
            &format!("{{\"username\":\"alice\",\"key\":\"{kaggle}\"}}\n"),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("mcp", ".mcp.json", "redacted"),
                ("url", "requirements.txt", "redacted"),
                ("ssh", "scripts/db.sh", "redacted"),
                ("xml", ".run/Server.run.xml", "redacted"),
                ("smtp", "tools/gitconfig", "redacted"),
                ("vpn", "vpn/office.ovpn", "empty"),
                ("prod", ".env-prod", "empty"),
                ("kaggle", "notebooks/kaggle.json", "empty"),
            ],
            &[
                ("mcp_kept", ".mcp.json", "\"@upstash/context7-mcp\","),
                ("url_kept", "requirements.txt", "requests==2.32.3"),
                ("ssh_kept", "scripts/db.sh", "echo dumped"),
                (
                    "xml_kept",
                    ".run/Server.run.xml",
                    "<env name=\"PORT\" value=\"8080\" />",
                ),
                ("smtp_kept", "tools/gitconfig", "smtpserver = smtp.acme.dev"),
            ],
        );
        for (rel, rule) in [
            (".mcp.json", "option-secret"),
            ("requirements.txt", "uri-token"),
            ("scripts/db.sh", "cli-password"),
            (".run/Server.run.xml", "xml-secret-setting"),
            ("tools/gitconfig", "secret-assignment"),
        ] {
            expect_flagged(&case, rel, "redact", rule);
        }
        expect_flagged(&case, "vpn/office.ovpn", "hide", "openvpn-credentials");
    });
}
