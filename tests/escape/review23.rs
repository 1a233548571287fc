//! Review 23: a fourth round on the secrets scanner (reviews 7, 13 and 22
//! were the first three): credentials as real projects hold them that the
//! rules missed (camelCase names ending in `Key`, a Terraform variable's
//! default, Kubernetes Secrets as JSON and in a `List`), and values the
//! rules took for secrets that are not (a comparison, a reference to a
//! Secret). Each test names the hole it was; files are checked through the
//! sandbox's view and `guard scan --json`.
//!
//! Secret values are assembled at run time so this file holds nothing the
//! scanner would flag.

use crate::support::{
    Expect, FILL, each_mode, expect_flagged, expect_not_flagged, expect_seen, flagged,
};

/// Hole: a camelCase or PascalCase name ending in `Key` (`stripeKey` in
/// JavaScript, `encryptionKey` in Java, `SigningKey` in a .NET JSON
/// setting) is secret-sounding, but only `_key` and `-key` followed by a
/// separator made a line a candidate for the assignment rule: the value
/// was served as is. (`awsSecretKey` and `apiKey` were caught, by their
/// `secret` and `apikey`.)
#[test]
fn camel_case_key_names_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("camel");
        case.write(
            "web/src/billing.js",
            &format!(
                "import Stripe from 'stripe';\n\nconst stripeKey = \"{c}{FILL}\";\nconst cacheKey = 'billing:v2';\nexport const stripe = new Stripe(stripeKey);\n"
            ),
        );
        case.write(
            "src/main/java/com/acme/Crypto.java",
            &format!(
                "package com.acme;\n\npublic final class Crypto {{\n    private static final String encryptionKey = \"{FILL}{c}\";\n    private static final int ROUNDS = 12;\n}}\n"
            ),
        );
        case.write(
            "src/Api/appsettings.Production.json",
            &format!(
                "{{\n  \"Jwt\": {{\n    \"Issuer\": \"api.example.com\",\n    \"SigningKey\": \"{c}{FILL}\"\n  }}\n}}\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("js", "web/src/billing.js", "redacted"),
                ("java", "src/main/java/com/acme/Crypto.java", "redacted"),
                ("json", "src/Api/appsettings.Production.json", "redacted"),
            ],
            &[
                (
                    "js_kept",
                    "web/src/billing.js",
                    "const cacheKey = 'billing:v2';",
                ),
                (
                    "java_kept",
                    "src/main/java/com/acme/Crypto.java",
                    "private static final int ROUNDS = 12;",
                ),
                (
                    "json_kept",
                    "src/Api/appsettings.Production.json",
                    "\"Issuer\": \"api.example.com\"",
                ),
            ],
        );
        for rel in [
            "web/src/billing.js",
            "src/main/java/com/acme/Crypto.java",
            "src/Api/appsettings.Production.json",
        ] {
            expect_flagged(&case, rel, "redact", "secret-assignment");
        }
    });
}

