//! Review 22: a third round on the secrets scanner (reviews 7 and 13 were
//! the first two): credentials as they sit in real projects (typed
//! constants, `*_KEY` names, Kubernetes and ECS env entries, API client
//! collections, random passwords), checked through the sandbox's view and
//! `guard scan --json`. Each test that found a hole names it.
//!
//! Secret values are assembled at run time so this file holds nothing the
//! scanner would flag.

use crate::support::{FILL, each_mode, expect_flagged, expect_seen};

/// Hole: a constant declared with its type (`const apiKey: string = "…"`
/// in TypeScript, `const API_KEY: &str = "…"` in Rust, `var apiToken
/// string = "…"` in Go, `API_KEY: str = "…"` in Python) read as the type
/// assigned, which is code: the literal after it was served as is.
#[test]
fn typed_constants_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("typed");
        case.write(
            "web/src/config.ts",
            &format!(
                "export const region = 'eu-west-1';\nconst apiKey: string = \"{c}{FILL}\";\nexport default {{ region, apiKey }};\n"
            ),
        );
        case.write(
            "src/keys.rs",
            &format!(
                "//! Settings of the API client.\n\npub const REGION: &str = \"eu-west-1\";\npub const API_KEY: &str = \"{FILL}{c}\";\npub static AUTH_TOKEN: &'static str = \"{c}{FILL}\";\npub const TIMEOUT_SECS: u64 = 30;\npub const RETRIES: u32 = 3;\n"
            ),
        );
        case.write(
            "cmd/main.go",
            &format!(
                "package main\n\nimport \"fmt\"\n\nvar apiToken string = \"{c}{FILL}\"\n\nfunc main() {{\n\tfmt.Println(\"up\")\n}}\n"
            ),
        );
        case.write(
            "app/settings.py",
            &format!(
                "import os\n\nDEBUG: bool = False\nAPI_KEY: str = \"{c}{FILL}\"\nTIMEOUT: int = 30\nRETRIES: int = 3\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("ts", "web/src/config.ts", "redacted"),
                ("rs", "src/keys.rs", "redacted"),
                ("go", "cmd/main.go", "redacted"),
                ("py", "app/settings.py", "redacted"),
            ],
            &[
                (
                    "ts_kept",
                    "web/src/config.ts",
                    "export const region = 'eu-west-1';",
                ),
                (
                    "rs_kept",
                    "src/keys.rs",
                    "pub const REGION: &str = \"eu-west-1\";",
                ),
                ("go_kept", "cmd/main.go", "\tfmt.Println(\"up\")"),
                ("py_kept", "app/settings.py", "TIMEOUT: int = 30"),
            ],
        );
        for rel in [
            "web/src/config.ts",
            "src/keys.rs",
            "cmd/main.go",
            "app/settings.py",
        ] {
            expect_flagged(&case, rel, "redact", "secret-assignment");
        }
    });
}

/// Hole: a name ending in `key` (`STRIPE_KEY`, `ENCRYPTION_KEY`, Spring's
/// `signing-key`, `fly secrets set OPENAI_KEY=…` in a script) was not
/// secret-sounding to the content rules (the environment rules already
/// call `*_KEY` a secret): the value was served as is.
#[test]
fn names_ending_in_key_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("key");
        case.write(
            "web/src/payments.js",
            &format!(
                "import Stripe from 'stripe';\nconst STRIPE_KEY = \"{c}{FILL}\";\nexport const stripe = new Stripe(STRIPE_KEY);\n"
            ),
        );
        case.write(
            "app/crypto.py",
            &format!(
                "from cryptography.fernet import Fernet\n\nENCRYPTION_KEY = \"{FILL}{c}\"\nfernet = Fernet(ENCRYPTION_KEY)\n"
            ),
        );
        case.write(
            "src/main/resources/application-prod.yml",
            &format!(
                "server:\n  port: 8080\napp:\n  jwt:\n    signing-key: {c}{FILL}\n    ttl: 3600\n"
            ),
        );
        case.write(
            "scripts/deploy.sh",
            &format!(
                "#!/bin/sh\nset -eu\nfly secrets set OPENAI_KEY={c}{FILL}\nfly deploy --remote-only\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("js", "web/src/payments.js", "redacted"),
                ("py", "app/crypto.py", "redacted"),
                ("yml", "src/main/resources/application-prod.yml", "redacted"),
                ("sh", "scripts/deploy.sh", "redacted"),
            ],
            &[
                (
                    "js_kept",
                    "web/src/payments.js",
                    "export const stripe = new Stripe(STRIPE_KEY);",
                ),
                (
                    "py_kept",
                    "app/crypto.py",
                    "fernet = Fernet(ENCRYPTION_KEY)",
                ),
                (
                    "yml_kept",
                    "src/main/resources/application-prod.yml",
                    "    ttl: 3600",
                ),
                ("sh_kept", "scripts/deploy.sh", "fly deploy --remote-only"),
            ],
        );
        for rel in [
            "web/src/payments.js",
            "app/crypto.py",
            "src/main/resources/application-prod.yml",
            "scripts/deploy.sh",
        ] {
            expect_flagged(&case, rel, "redact", "secret-assignment");
        }
    });
}

/// Hole: a secret given as a name/value pair, the name in one key and the
/// value in another (a Kubernetes Deployment's `env:` entry, `- name:
/// STRIPE_API_KEY` over `value: …`; an ECS task definition's
/// `environment`; an API client's collection and environment, `{"key":
/// "token", "value": …}`; CloudFormation parameters), has no
/// secret-sounding name next to the value: all were served as is.
#[test]
fn name_value_pairs_are_redacted() {
    each_mode(|mut case| {
        let c = case.add_canary("pair");
        case.write(
            "k8s/api.yaml",
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: registry.example.com/api:1.4.2\n          env:\n            - name: LOG_LEVEL\n              value: info\n            - name: STRIPE_API_KEY\n              value: {c}{FILL}\n            - name: DB_PASSWORD\n              value: \"{FILL}{c}\"\n"
            ),
        );
        case.write(
            "ecs/task-definition.json",
            &format!(
                "{{\n  \"family\": \"api\",\n  \"containerDefinitions\": [\n    {{\n      \"name\": \"api\",\n      \"image\": \"api:1.4.2\",\n      \"environment\": [\n        {{\n          \"name\": \"PORT\",\n          \"value\": \"8080\"\n        }},\n        {{\n          \"name\": \"API_TOKEN\",\n          \"value\": \"{c}{FILL}\"\n        }}\n      ]\n    }}\n  ]\n}}\n"
            ),
        );
        case.write(
            "postman/api.postman_collection.json",
            &format!(
                "{{\n\t\"info\": {{\n\t\t\"name\": \"api\"\n\t}},\n\t\"item\": [\n\t\t{{\n\t\t\t\"name\": \"list items\",\n\t\t\t\"request\": {{\n\t\t\t\t\"auth\": {{\n\t\t\t\t\t\"type\": \"bearer\",\n\t\t\t\t\t\"bearer\": [\n\t\t\t\t\t\t{{\n\t\t\t\t\t\t\t\"key\": \"token\",\n\t\t\t\t\t\t\t\"value\": \"{c}{FILL}\",\n\t\t\t\t\t\t\t\"type\": \"string\"\n\t\t\t\t\t\t}}\n\t\t\t\t\t]\n\t\t\t\t}},\n\t\t\t\t\"method\": \"GET\",\n\t\t\t\t\"url\": \"https://api.example.com/items\"\n\t\t\t}}\n\t\t}}\n\t]\n}}\n"
            ),
        );
        case.write(
            "postman/prod.postman_environment.json",
            &format!(
                "{{\n\t\"id\": \"prod\",\n\t\"name\": \"prod\",\n\t\"values\": [\n\t\t{{\"key\": \"baseUrl\", \"value\": \"https://api.example.com\", \"enabled\": true}},\n\t\t{{\"key\": \"apiKey\", \"value\": \"{FILL}{c}\", \"type\": \"secret\", \"enabled\": true}}\n\t],\n\t\"_postman_variable_scope\": \"environment\"\n}}\n"
            ),
        );
        case.write(
            "cfn/prod-params.json",
            &format!(
                "[\n  {{\"ParameterKey\": \"Environment\", \"ParameterValue\": \"prod\"}},\n  {{\"ParameterKey\": \"DbPassword\", \"ParameterValue\": \"{c}{FILL}\"}}\n]\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("k8s", "k8s/api.yaml", "redacted"),
                ("ecs", "ecs/task-definition.json", "redacted"),
                (
                    "collection",
                    "postman/api.postman_collection.json",
                    "redacted",
                ),
                (
                    "environment",
                    "postman/prod.postman_environment.json",
                    "redacted",
                ),
                ("cfn", "cfn/prod-params.json", "redacted"),
            ],
            &[
                ("k8s_kept", "k8s/api.yaml", "              value: info\n"),
                (
                    "ecs_kept",
                    "ecs/task-definition.json",
                    "\"value\": \"8080\"",
                ),
                (
                    "collection_kept",
                    "postman/api.postman_collection.json",
                    "\"url\": \"https://api.example.com/items\"",
                ),
                (
                    "cfn_kept",
                    "cfn/prod-params.json",
                    "\"ParameterValue\": \"prod\"",
                ),
            ],
        );
        for rel in [
            "k8s/api.yaml",
            "ecs/task-definition.json",
            "postman/api.postman_collection.json",
            "postman/prod.postman_environment.json",
            "cfn/prod-params.json",
        ] {
            expect_flagged(&case, rel, "redact", "name-value-secret");
        }
    });
}