/// False positive: a comparison with a literal (`if token == "…"`, a test's
/// `assert api_key == "…"`) was read as an assignment, and a Kubernetes
/// `secretKeyRef` (a reference to a Secret: the name of the Secret and of
/// its key) as a secret: the agent saw such files redacted (the test file
/// hidden, being mostly "secrets"). camelCase names of other things kept
/// in code (`cacheKey`, `publicKey`) stay as they are too.
#[test]
fn comparisons_and_secret_references_are_served_as_is() {
    each_mode(|case| {
        let check = format!(
            "import hmac\n\n\ndef test_issued_token(client):\n    token = client.issue()\n    assert token == \"{FILL}\"\n\n\ndef check(token):\n    if token == \"{FILL}9\":\n        return True\n    return hmac.compare_digest(token, \"x\")\n"
        );
        case.write("tests/test_tokens.py", &check);
        let deployment = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          env:\n            - name: STRIPE_KEY\n              valueFrom:\n                secretKeyRef: {FILL}\n            - name: DB_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: db-{FILL}\n                  key: password\n"
        );
        case.write("k8s/deployment.yaml", &deployment);
        let helm = format!("# helm --set\nsecretKeyRef.key: {FILL}\nsecretKeyRef.name: api\n");
        case.write("k8s/values-prod.yaml", &helm);
        let ui = format!(
            "const publicKey = \"{FILL}\";\nconst cacheKey = \"{FILL}\";\nexport default {{ publicKey, cacheKey }};\n"
        );
        case.write("web/src/keys.js", &ui);
        case.env.own();
        let files = [
            "tests/test_tokens.py",
            "k8s/deployment.yaml",
            "k8s/values-prod.yaml",
            "web/src/keys.js",
        ];
        let mut code = String::from(
            "def same(label, path, text):\n    out(label, 'same' if open(path).read() == text else 'changed')\n",
        );
        let texts = [&check, &deployment, &helm, &ui];
        for (i, (rel, text)) in files.iter().zip(texts).enumerate() {
            code.push_str(&format!("same('f{i}', {rel:?}, {text:?})\n"));
        }
        case.python(&code).fields(&[
            ("f0", "same"),
            ("f1", "same"),
            ("f2", "same"),
            ("f3", "same"),
        ]);
        expect_not_flagged(&case, &files);
    });
}

/// Hole: a Kubernetes Secret was found only as a YAML document starting
/// `kind: Secret`: kept as JSON (`kubectl get secret -o json > …`, one
/// line or pretty-printed) or as an item of a `kind: List` (`kubectl get
/// secrets -o yaml`), its values were served as is.
#[test]
fn kubernetes_secrets_as_json_and_list_items_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("kubejson");
        let data = crate::support::b64(format!("{c}{FILL}").as_bytes());
        case.write(
            "k8s/backup/payments-secret.json",
            &format!(
                "{{\n    \"apiVersion\": \"v1\",\n    \"data\": {{\n        \"STRIPE_KEY\": \"{data}\"\n    }},\n    \"kind\": \"Secret\",\n    \"metadata\": {{\n        \"name\": \"payments\",\n        \"namespace\": \"prod\"\n    }},\n    \"type\": \"Opaque\"\n}}\n"
            ),
        );
        case.write(
            "k8s/backup/oneline.json",
            &format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{{\"name\":\"api\"}},\"stringData\":{{\"SENDGRID\":\"{FILL}{c}\"}},\"type\":\"Opaque\"}}\n"
            ),
        );
        case.write(
            "k8s/backup/all-secrets.yaml",
            &format!(
                "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: settings\n  data:\n    region: eu-west-1\n- apiVersion: v1\n  data:\n    SENDGRID: {data}\n  kind: Secret\n  metadata:\n    name: mail\n    namespace: prod\n  type: Opaque\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("json", "k8s/backup/payments-secret.json", "redacted"),
                ("oneline", "k8s/backup/oneline.json", "empty"),
                ("list", "k8s/backup/all-secrets.yaml", "redacted"),
            ],
            &[
                (
                    "json_kept",
                    "k8s/backup/payments-secret.json",
                    "\"namespace\": \"prod\"",
                ),
                (
                    "list_kept",
                    "k8s/backup/all-secrets.yaml",
                    "    region: eu-west-1\n",
                ),
            ],
        );
        expect_flagged(
            &case,
            "k8s/backup/payments-secret.json",
            "redact",
            "kubernetes-secret",
        );
        expect_flagged(
            &case,
            "k8s/backup/oneline.json",
            "hide",
            "kubernetes-secret",
        );
        expect_flagged(
            &case,
            "k8s/backup/all-secrets.yaml",
            "redact",
            "kubernetes-secret",
        );
    });
}

/// Hole: a default value sits on another line than its name, inside the
/// block the name opens: a Terraform `variable "db_password" {` with
/// `default = "…"` below it, a CloudFormation parameter's `Default:`, a
/// GitHub Actions input's `default:`. No rule saw name and value together:
/// each was served as is. (A Terraform resource's `password = "…"` was
/// caught, as an assignment; checked here too.)
#[test]
fn defaults_of_secret_variables_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("default");
        case.write(
            "infra/variables.tf",
            &format!(
                "variable \"region\" {{\n  type    = string\n  default = \"eu-west-1\"\n}}\n\nvariable \"db_password\" {{\n  description = \"Master password of the database\"\n  type        = string\n  sensitive   = true\n  default     = \"{c}{FILL}\"\n}}\n"
            ),
        );
        case.write(
            "infra/main.tf",
            &format!(
                "resource \"aws_db_instance\" \"app\" {{\n  engine         = \"postgres\"\n  instance_class = \"db.t3.micro\"\n  username       = \"app\"\n  password       = \"{FILL}{c}\"\n}}\n"
            ),
        );
        case.write(
            "cfn/database.yaml",
            &format!(
                "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n  DBUser:\n    Type: String\n    Default: app\n  DBPassword:\n    Type: String\n    NoEcho: true\n    Default: {c}{FILL}\nResources: {{}}\n"
            ),
        );
        case.write(
            ".github/workflows/deploy.yml",
            &format!(
                "name: deploy\non:\n  workflow_dispatch:\n    inputs:\n      environment:\n        default: staging\n      deploy_token:\n        description: token for the deploy API\n        required: false\n        default: '{FILL}{c}'\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - run: ./deploy.sh\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("variables", "infra/variables.tf", "redacted"),
                ("resource", "infra/main.tf", "redacted"),
                ("cfn", "cfn/database.yaml", "redacted"),
                ("workflow", ".github/workflows/deploy.yml", "redacted"),
            ],
            &[
                (
                    "variables_kept",
                    "infra/variables.tf",
                    "  default = \"eu-west-1\"\n",
                ),
                (
                    "resource_kept",
                    "infra/main.tf",
                    "  username       = \"app\"\n",
                ),
                ("cfn_kept", "cfn/database.yaml", "    Default: app\n"),
                (
                    "workflow_kept",
                    ".github/workflows/deploy.yml",
                    "        default: staging\n",
                ),
            ],
        );
        expect_flagged(&case, "infra/variables.tf", "redact", "secret-default");
        expect_flagged(&case, "infra/main.tf", "redact", "secret-assignment");
        expect_flagged(&case, "cfn/database.yaml", "redact", "secret-default");
        expect_flagged(
            &case,
            ".github/workflows/deploy.yml",
            "redact",
            "secret-default",
        );
    });
}