/// Hole: a random password of letters only (one in 16 random 16-character
/// passwords of letters and digits has no digit), or one whose letters
/// happen to fall in long runs (`…PCnmFnDraal…`), passed for the name of
/// something in code, not a value: `password: <it>` was served as is.
#[test]
fn random_passwords_without_digits_are_redacted() {
    each_mode(|case| {
        // The canary (which has digits) cannot be used: the values are
        // built around its `CANARY` prefix, which the viewer looks for.
        let letters = ["CANARY", "qTzRkWbNvHsLpXcM"].concat();
        let runs = ["9CANARY", "uknf4PCnmFnDraalEFMCmwLFEBWneji"].concat();
        case.write(
            "config/database.yml",
            &format!(
                "production:\n  adapter: postgresql\n  host: db.internal\n  username: app\n  password: {letters}\n  pool: 5\n"
            ),
        );
        case.write(
            "config/cache.yml",
            &format!("redis:\n  host: cache.internal\n  password: \"{runs}\"\n  db: 0\n"),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("letters", "config/database.yml", "redacted"),
                ("runs", "config/cache.yml", "redacted"),
            ],
            &[
                ("letters_kept", "config/database.yml", "  username: app\n"),
                ("runs_kept", "config/cache.yml", "  host: cache.internal\n"),
            ],
        );
        for rel in ["config/database.yml", "config/cache.yml"] {
            expect_flagged(&case, rel, "redact", "secret-assignment");
        }
    });
}

/// Hole: a Kubernetes Secret manifest holds nothing but secrets, base64 in
/// `data:` or plain in `stringData:`, under keys of any name (`STRIPE_KEY`,
/// `SENDGRID`, a whole config file as a block scalar): only values under
/// secret-sounding keys were found, the others served (base64 hides
/// nothing from a program). Now every value is redacted.
#[test]
fn kubernetes_secret_manifests_are_redacted_whatever_their_keys() {
    each_mode(|mut case| {
        let c = case.add_canary("k8s");
        let data = crate::support::b64(format!("{c}{FILL}").as_bytes());
        case.write(
            "k8s/payments-secret.yaml",
            &format!(
                "# Applied by hand; rotate every quarter.\napiVersion: v1\nkind: Secret\nmetadata:\n  name: payments\n  namespace: prod\n  labels:\n    app: payments\n    tier: backend\n  annotations:\n    owner: team-payments\ntype: Opaque\ndata:\n  STRIPE_KEY: {data}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: payments\ndata:\n  region: eu-west-1\n  log_level: info\n"
            ),
        );
        case.write(
            "k8s/exporter-secret.yaml",
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: exporter\n  namespace: monitoring\n  labels:\n    app: exporter\ntype: Opaque\nstringData:\n  exporter.yml: |\n    upstream:\n      url: https://metrics.example.com\n      key: {c}{FILL}\n"
            ),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("data", "k8s/payments-secret.yaml", "redacted"),
                ("string", "k8s/exporter-secret.yaml", "redacted"),
            ],
            &[
                (
                    "data_kept",
                    "k8s/payments-secret.yaml",
                    "  region: eu-west-1\n",
                ),
                (
                    "string_kept",
                    "k8s/exporter-secret.yaml",
                    "  namespace: monitoring\n",
                ),
            ],
        );
        for rel in ["k8s/payments-secret.yaml", "k8s/exporter-secret.yaml"] {
            expect_flagged(&case, rel, "redact", "kubernetes-secret");
        }
    });
}