/// Hole: credentials where real projects keep them, in forms no rule read:
/// the fallback of an environment lookup (`os.getenv("STRIPE_API_KEY",
/// "…")`, Go's `os.Setenv`, Ruby's `ENV['X'] ||= …`: a secret-sounding
/// name quoted, then its value, with no `=` or `:` between), a user and
/// password pair (`requests.get(url, auth=("ci", "…"))`), Redis's
/// `requirepass`, `docker login -p` in a CI script, Apache's `SetEnv` in an
/// `.htaccess`, a basic-auth header in an nginx site, and PowerShell's
/// `ConvertTo-SecureString "…" -AsPlainText`: each was served as is.
#[test]
fn credentials_in_calls_and_server_configs_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("calls");
        let basic = crate::support::b64(format!("deploy:{c}{FILL}").as_bytes());
        let files = [
            (
                "app/config.py",
                format!(
                    "import os\n\nDEBUG = os.getenv(\"DEBUG\", \"0\") == \"1\"\nSTRIPE_KEY = os.getenv(\"STRIPE_API_KEY\", \"{c}{FILL}\")\n",
                ),
                "DEBUG = os.getenv(\"DEBUG\", \"0\") == \"1\"",
                "secret-assignment",
            ),
            (
                "cmd/seed/main.go",
                format!(
                    "package main\n\nimport \"os\"\n\nfunc main() {{\n\tos.Setenv(\"API_TOKEN\", \"{FILL}{c}\")\n\tseed()\n}}\n"
                ),
                "\tseed()\n",
                "secret-assignment",
            ),
            (
                "config/initializers/mailer.rb",
                format!(
                    "# Development defaults.\nENV['SMTP_HOST'] ||= 'localhost'\nENV['SMTP_PASSWORD'] ||= '{c}{FILL}'\nActionMailer::Base.smtp_settings = {{}}\nActionMailer::Base.delivery_method = :smtp\n"
                ),
                "ActionMailer::Base.smtp_settings = {}",
                "secret-assignment",
            ),
            (
                "scripts/report.py",
                format!(
                    "import requests\n\nURL = \"https://ci.example.com/api/json\"\nr = requests.get(URL, auth=(\"ci\", \"{FILL}{c}\"), timeout=10)\nprint(r.json()[\"jobs\"])\n"
                ),
                "print(r.json()[\"jobs\"])",
                "secret-assignment",
            ),
            (
                "docker/redis/redis.conf",
                format!("bind 0.0.0.0\nport 6379\nrequirepass {c}{FILL}\nappendonly yes\n"),
                "appendonly yes\n",
                "redis-password",
            ),
            (
                "ci/publish.sh",
                format!(
                    "#!/bin/sh\nset -eu\ndocker login -u ci -p {FILL}{c} registry.example.com\ndocker push registry.example.com/app:latest\n"
                ),
                "docker push registry.example.com/app:latest",
                "cli-password",
            ),
            (
                "public/.htaccess",
                format!(
                    "RewriteEngine On\nSetEnv STRIPE_SECRET_KEY {c}{FILL}\nRewriteRule ^ index.php [L]\n"
                ),
                "RewriteRule ^ index.php [L]",
                "server-env-secret",
            ),
            (
                "deploy/nginx/site.conf",
                format!(
                    "server {{\n    listen 80;\n    location /api/ {{\n        proxy_pass http://backend;\n        proxy_set_header Authorization \"Basic {basic}\";\n    }}\n}}\n"
                ),
                "proxy_pass http://backend;",
                "basic-auth-header",
            ),
            (
                "scripts/Deploy.ps1",
                format!(
                    "$user = 'deploy'\n$pass = ConvertTo-SecureString \"{FILL}{c}\" -AsPlainText -Force\n$cred = New-Object System.Management.Automation.PSCredential($user, $pass)\n"
                ),
                "$user = 'deploy'",
                "powershell-secure-string",
            ),
        ];
        for (rel, text, _, _) in &files {
            case.write(rel, text);
        }
        case.env.own();
        let labels: Vec<String> = (0..files.len()).map(|i| format!("f{i}")).collect();
        let kept_labels: Vec<String> = (0..files.len()).map(|i| format!("k{i}")).collect();
        let seen: Vec<(&str, &str, &str)> = files
            .iter()
            .zip(&labels)
            .map(|((rel, _, _, _), l)| (l.as_str(), *rel, "redacted"))
            .collect();
        let kept: Vec<(&str, &str, &str)> = files
            .iter()
            .zip(&kept_labels)
            .map(|((rel, _, line, _), l)| (l.as_str(), *rel, *line))
            .collect();
        expect_seen(&case, &seen, &kept);
        for (rel, _, _, rule) in &files {
            expect_flagged(&case, rel, "redact", rule);
        }
    });
}