/// Hole: a Dockerfile's `ENV NAME value` (the form without `=`) has no
/// separator the assignment rule knows, and libpq's `pgpass.conf` and a
/// Docker registry's `auth/htpasswd` are the files `.pgpass` and
/// `.htpasswd` are, under other names: all were served as is.
#[test]
fn dockerfile_env_and_credential_files_by_other_names_are_not_served() {
    each_mode(|mut case| {
        let c = case.add_canary("docker");
        case.write(
            "Dockerfile",
            &format!(
                "FROM node:20-slim\nWORKDIR /app\nENV NODE_ENV production\nENV NPM_TOKEN {c}{FILL}\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nCMD [\"node\", \"server.js\"]\n"
            ),
        );
        case.write(
            "ops/pgpass.conf",
            &format!("db.internal:5432:app:app:{c}{FILL}\n"),
        );
        case.write(
            "registry/auth/htpasswd",
            &format!("deploy:$2y$05${c}{FILL}\n"),
        );
        case.env.own();
        expect_seen(
            &case,
            &[
                ("dockerfile", "Dockerfile", "redacted"),
                ("pgpass", "ops/pgpass.conf", "empty"),
                ("htpasswd", "registry/auth/htpasswd", "empty"),
            ],
            &[("dockerfile_kept", "Dockerfile", "ENV NODE_ENV production\n")],
        );
        expect_flagged(&case, "Dockerfile", "redact", "dockerfile-env-secret");
        expect_flagged(&case, "ops/pgpass.conf", "hide", "db-credentials");
        expect_flagged(&case, "registry/auth/htpasswd", "hide", "db-credentials");
    });
}

/// Not a hole (checked, caught already): the usual places a project keeps
/// a credential, each redacted or hidden by the rule meant for it.
#[test]
fn credentials_in_everyday_project_files_are_not_served() {
    each_mode(|mut case| {
        let c = case.add_canary("everyday");
        case.write(
            "docker-compose.yml",
            &format!(
                "services:\n  db:\n    image: postgres:16\n    environment:\n      - POSTGRES_USER=app\n      - POSTGRES_PASSWORD={c}{FILL}\n      - POSTGRES_DB=app\n    ports:\n      - \"5432:5432\"\n"
            ),
        );
        case.write(
            "src/Api/appsettings.json",
            &format!(
                "{{\n  \"Logging\": {{\n    \"LogLevel\": {{\n      \"Default\": \"Information\"\n    }}\n  }},\n  \"ConnectionStrings\": {{\n    \"DefaultConnection\": \"Server=tcp:db.example.net,1433;Initial Catalog=app;User ID=app;Password={c}{FILL};Encrypt=True;\"\n  }},\n  \"AllowedHosts\": \"*\"\n}}\n"
            ),
        );
        case.write(
            "src/main/resources/application.properties",
            &format!(
                "server.port=8080\nspring.datasource.url=jdbc:postgresql://db:5432/app\nspring.datasource.username=app\nspring.datasource.password={c}{FILL}\nspring.jpa.open-in-view=false\n"
            ),
        );
        case.write(
            "requests/items.http",
            &format!(
                "### List items\nGET https://api.example.com/v1/items\nAuthorization: Bearer {c}{FILL}\nAccept: application/json\n\n### Health\nGET https://api.example.com/health\n"
            ),
        );
        case.write(
            "infra/prod.auto.tfvars",
            &format!(
                "region = \"eu-west-1\"\nenvironment = \"prod\"\ninstance_type = \"t3.small\"\ncloudflare_api_token = \"{c}{FILL}\"\n"
            ),
        );
        case.env.own();
        // The project's own git remote, with a token in its URL.
        let remote = format!("https://oauth2:{c}{FILL}@git.example.com/acme/app.git");
        let git = crate::support::host_git(case.project(), &["init", "-q"]);
        assert!(git.status.success(), "{git:?}");
        let git = crate::support::host_git(case.project(), &["remote", "add", "origin", &remote]);
        assert!(git.status.success(), "{git:?}");
        case.env.own();
        expect_seen(
            &case,
            &[
                ("compose", "docker-compose.yml", "redacted"),
                ("dotnet", "src/Api/appsettings.json", "redacted"),
                (
                    "spring",
                    "src/main/resources/application.properties",
                    "redacted",
                ),
                ("http", "requests/items.http", "redacted"),
                ("tfvars", "infra/prod.auto.tfvars", "redacted"),
                ("gitconfig", ".git/config", "redacted"),
            ],
            &[
                (
                    "compose_kept",
                    "docker-compose.yml",
                    "      - POSTGRES_DB=app\n",
                ),
                (
                    "http_kept",
                    "requests/items.http",
                    "GET https://api.example.com/health",
                ),
            ],
        );
        expect_flagged(&case, "docker-compose.yml", "redact", "secret-assignment");
        expect_flagged(
            &case,
            "src/Api/appsettings.json",
            "redact",
            "secret-assignment",
        );
        expect_flagged(
            &case,
            "src/main/resources/application.properties",
            "redact",
            "secret-assignment",
        );
        expect_flagged(&case, "requests/items.http", "redact", "secret-assignment");
        expect_flagged(
            &case,
            "infra/prod.auto.tfvars",
            "redact",
            "secret-assignment",
        );
        expect_flagged(&case, ".git/config", "redact", "uri-password");
    });
}