/// Hole: passwords in files every web project has, written without `=`:
/// Redis's `--requirepass` in a Compose `command:`, WordPress's salts
/// (`define('NONCE_SALT', '…')`: `salt` was no secret-sounding word), the
/// publishing credentials of a Gradle build in Groovy (`password '…'`),
/// and a database init script's `CREATE USER … WITH PASSWORD '…'` and
/// `IDENTIFIED BY '…'`: each was served as is.
#[test]
fn passwords_in_compose_wordpress_gradle_and_sql_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("nosep");
        let files = [
            (
                "docker-compose.yml",
                format!(
                    "services:\n  cache:\n    image: redis:7\n    command: redis-server --appendonly yes --requirepass {c}{FILL}\n    ports:\n      - \"6379:6379\"\n"
                ),
                "    image: redis:7\n",
                "cli-password",
            ),
            (
                "build.gradle",
                format!(
                    "plugins {{\n    id 'maven-publish'\n}}\npublishing {{\n    repositories {{\n        maven {{\n            url 'https://maven.example.com/releases'\n            credentials {{\n                username 'deployer'\n                password '{c}{FILL}'\n            }}\n        }}\n    }}\n}}\n"
                ),
                "url 'https://maven.example.com/releases'",
                "quoted-password",
            ),
            (
                "docker/initdb/01-users.sql",
                format!(
                    "CREATE DATABASE app;\nCREATE USER app WITH PASSWORD '{c}{FILL}';\nGRANT ALL PRIVILEGES ON DATABASE app TO app;\nCREATE USER report IDENTIFIED BY '{FILL}{c}';\nGRANT SELECT ON app.* TO report;\n"
                ),
                "GRANT SELECT ON app.* TO report;",
                "quoted-password",
            ),
        ];
        for (rel, text, _, _) in &files {
            case.write(rel, text);
        }
        // A WordPress config holding a secret is hidden whole (the path
        // rule `credential-config`): its salts were the secret not found.
        case.write(
            "wordpress/wp-config.php",
            &format!(
                "<?php\ndefine( 'DB_NAME', 'wordpress' );\ndefine( 'DB_HOST', 'localhost' );\ndefine( 'NONCE_SALT', '{FILL}{c}' );\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n"
            ),
        );
        case.env.own();
        let labels: Vec<String> = (0..files.len()).map(|i| format!("f{i}")).collect();
        let kept_labels: Vec<String> = (0..files.len()).map(|i| format!("k{i}")).collect();
        let mut seen: Vec<(&str, &str, &str)> = files
            .iter()
            .zip(&labels)
            .map(|((rel, _, _, _), l)| (l.as_str(), *rel, "redacted"))
            .collect();
        seen.push(("wp", "wordpress/wp-config.php", "empty"));
        let kept: Vec<(&str, &str, &str)> = files
            .iter()
            .zip(&kept_labels)
            .map(|((rel, _, line, _), l)| (l.as_str(), *rel, *line))
            .collect();
        expect_seen(&case, &seen, &kept);
        for (rel, _, _, rule) in &files {
            expect_flagged(&case, rel, "redact", rule);
        }
        let (action, rules) = flagged(&case, "wordpress/wp-config.php");
        assert_eq!(action, "hide", "{rules:?}");
        assert!(rules.iter().any(|r| r == "php-define-secret"), "{rules:?}");
    });
}

/// Hole: yarn 1's `.yarnrc` separates a key from its value by a blank
/// (`"//registry/:_authToken" "…"`), not by `=` as `.npmrc` does: the
/// path rule for npm and yarn configs hides the file only when the content
/// rules find a credential in it, and none of them read that form. The
/// registry token was served as is. Now `yarnrc-auth` reads it (and
/// `_auth`, `_password`); the file is hidden, as an `.npmrc` with auth is.
#[test]
fn a_yarn_one_config_with_a_registry_token_is_hidden() {
    each_mode(|mut case| {
        let c = case.add_canary("yarnrc");
        case.write(
            ".yarnrc",
            &format!(
                "registry \"https://npm.example.test/\"\n\"//npm.example.test/:_authToken\" \"{c}Zk3f9QmX2vLp8\"\nemail dev@example.test\n"
            ),
        );
        // A variable is no credential: this one is served as is.
        case.write(
            "web/.yarnrc",
            "\"//npm.example.test/:_authToken\" \"${NPM_TOKEN}\"\n",
        );
        expect_seen(&case, &[("yarnrc", ".yarnrc", "empty")], &[]);
        let (action, rules) = flagged(&case, ".yarnrc");
        assert_eq!(action, "hide", "{rules:?}");
        assert!(rules.iter().any(|r| r == "yarnrc-auth"), "{rules:?}");
        expect_not_flagged(&case, &["web/.yarnrc"]);
    });
}
