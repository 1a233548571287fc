//! Content rules: which bytes of a text file are a secret value.
//!
//! Rules are data (id, description, pattern, keywords). One Aho-Corasick
//! automaton over every rule's keywords finds candidate lines in a single
//! pass; only then do the specific regexes run, and only on those lines and
//! only for the rules whose keywords occur there. Regexes compile lazily, on
//! first use, so a warm run (everything cached) compiles none.

use super::entropy::{assigned_secret, plausible_secret, plausible_token, uri_password};
use super::{Finding, RuleError};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::bytes::{CaptureLocations, Regex, RegexBuilder};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// How a rule's regex match turns into a secret range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The match (or its `secret` group) is the secret.
    Token,
    /// A well-known token format whose body must also look random.
    RandomToken,
    /// `name <sep> value`: a secret-sounding name given a high-entropy value.
    Assignment,
    /// The same in XML, where markup follows the value: `<password>…</…`,
    /// `<add key="ApiToken" value="…"/>`. Needs `name` and `secret` groups.
    Tagged,
    /// The value of a `value` key whose name is given by the `name` or
    /// `key` key just before it, on its line or the line before
    /// (`{"name": "API_TOKEN", "value": "…"}`, a Kubernetes env entry).
    NameValue,
    /// A `default` value: the secret-sounding name is the block's it sits
    /// in (`variable "db_password" {` over `default = "…"`), or the
    /// option's on its line (`add_argument("--token", default="…")`).
    Default,
    /// A Kubernetes Secret manifest's `kind: Secret` line: the secrets are
    /// the values of its YAML document's `data` and `stringData` maps.
    KubeSecret,
    /// A PEM `BEGIN ... PRIVATE KEY` line: the secret runs to the END line.
    PemBlock,
    /// A command-line option with a secret-sounding name and the value
    /// after it, on its line or the next (`--api-key VALUE`, and
    /// `"--api-key", "VALUE"` in an MCP server's `args`, pretty-printed
    /// one element per line). Needs a `name` group; the value is found
    /// after the match (see `option_value`).
    OptionValue,
    /// A URI's userinfo password (`scheme://user:PASSWORD@host`).
    UriPassword,
    /// A value with no secret-sounding name next to it that must look
    /// generated, as an assigned secret must (`curl -u user:PASSWORD`).
    Password,
    /// Marks the whole file as a secret (nothing to redact on its own).
    Marker,
}

#[derive(Debug, Clone)]
pub struct ContentRule {
    pub id: String,
    pub description: String,
    pub pattern: String,
    /// Literal words (ASCII case-insensitive); one must occur on a line for
    /// the regex to run there. Empty: the regex runs over the whole file.
    pub keywords: Vec<String>,
    pub kind: Kind,
    /// A match means the file is a secret file: hide, don't redact.
    pub hide_file: bool,
}

struct Builtin {
    id: &'static str,
    description: &'static str,
    pattern: &'static str,
    keywords: &'static [&'static str],
    kind: Kind,
    hide_file: bool,
}

/// Built-in content rules, most specific first: on overlapping matches the
/// earlier rule names the finding.
const BUILTIN: &[Builtin] = &[
    Builtin {
        id: "private-key",
        description: "PEM private key block",
        pattern: r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----",
        keywords: &["PRIVATE KEY"],
        kind: Kind::PemBlock,
        hide_file: false,
    },
    Builtin {
        id: "gcp-service-account",
        description: "Google Cloud service-account key file",
        pattern: r#""type"\s*:\s*"service_account""#,
        keywords: &["service_account"],
        kind: Kind::Marker,
        hide_file: true,
    },
    Builtin {
        id: "cookie-jar",
        description: "cookie in a Netscape cookie jar (curl, wget, yt-dlp, browser exports)",
        // One cookie per line: domain, flag, path, secure, expiry, name,
        // value. Session cookies have no recognizable format; the line's
        // shape is the evidence (the header alone is also quoted in code
        // that writes such files).
        pattern: r"^(?:#HttpOnly_)?[A-Za-z0-9._\-]+\t(?:TRUE|FALSE)\t[^\t\r\n]*\t(?:TRUE|FALSE)\t[0-9]+\t[^\t\r\n]+\t(?P<secret>[^\t\r\n]+)",
        keywords: &["\tTRUE\t", "\tFALSE\t"],
        kind: Kind::Token,
        hide_file: true,
    },
    Builtin {
        id: "putty-private-key",
        description: "PuTTY private key file (.ppk, whatever its name)",
        pattern: r"(?m)^PuTTY-User-Key-File-[0-9]+:[ \t]*[A-Za-z0-9@.\-]+",
        keywords: &["PuTTY-User-Key-File-"],
        kind: Kind::Marker,
        hide_file: true,
    },
    Builtin {
        id: "aws-access-key-id",
        description: "AWS access key id",
        pattern: r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b",
        keywords: &["AKIA", "ASIA", "ABIA", "ACCA"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "github-token",
        description: "GitHub token (personal, OAuth, app, refresh)",
        pattern: r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,255})\b",
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "github-fine-grained-token",
        description: "GitHub fine-grained personal access token",
        pattern: r"\b(?P<secret>github_pat_[A-Za-z0-9_]{22,255})",
        keywords: &["github_pat_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "gitlab-token",
        description: "GitLab token (personal, deploy, runner, trigger)",
        pattern: r"\b(?P<secret>gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_\-]{20,})",
        keywords: &["glpat-", "gldt-", "glrt-", "glptt-", "glsoat-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "slack-token",
        description: "Slack token",
        pattern: r"\b(?P<secret>xox[abeoprs]-[A-Za-z0-9\-]{10,}|xapp-[0-9]-[A-Za-z0-9\-]{10,})",
        keywords: &["xox", "xapp-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "slack-webhook",
        description: "Slack incoming-webhook URL",
        pattern: r"hooks\.slack\.com/(?:services|workflows)/(?P<secret>[A-Za-z0-9_/\-]{20,})",
        keywords: &["hooks.slack.com/"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "stripe-live-key",
        description: "Stripe live secret or restricted key",
        pattern: r"\b(?P<secret>(?:sk|rk)_live_[A-Za-z0-9]{20,})",
        keywords: &["sk_live_", "rk_live_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "google-api-key",
        description: "Google API key",
        pattern: r"\b(?P<secret>AIza[0-9A-Za-z_\-]{35})",
        keywords: &["AIza"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "anthropic-key",
        description: "Anthropic API key",
        pattern: r"\b(?P<secret>sk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_\-]{20,})",
        keywords: &["sk-ant-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "openrouter-key",
        description: "OpenRouter API key",
        pattern: r"\b(?P<secret>sk-or-v1-[a-f0-9]{64})\b",
        keywords: &["sk-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "sk-hex-key",
        description: "API key of the form sk-<32 hex digits> (DeepSeek and others)",
        pattern: r"\b(?P<secret>sk-[a-f0-9]{32})\b",
        keywords: &["sk-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "openai-key",
        description: "OpenAI API key",
        pattern: r"\b(?P<secret>sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{32,})",
        keywords: &["sk-"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "groq-key",
        description: "Groq API key",
        pattern: r"\b(?P<secret>gsk_[A-Za-z0-9]{48,})\b",
        keywords: &["gsk_"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "xai-key",
        description: "xAI API key",
        pattern: r"\b(?P<secret>xai-[A-Za-z0-9]{70,})\b",
        keywords: &["xai-"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "perplexity-key",
        description: "Perplexity API key",
        pattern: r"\b(?P<secret>pplx-[A-Za-z0-9]{40,})\b",
        keywords: &["pplx-"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "replicate-token",
        description: "Replicate API token",
        pattern: r"\b(?P<secret>r8_[A-Za-z0-9]{30,})\b",
        keywords: &["r8_"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "sendgrid-key",
        description: "SendGrid API key",
        pattern: r"\b(?P<secret>SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})",
        keywords: &["SG."],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "digitalocean-token",
        description: "DigitalOcean API, OAuth or refresh token",
        pattern: r"\b(?P<secret>do[opr]_v1_[a-f0-9]{64})\b",
        keywords: &["_v1_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "shopify-token",
        description: "Shopify access token or shared secret",
        pattern: r"\b(?P<secret>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b",
        keywords: &["shp"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "pypi-token",
        description: "PyPI upload token",
        pattern: r"\b(?P<secret>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})",
        keywords: &["pypi-AgEIcHlwaS5vcmc"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "docker-hub-token",
        description: "Docker Hub access token",
        pattern: r"\b(?P<secret>dckr_pat_[A-Za-z0-9_\-]{27,})",
        keywords: &["dckr_pat_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "vault-token",
        description: "HashiCorp Vault token",
        pattern: r"\b(?P<secret>hv[sbr]\.[A-Za-z0-9_\-]{24,})",
        keywords: &["hvs.", "hvb.", "hvr."],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "terraform-cloud-token",
        description: "HCP Terraform (Terraform Cloud) API token",
        pattern: r"\b(?P<secret>[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,})",
        keywords: &[".atlasv1."],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "age-secret-key",
        description: "age encryption secret key",
        pattern: r"(?P<secret>AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})",
        keywords: &["AGE-SECRET-KEY-1"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "databricks-token",
        description: "Databricks personal access token",
        pattern: r"\b(?P<secret>dapi[a-f0-9]{32}(?:-[0-9]+)?)\b",
        keywords: &["dapi"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "doppler-token",
        description: "Doppler token",
        pattern: r"\b(?P<secret>dp\.(?:st|sa|ct|pt|scim|audit)\.[A-Za-z0-9_\-]{40,})",
        keywords: &["dp."],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "telegram-bot-token",
        description: "Telegram bot token",
        pattern: r"\b(?P<secret>[0-9]{8,10}:AA[A-Za-z0-9_\-]{33})",
        keywords: &[":AA"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "mailgun-key",
        description: "Mailgun API key",
        pattern: r"\b(?P<secret>key-[0-9a-f]{32})\b",
        keywords: &["key-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "linear-api-key",
        description: "Linear API key",
        pattern: r"\b(?P<secret>lin_api_[A-Za-z0-9]{40})\b",
        keywords: &["lin_api_"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "postman-api-key",
        description: "Postman API key",
        pattern: r"\b(?P<secret>PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b",
        keywords: &["PMAK-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "grafana-token",
        description: "Grafana service-account or Grafana Cloud token",
        pattern: r"\b(?P<secret>glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})",
        keywords: &["glsa_", "glc_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "sentry-token",
        description: "Sentry auth token",
        pattern: r"\b(?P<secret>sntry[su]_[A-Za-z0-9+/=_\-]{40,})",
        keywords: &["sntry"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "new-relic-key",
        description: "New Relic user API key",
        pattern: r"\b(?P<secret>NRAK-[A-Z0-9]{27})\b",
        keywords: &["NRAK-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "google-oauth-client-secret",
        description: "Google OAuth client secret",
        pattern: r"\b(?P<secret>GOCSPX-[A-Za-z0-9_\-]{28})",
        keywords: &["GOCSPX-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "azure-ad-client-secret",
        description: "Microsoft Entra ID (Azure AD) client secret",
        pattern: r"(?P<secret>[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34})",
        keywords: &["Q~"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "atlassian-api-token",
        description: "Atlassian API token",
        pattern: r"\b(?P<secret>ATATT3[A-Za-z0-9_\-=]{150,})",
        keywords: &["ATATT3"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "square-token",
        description: "Square access token or application secret",
        pattern: r"\b(?P<secret>EAAA[A-Za-z0-9_\-]{60}|sq0csp-[A-Za-z0-9_\-]{43}|sq0atp-[A-Za-z0-9_\-]{22})",
        keywords: &["EAAA", "sq0"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "braintree-token",
        description: "Braintree (PayPal) production access token",
        pattern: r"(?P<secret>access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})",
        keywords: &["access_token$production$"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "supabase-token",
        description: "Supabase access token or secret API key",
        pattern: r"\b(?P<secret>sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{20,})",
        keywords: &["sbp_", "sb_secret_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "fly-token",
        description: "Fly.io API or deploy token",
        pattern: r"(?P<secret>FlyV1 fm[12][a-z]?_[A-Za-z0-9+/=_,\-]{50,}|\bfo1_[A-Za-z0-9_\-]{43})",
        keywords: &["FlyV1 ", "fo1_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "webhook-signing-secret",
        description: "Stripe or Svix webhook signing secret",
        pattern: r"\b(?P<secret>whsec_[A-Za-z0-9+/=]{32,})",
        keywords: &["whsec_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "heroku-token",
        description: "Heroku API key",
        pattern: r"\b(?P<secret>HRKU-[A-Za-z0-9_\-]{40,})",
        keywords: &["HRKU-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "netlify-token",
        description: "Netlify personal access token",
        pattern: r"\b(?P<secret>nfp_[A-Za-z0-9]{36,})\b",
        keywords: &["nfp_"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "planetscale-token",
        description: "PlanetScale service token or password",
        pattern: r"\b(?P<secret>pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-=.]{32,})",
        keywords: &["pscale_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "pulumi-token",
        description: "Pulumi access token",
        pattern: r"\b(?P<secret>pul-[a-f0-9]{40})\b",
        keywords: &["pul-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "rubygems-api-key",
        description: "RubyGems API key (`~/.gem/credentials`, CI secrets)",
        pattern: r"\b(?P<secret>rubygems_[0-9a-f]{48})\b",
        keywords: &["rubygems_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "tailscale-key",
        description: "Tailscale auth, API or OAuth client key",
        pattern: r"\b(?P<secret>tskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,})\b",
        keywords: &["tskey-"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "sonarqube-token",
        description: "SonarQube or SonarCloud token",
        pattern: r"\b(?P<secret>sq[pau]_[0-9a-f]{40})\b",
        keywords: &["sqp_", "squ_", "sqa_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        // An old-style token (40 hex digits, no prefix) under the key
        // SonarScanner reads it from (sonar-project.properties, -D options).
        id: "sonar-login",
        description: "SonarQube token given as sonar.login or sonar.token",
        pattern: r"(?i)sonar\.(?:login|token)\s*[=:]\s*[\x22']?(?P<secret>[0-9a-f]{40})\b",
        keywords: &["sonar.login", "sonar.token"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "figma-token",
        description: "Figma personal access token",
        pattern: r"\b(?P<secret>figd_[A-Za-z0-9_\-]{40,})",
        keywords: &["figd_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "bitbucket-app-password",
        description: "Bitbucket app password or API token",
        pattern: r"\b(?P<secret>ATBB[A-Za-z0-9]{32,})\b",
        keywords: &["ATBB"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "notion-token",
        description: "Notion integration token",
        pattern: r"\b(?P<secret>ntn_[0-9]{11}[A-Za-z0-9]{35})\b",
        keywords: &["ntn_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "npm-token",
        description: "npm access token",
        pattern: r"\b(?P<secret>npm_[A-Za-z0-9]{36})\b",
        keywords: &["npm_"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "huggingface-token",
        description: "Hugging Face access token",
        pattern: r"\b(?P<secret>hf_[A-Za-z0-9]{34,})\b",
        keywords: &["hf_"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "azure-storage-key",
        description: "Azure storage account key in a connection string",
        pattern: r"AccountKey=(?P<secret>[A-Za-z0-9+/]{80,}={0,2})",
        keywords: &["AccountKey="],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "jwt",
        description: "JSON Web Token",
        pattern: r"\b(?P<secret>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})",
        keywords: &["eyJ"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "uri-password",
        description: "connection URI with a password (scheme://user:password@host)",
        // The user may be empty (`redis://:PASSWORD@host`).
        pattern: r"\b[A-Za-z][A-Za-z0-9+.\-]{1,30}://[^\s:/@`'<>]{0,100}:(?P<secret>[^\s:/@`'<>]{1,200})@[^\s/@`'<>]",
        keywords: &["://"],
        kind: Kind::UriPassword,
        hide_file: false,
    },
    Builtin {
        id: "uri-token",
        description: "token as a URI's whole userinfo (`https://TOKEN@host`: Azure DevOps, Gemfury, git remotes and package indexes)",
        // No `:`: the user part is the credential. It must look generated
        // (`ssh://git@host`, `https://deploy@host` are names).
        pattern: r"\b[A-Za-z][A-Za-z0-9+.\-]{1,30}://(?P<secret>[A-Za-z0-9._~%+=\-]{16,200})@[^\s/@`'\x22<>]",
        keywords: &["://"],
        kind: Kind::Password,
        hide_file: false,
    },
    Builtin {
        id: "private-key-base64",
        description: "base64-encoded PEM private key (kubeconfig client-key-data, Kubernetes TLS secret)",
        // base64 of `-----BEGIN `, then of `PRIVATE KEY` at each of its
        // three alignments (the algorithm's name before it shifts it).
        pattern: r"(?P<secret>LS0tLS1CRUdJTi[A-Za-z0-9+/]{0,40}?(?:UFJJVkFURSBLRVk|QUklWQVRFIEtFW|BSSVZBVEUgS0VZ)[A-Za-z0-9+/=]*)",
        keywords: &["LS0tLS1CRUdJTi"],
        kind: Kind::Token,
        // Often wrapped over many lines (YAML block scalars) of which the
        // first alone matches: redacting that line would leave the key.
        hide_file: true,
    },
    Builtin {
        id: "docker-config-base64",
        description: "base64-encoded Docker registry credentials (a Kubernetes `.dockerconfigjson` or `.dockercfg` value)",
        // base64 of `{"auths":`, `{ "auths":` and `{\n  "auths":` (how
        // kubectl, docker and editors write it), and of `{"https://` (the
        // older `.dockercfg`, keyed by registry URL).
        pattern: r"(?P<secret>(?:eyJhdXRocyI6|eyAiYXV0aHMiO|ewogICJhdXRocyI6|eyJodHRwczovL)[A-Za-z0-9+/]{20,}={0,2})",
        keywords: &[
            "eyJhdXRocyI6",
            "eyAiYXV0aHMiO",
            "ewogICJhdXRocyI6",
            "eyJodHRwczovL",
        ],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "kubernetes-secret",
        description: "value in a Kubernetes Secret manifest (`data:` or `stringData:`), whatever its key",
        // Every value there is a secret (`STRIPE_KEY: <base64>`), under
        // keys the other rules do not know (see `kube_secret_values`).
        // YAML (`kind: Secret` starting a line, or the keys of a sequence
        // entry: an item of a `kind: List`) or JSON (`"kind": "Secret"`).
        pattern: r#"^[ \t]*-?[ \t]*kind:[ \t]*["']?Secret["']?[ \t]*\r?$|"kind"[ \t]*:[ \t]*"Secret""#,
        // Not `secret`, on a million lines of a large tree: `kind` before a
        // colon is rare.
        keywords: &["kind:", "kind\":", "kind\" :"],
        kind: Kind::KubeSecret,
        hide_file: false,
    },
    Builtin {
        id: "xml-secret-element",
        description: "XML element with a secret-sounding name holding a high-entropy value",
        pattern: r"<(?P<name>[A-Za-z_][A-Za-z0-9_.:\-]{0,80})(?:[ \t][^<>]*)?>(?P<secret>[^<>\s]{6,})</",
        // An end tag: rarer in code than the name words are.
        keywords: &["</"],
        kind: Kind::Tagged,
        hide_file: false,
    },
    Builtin {
        id: "xml-secret-setting",
        description: "key/value setting (.NET appSettings, an Ant property, an IDE run configuration's `<env name=… value=…/>`) with a secret-sounding key and a high-entropy value",
        pattern: r#"\b(?:key|name)[ \t]*=[ \t]*"(?P<name>[^"<>]{1,80})"[ \t]+value[ \t]*=[ \t]*"(?P<secret>[^"<>\s]{6,})""#,
        keywords: &["key=\"", "name=\""],
        kind: Kind::Tagged,
        hide_file: false,
    },
    Builtin {
        id: "name-value-secret",
        description: "name/value pair with a secret-sounding name and a high-entropy value (Kubernetes and ECS env entries, API client collections, CloudFormation parameters)",
        // The `value` key; the name is found by looking back from it (see
        // `sibling_name`): pretty-printed JSON and YAML put it on the line
        // before.
        pattern: r#"\b(?i:(?:parameter)?value)["']?[ \t]*:[ \t]*["']?(?P<secret>[^\s"'`,;<>(){}\[\]\\]{8,300})"#,
        // Keywords end where no other keyword starts (see `keyword_masks`).
        keywords: &["value\"", "value'", "value:"],
        kind: Kind::NameValue,
        hide_file: false,
    },
    Builtin {
        id: "secret-default",
        description: "default value of a variable, parameter or option with a secret-sounding name (Terraform variable, CloudFormation parameter, GitHub Actions input, command-line option)",
        // The name is not on the value's line: it is the block's (see
        // `default_owner`).
        pattern: r#"(?:^[ \t]*|[{,][ \t]*)["']?(?i:default)["']?[ \t]*[:=][ \t]*["']?(?P<secret>[^\s"'`,;=<>(){}\[\]\\][^\s"'`,;<>(){}\[\]\\]{7,299})"#,
        keywords: DEFAULT_KEYWORDS,
        kind: Kind::Default,
        hide_file: false,
    },
    Builtin {
        id: "secret-assignment",
        description: "secret-sounding name assigned a high-entropy value",
        // name, an optional closing quote/bracket of a key, a separator (not
        // `==`: `if token == "…"` compares, a test's expected value), an
        // optional opening quote (or a scheme like `Bearer`), the value. The
        // value stops at quotes, spaces and code punctuation, so expressions
        // (`os.environ["X"]`, `${VAR}`, `get()`) never form one long value;
        // a quoted secret is then extended to its closing quote (see
        // `assignment_secret`). Quotes may be escaped: code inside a JSON
        // string (a notebook cell) reads `api_key=\"...\"`. JSON's `\uXXXX`
        // escapes are part of a value (a program reads them decoded).
        pattern: r#"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,80})(?:\\?["'\]]){0,2}[ \t]*(?:=>|:=|\|\|=|\?\?=|=|:)[ \t]*(?:\\?["'`]|[brf]["'])?(?:(?i:bearer|basic|token)[ \t]+)?(?P<secret>(?:\\u[0-9A-Fa-f]{4}|[^\s"'`,;=<>(){}\[\]\\$%#&*!|?@:])(?:\\u[0-9A-Fa-f]{4}|[^\s"'`,;<>(){}\[\]\\&]){5,})"#,
        keywords: &[
            "token",
            "secret",
            "passw",
            "passphrase",
            // `pass` itself as a name (`DB_PASS=`, `smtpPass:`, rclone's
            // `pass =`), by what follows it: a keyword ending in a letter
            // that starts other keywords (`s`: `sk-`, `sbp_`…) makes every
            // hit run those rules too (see `keyword_masks`), and `pass`
            // is in every `password`.
            "pass=",
            "pass:",
            "pass ",
            "pass\t",
            "pass\"",
            "pass'",
            "pass`",
            // `salt` likewise (WordPress's `NONCE_SALT`, `HASH_SALT=`).
            "salt=",
            "salt:",
            "salt ",
            "salt\t",
            "salt\"",
            "salt'",
            // Session cookies (see `entropy::word_session`): `-b
            // 'sessionid=…'`, `Cookie: _app_session=…`.
            "sessid",
            "sessionid",
            "session=",
            "session:",
            "session\"",
            "session'",
            "pwd",
            "apikey",
            "api_key",
            "api-key",
            "auth",
            "credential",
            "private_key",
            "privatekey",
            "private-key",
            "access_key",
            "accesskey",
            // A name ending in `key` (`STRIPE_KEY`, `signing-key`; see
            // `entropy::word_key`), by what follows it, as for `pass`:
            // `_key` alone is on every line of code about maps and caches
            // (`cache_key(`, `_key_id`, `_keys`).
            "_key=",
            "_key:",
            "_key ",
            "_key\t",
            "_key\"",
            "_key'",
            "-key=",
            "-key:",
            "-key ",
            "-key\"",
            "-key'",
            // camelCase (`stripeKey`, `encryptionKey`): the same words
            // without the `_`, which count only where the source has a
            // capital `K` after a lowercase letter or a digit (see
            // `CAMEL_KEY`); `key` alone, lowercase, is everywhere.
            "key=",
            "key:",
            "key ",
            "key\t",
            "key\"",
            "key'",
        ],
        kind: Kind::Assignment,
        hide_file: false,
    },
    Builtin {
        id: "php-define-secret",
        description: "PHP constant with a secret-sounding name defined as a high-entropy value (wp-config.php)",
        pattern: r#"\b(?i:define)[ \t]*\([ \t]*["'](?P<name>[A-Za-z_][A-Za-z0-9_]{0,80})["'][ \t]*,[ \t]*["'](?P<secret>[^\r\n]{6,300}?)["'][ \t]*\)"#,
        // Not `define` alone: every C `#define` would be a candidate.
        keywords: &["define(", "define ("],
        kind: Kind::Tagged,
        hide_file: false,
    },
    Builtin {
        id: "dockerfile-env-secret",
        description: "Dockerfile `ENV NAME value` (the form without `=`) with a secret-sounding name and a high-entropy value",
        pattern: r#"^[ \t]*(?i:env)[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]{0,80})[ \t]+["']?(?P<secret>[^\s"'=]{6,})"#,
        // Keywords end where no other keyword starts (see `keyword_masks`).
        keywords: &["env ", "env\t"],
        kind: Kind::Tagged,
        hide_file: false,
    },
    Builtin {
        id: "server-env-secret",
        description: "web server setting of an environment variable (Apache `SetEnv NAME value`, nginx `fastcgi_param NAME value;`) with a secret-sounding name and a high-entropy value",
        pattern: r#"^[ \t]*(?i:setenv|fastcgi_param)[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]{0,80})[ \t]+["']?(?P<secret>[^\s"'=;]{6,})"#,
        // Not the Dockerfile rule's `env `: a hit on `setenv ` triggers
        // that rule too (see `keyword_masks`), a hit on `env ` not this one.
        keywords: &["setenv ", "setenv\t", "fastcgi_param"],
        kind: Kind::Tagged,
        hide_file: false,
    },
    Builtin {
        id: "redis-password",
        description: "Redis server or replica password (`requirepass`, `masterauth`, `sentinel auth-pass` in redis.conf and sentinel.conf)",
        pattern: r#"^[ \t]*(?i:requirepass|masterauth|sentinel[ \t]+auth-pass[ \t]+\S+)[ \t]+["']?(?P<secret>[^\s"']{6,255})"#,
        keywords: &["requirepass", "masterauth", "auth-pass"],
        kind: Kind::Password,
        hide_file: false,
    },
    Builtin {
        id: "yarnrc-auth",
        description: "npm registry credential in yarn 1's `.yarnrc`, where a key and its value are separated by a blank (`\"//registry/:_authToken\" \"…\"`, `_auth`, `_password`)",
        // A variable (`${NPM_TOKEN}`) is no secret.
        // Also as `npm config set "//registry/:_authToken" "…"` in a script.
        pattern: r#"(?:^[ \t]*|\bconfig[ \t]+set[ \t]+)["']?(?:[^\s"':]*:)?_(?:authToken|auth|password)["']?[ \t]+["']?(?P<secret>[^\s"'$=:][^\s"']{5,511})"#,
        keywords: &["_auth", "_password"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "powershell-secure-string",
        description: "PowerShell password given in clear (`ConvertTo-SecureString \"…\" -AsPlainText`)",
        pattern: r#"(?i:convertto-securestring)[ \t]+(?:-string[ \t]+)?["'](?P<secret>[^"'\r\n]{6,255})["']"#,
        keywords: &["convertto-securestring"],
        kind: Kind::Password,
        hide_file: false,
    },
    Builtin {
        id: "cli-password",
        description: "password on a command line: `curl -u user:PASSWORD`, `--user user:PASSWORD`, `mysql -pPASSWORD`, `--password PASSWORD`, `docker login -p PASSWORD`",
        // In scripts, READMEs and CI files; also as list items
        // (`"-u", "user:PASSWORD"`). The value must look generated:
        // `docker run -u www-data:www-data` is a user and a group.
        // Also the tools whose password option has a name of its own:
        // `sshpass -p`, `redis-cli -a`, smbclient's `-U user%PASSWORD`,
        // `ldapsearch -w`, keytool's `-storepass`/`-keypass`, `7z -p`,
        // `zip -P`.
        pattern: r#"(?:(?:^|[\s"'`(\[])(?:-u|--user)(?:[ \t]*=[ \t]*|[ \t]+|["'],[ \t]*)["']?[^\s:"'`$]{1,64}:|(?:^|[\s"'`(\[])-U[ \t]+["']?[^\s%"'`$]{1,64}%|\bmysql[a-z]*\b[^\r\n]*?[ \t]-p|\bsshpass\b[^\r\n]*?[ \t]-p[ \t]*|\b7za?\b[^\r\n]*?[ \t]-p|\bredis-cli\b[^\r\n]*?[ \t]-a[ \t]+|\bldap[a-z]*\b[^\r\n]*?[ \t]-w[ \t]+|\b(?:un)?zip\b[^\r\n]*?[ \t]-P[ \t]+|[ \t]-(?:src|dest)?(?:store|key)pass[ \t]+|\blogin\b[^\r\n]*?[ \t]-p[ \t]+|(?:^|[\s"'`(\[])--(?:password|requirepass|masterauth)(?:[ \t]+|["'],[ \t]*))["']?(?P<secret>[^\s"'`$\-][^\s"'`]{5,255})"#,
        // Keywords end where no other keyword starts (see `keyword_masks`).
        keywords: &[
            "-u",
            "--user",
            "mysql",
            // `docker login -u ci -p PASSWORD registry` (also helm, podman).
            "login ",
            "--password ",
            "--password\t",
            "--password\"",
            "--password'",
            // `redis-server --requirepass PASSWORD` (a Compose `command:`).
            "--requirepass",
            "--masterauth",
            "sshpass",
            "redis-cli",
            "ldap",
            "storepass",
            "keypass",
            "7z",
            "zip",
        ],
        kind: Kind::Password,
        hide_file: false,
    },
    Builtin {
        id: "netrc-password",
        description: "netrc-style login (`machine HOST login USER password PASSWORD`: .netrc, apt auth.conf)",
        pattern: r"(?:^[ \t]*|\blogin[ \t]+\S+[ \t]+)(?:password|passwd)[ \t]+(?P<secret>[^\s\x22'`$][^\s]{5,255})",
        // netrc needs a blank after the word; and a keyword ending in `d`
        // would run the `dapi`, `dp.`, `dckr_pat_` rules on every hit.
        keywords: &["password ", "password\t", "passwd ", "passwd\t"],
        kind: Kind::Password,
        hide_file: false,
    },
    Builtin {
        id: "basic-auth-header",
        description: "HTTP basic credentials (`Authorization: Basic <base64 of user:password>`) with no secret-sounding name next to them (nginx `proxy_set_header`, a saved request)",
        pattern: r"\b(?i:basic)[ \t]+(?P<secret>[A-Za-z0-9+/]{16,}={0,2})(?:[^A-Za-z0-9+/=]|$)",
        keywords: &["basic ", "basic\t"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "quoted-password",
        description: "quoted password after the word `password` with no `=` (Gradle's Groovy `password 'x'`, SQL `WITH PASSWORD 'x'`, `IDENTIFIED BY 'x'`)",
        pattern: r#"(?:\b(?i:password)|\b(?i:identified)[ \t]+(?:(?i:with)[ \t]+\S+[ \t]+)?(?i:by))[ \t]+["'](?P<secret>[^"'\r\n]{6,255})["']"#,
        // Keywords end where no other keyword starts (see `keyword_masks`).
        keywords: &["password '", "password \"", "password\t", "identified "],
        kind: Kind::Password,
        hide_file: false,
    },
    Builtin {
        id: "option-secret",
        description: "command-line option with a secret-sounding name and a high-entropy value (`--api-key VALUE`, `-token VALUE`, an MCP server's `\"args\": [\"--api-key\", \"VALUE\"]`, one element per line or not)",
        pattern: r#"(?:^|[\s"'`(\[,])--?(?P<name>[A-Za-z][A-Za-z0-9_\-]{1,60})"#,
        keywords: &[
            "-token",
            "-secret",
            "-auth",
            "-passw",
            "-pass ",
            "-pass\"",
            "-pass'",
            "-pass\t",
            "-pwd",
            "-apikey",
            "-api_key",
            "-key ",
            "-key\"",
            "-key'",
            "-key\t",
            "-credential",
        ],
        kind: Kind::OptionValue,
        hide_file: false,
    },
    Builtin {
        id: "discord-webhook",
        description: "Discord webhook URL (its last part is the token that posts)",
        pattern: r"\bhttps?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/(?:v[0-9]+/)?webhooks/[0-9]{17,20}/(?P<secret>[A-Za-z0-9_\-]{60,80})",
        keywords: &["/webhooks/"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "teams-webhook",
        description: "Microsoft Teams incoming webhook URL",
        pattern: r"\.webhook\.office\.com/webhookb2/(?P<secret>[A-Za-z0-9@/\-]{40,300})",
        keywords: &["webhookb2"],
        kind: Kind::Token,
        hide_file: false,
    },
    Builtin {
        id: "azure-sas-signature",
        description: "signature of an Azure shared access signature URL (`…&sig=…`: storage, Service Bus, Logic Apps and Teams workflows)",
        pattern: r"[?&;](?:amp;)?sig=(?P<secret>[A-Za-z0-9%+/]{30,120}={0,2})",
        keywords: &["sig="],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "azure-function-key",
        description: "Azure Functions key in a function URL (`…azurewebsites.net/api/f?code=…`)",
        pattern: r"\.azurewebsites\.net/[^\s\x22'<>?]*\?(?:[^\s\x22'<>]*&)?code=(?P<secret>[A-Za-z0-9_\-]{20,100}={0,2})",
        keywords: &["azurewebsites.net"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
    Builtin {
        id: "openvpn-credentials",
        description: "OpenVPN configuration with its user name and password inline (`<auth-user-pass>` block)",
        pattern: r"(?m)^[ \t]*<auth-user-pass>",
        keywords: &["<auth-user-pass>"],
        kind: Kind::Marker,
        hide_file: true,
    },
    Builtin {
        id: "bearer-token",
        description: "HTTP bearer token (a saved request, .har file, API client collection)",
        // After the assignment rule, which names the usual header line: this
        // one finds a token with no secret-sounding name next to it, as in a
        // header saved as JSON (`"name": "Authorization", "value": "Bearer
        // ..."`).
        pattern: r"\b(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9._~+/\-]{20,}=*)",
        keywords: &["bearer"],
        kind: Kind::RandomToken,
        hide_file: false,
    },
];

/// Ids of the built-in content rules (for `disable` validation).
pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|b| b.id)
}

pub fn builtin() -> Vec<ContentRule> {
    BUILTIN
        .iter()
        .map(|b| ContentRule {
            id: b.id.into(),
            description: b.description.into(),
            pattern: b.pattern.into(),
            keywords: b.keywords.iter().map(|k| k.to_string()).collect(),
            kind: b.kind,
            hide_file: b.hide_file,
        })
        .collect()
}

/// Compile a rule's pattern: bytes, ASCII classes (faster, and files need
/// not be UTF-8), with a size limit so a profile cannot blow up memory.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(4 << 20)
        .build()
}

/// How the assignment rule's pattern starts: the name group.
pub const ASSIGNMENT_NAME: &str = r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,80})";

const PEM_END: &str = r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----";

/// Most rules one engine holds (a candidate line's rule set is a bitmask).
pub const MAX_RULES: usize = 128;

/// All content rules compiled together.
pub struct ContentEngine {
    rules: Vec<ContentRule>,
    /// Built on first use, with each keyword's rule mask: a warm start
    /// (every file unchanged since the cached scan) needs neither, and
    /// they cost ~0.1 ms of every start.
    keywords: OnceLock<Result<Option<Keywords>, String>>,
    /// The keyword list the automaton is built from, each word once, and
    /// the rules each one belongs to (a bitmask).
    words: Vec<Vec<u8>>,
    owners: Vec<u128>,
    /// Rules without keywords: run over whole files.
    unanchored: Vec<usize>,
    regexes: Vec<OnceLock<Result<Compiled, String>>>,
    /// The assignment rule, and its regex anchored at the name's start: it
    /// runs once per identifier holding a keyword, not over whole lines.
    assignment: Option<usize>,
    anchored: OnceLock<Result<Compiled, String>>,
    pem_end: OnceLock<Result<Regex, String>>,
    fingerprint: [u8; 32],
}

struct Keywords {
    automaton: AhoCorasick,
    /// Automaton pattern index → the rules a hit triggers.
    rules: Vec<u128>,
    /// Automaton pattern index → what the hit must show for some of them
    /// (a bitmask) to run there.
    gates: Vec<(Gate, u128)>,
}

/// What a keyword's hit must show before some of its rules run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    /// A camelCase `Key` (see [`CAMEL_KEY`]).
    CamelKey,
    /// Only blanks or quotes since the start of the line, a `{` or a `,`
    /// (see [`DEFAULT_KEYWORDS`]).
    Leading,
}

/// The `secret-default` rule's keywords; they end where no other keyword
/// starts (see `keyword_masks`); `default ` also for `terraform fmt`'s
/// aligned `default     =`. A hit runs the rule only where its regex can
/// match, after only blanks or quotes on its line, a `{` or a `,`: Rust
/// says `Default::default()` and `impl Default for` on many lines.
const DEFAULT_KEYWORDS: &[&str] = &[
    "default=",
    "default:",
    "default ",
    "default\t",
    "default\"",
    "default'",
];

/// Whether the keyword hit at `at` leads its line, or follows a `{` or a
/// `,` (blanks and quotes aside; see [`DEFAULT_KEYWORDS`]).
fn leading(content: &[u8], at: usize) -> bool {
    let mut i = at;
    while i > 0 && matches!(content[i - 1], b' ' | b'\t' | b'"' | b'\'') {
        i -= 1;
    }
    i == 0 || matches!(content[i - 1], b'\n' | b'\r' | b'{' | b',')
}

/// Keywords that run the assignment rule only where the name's last word is
/// a camelCase `Key` (`stripeKey =`, `"encryptionKey":`): the byte the hit
/// starts at is a capital `K` after a lowercase letter or a digit. The
/// search runs over a lowercased copy, and `key` in lowercase ends names on
/// most lines of code (`for key in`, `key: value`); there the hit triggers
/// the other rules it may hide, not the assignment rule.
const CAMEL_KEY: &[&[u8]] = &[b"key=", b"key:", b"key ", b"key\t", b"key\"", b"key'"];

/// Whether the keyword hit at `at` starts a camelCase `Key` (see [`CAMEL_KEY`]).
fn camel_key(content: &[u8], at: usize) -> bool {
    content.get(at) == Some(&b'K')
        && at
            .checked_sub(1)
            .and_then(|p| content.get(p))
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A rule's regex and the indices of its named groups.
#[derive(Clone)]
struct Compiled {
    re: Regex,
    secret: Option<usize>,
    name: Option<usize>,
}

impl Compiled {
    fn new(pattern: &str) -> Result<Compiled, String> {
        let re = compile(pattern).map_err(|e| e.to_string())?;
        let group = |n: &str| re.capture_names().position(|g| g == Some(n));
        Ok(Compiled {
            secret: group("secret"),
            name: group("name"),
            re,
        })
    }
}

/// Per-thread working memory for [`ContentEngine::scan_with`]: a lowercase
/// copy of the file for the keyword pass, and each thread's own clones of
/// the regexes (a clone has its own match cache, so threads never contend
/// for one) with reusable capture slots.
#[derive(Default)]
pub struct Scratch {
    lower: Vec<u8>,
    regexes: Vec<Option<(Compiled, CaptureLocations)>>,
}

/// What one file's content holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentScan {
    pub findings: Vec<Finding>,
    /// Non-blank lines in the file, and how many of them hold a secret: a
    /// file that is mostly secrets is hidden rather than redacted.
    pub content_lines: u32,
    pub secret_lines: u32,
}

impl ContentScan {
    /// Only the findings of well-known formats (tokens with a prefix of
    /// their own, PEM keys, key files): what counts in installed packages
    /// (see `secrets::installed_package`).
    pub fn formats_only(mut self, engine: &ContentEngine) -> ContentScan {
        self.findings.retain(|f| {
            engine.rules.get(usize::from(f.rule)).is_some_and(|r| {
                matches!(
                    r.kind,
                    Kind::Token | Kind::RandomToken | Kind::PemBlock | Kind::Marker
                )
            })
        });
        let mut lines: Vec<u32> = self.findings.iter().map(|f| f.line).collect();
        lines.dedup();
        self.secret_lines = u32::try_from(lines.len()).unwrap_or(u32::MAX);
        self
    }
}

impl ContentEngine {
    pub fn new(rules: Vec<ContentRule>) -> Result<ContentEngine, RuleError> {
        if rules.len() > MAX_RULES {
            return Err(RuleError::new(format!(
                "too many content rules: {}, the built-in ones included (at most {MAX_RULES})",
                rules.len()
            )));
        }
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut owners: Vec<u128> = Vec::new();
        let mut unanchored = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.keywords.is_empty() {
                unanchored.push(i);
            }
            for k in &r.keywords {
                let word = k.to_ascii_lowercase().into_bytes();
                match words.iter().position(|w| *w == word) {
                    Some(at) => owners[at] |= 1u128 << i,
                    None => {
                        words.push(word);
                        owners.push(1u128 << i);
                    }
                }
            }
        }
        let mut h = Sha256::new();
        h.update(b"guard content rules v1\0");
        for r in &rules {
            for part in [
                r.id.as_bytes(),
                r.pattern.as_bytes(),
                format!("{:?}{}", r.kind, r.hide_file).as_bytes(),
            ] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            for k in &r.keywords {
                h.update((k.len() as u64).to_le_bytes());
                h.update(k.as_bytes());
            }
        }
        let regexes = rules.iter().map(|_| OnceLock::new()).collect();
        let assignment = rules
            .iter()
            .position(|r| r.kind == Kind::Assignment && r.pattern.starts_with(ASSIGNMENT_NAME));
        Ok(ContentEngine {
            assignment,
            anchored: OnceLock::new(),
            rules,
            keywords: OnceLock::new(),
            words,
            owners,
            unanchored,
            regexes,
            pem_end: OnceLock::new(),
            fingerprint: h.finalize().into(),
        })
    }

    /// Leftmost-longest, non-overlapping: one fast pass. A hit on a keyword
    /// also triggers the rules of every keyword that could hide inside or
    /// overlap it (see `keyword_masks`), so no rule loses a line to another's
    /// longer match. Case-insensitive by running over a lowercased copy: a
    /// case-sensitive DFA is several times faster than an
    /// ASCII-case-insensitive one.
    fn keyword_automaton(&self) -> Result<Option<&Keywords>, RuleError> {
        let built = self.keywords.get_or_init(|| {
            if self.words.is_empty() {
                return Ok(None);
            }
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                // A DFA: with its prefilter an NFA is as fast for up to 64 words,
                // but past that (the built-in rules have more) the crate drops
                // the prefilter and the NFA is 3-4x slower than the DFA
                // (measured over the bench tree's text: 283 ms against 84 ms
                // for 45 MB; building costs ~0.2 ms more, once per run that
                // reads any file).
                .kind(Some(AhoCorasickKind::DFA))
                .build(&self.words)
                .map(|automaton| {
                    Some(Keywords {
                        automaton,
                        rules: keyword_masks(&self.words, &self.owners),
                        gates: self.gates(),
                    })
                })
                .map_err(|e| format!("cannot build the keyword automaton: {e}"))
        });
        match built {
            Ok(ac) => Ok(ac.as_ref()),
            Err(e) => Err(RuleError::new(e.clone())),
        }
    }

    pub fn rules(&self) -> &[ContentRule] {
        &self.rules
    }

    /// Each keyword's gate and the rules it holds back: the assignment
    /// rule on a [`CAMEL_KEY`] word, the `Default` rules on a
    /// [`DEFAULT_KEYWORDS`] word.
    fn gates(&self) -> Vec<(Gate, u128)> {
        let assign = self.assignment.map_or(0, |g| 1u128 << g);
        let defaults = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == Kind::Default)
            .fold(0u128, |m, (i, _)| m | 1u128 << i);
        self.words
            .iter()
            .zip(&self.owners)
            .map(|(w, &owners)| {
                if CAMEL_KEY.contains(&w.as_slice()) {
                    (Gate::CamelKey, assign)
                } else if DEFAULT_KEYWORDS
                    .iter()
                    .any(|k| k.as_bytes() == w.as_slice())
                {
                    (Gate::Leading, owners & defaults)
                } else {
                    (Gate::Open, 0)
                }
            })
            .collect()
    }

    pub fn rule_id(&self, idx: u16) -> &str {
        self.rules
            .get(idx as usize)
            .map_or("unknown", |r| r.id.as_str())
    }

    /// The ids of the rules behind `findings`, sorted, each once.
    pub fn rule_ids(&self, findings: &[Finding]) -> Vec<String> {
        let mut ids: Vec<String> = findings
            .iter()
            .map(|f| self.rule_id(f.rule).to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Identifies the rule set; a cache built with other rules is discarded.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    fn compiled(&self, i: usize) -> Result<&Compiled, RuleError> {
        let slot = self.regexes[i].get_or_init(|| Compiled::new(&self.rules[i].pattern));
        slot.as_ref().map_err(|e| {
            RuleError::new(format!(
                "content rule {:?} does not compile: {e}",
                self.rules[i].id
            ))
        })
    }

    fn pem_end(&self) -> Result<&Regex, RuleError> {
        let slot = self
            .pem_end
            .get_or_init(|| compile(PEM_END).map_err(|e| e.to_string()));
        slot.as_ref()
            .map_err(|e| RuleError::new(format!("PEM end pattern does not compile: {e}")))
    }

    /// Find every secret in `content`.
    pub fn scan(&self, content: &[u8]) -> Result<ContentScan, RuleError> {
        self.scan_with(content, &mut Scratch::default())
    }

    /// Size `scratch` for these rules; the assignment rule's bit.
    fn prepare(&self, scratch: &mut Scratch) -> u128 {
        if scratch.regexes.len() != self.rules.len() + 1 {
            scratch.regexes = vec![None; self.rules.len() + 1];
        }
        self.assignment.map_or(0, |g| 1u128 << g)
    }

    /// Scan binary data (see `scan::searchable_binary`): strings there run
    /// together (an SQLite row stores `github` and the token after it with
    /// nothing between), so each rule a keyword triggers is tried from the
    /// keyword itself, where a leading `\b` holds. Only rules of a token's
    /// own format count: the assignment rule is not run.
    pub fn scan_binary(
        &self,
        content: &[u8],
        scratch: &mut Scratch,
    ) -> Result<ContentScan, RuleError> {
        let mut found: Vec<Raw> = Vec::new();
        let assign_bit = self.prepare(scratch);
        let mut lower = std::mem::take(&mut scratch.lower);
        lower.clear();
        lower.extend(content.iter().map(u8::to_ascii_lowercase));
        if let Some(kw) = self.keyword_automaton()? {
            for m in kw.automaton.find_iter(&lower) {
                let mask = kw.rules[m.pattern().as_usize()] & !assign_bit;
                let end = line_end(content, m.start());
                self.scan_line(content, m.start(), end, mask, scratch, &mut found)?;
            }
        }
        scratch.lower = lower;
        for &i in &self.unanchored {
            self.apply_rule(i, content, 0, content.len(), scratch, &mut found)?;
        }
        found.retain(|r| {
            !matches!(
                self.rules[r.rule].kind,
                Kind::Assignment | Kind::Tagged | Kind::NameValue | Kind::Default
            )
        });
        Ok(finish(content, found))
    }

    /// [`scan`](Self::scan) with reusable per-thread memory.
    pub fn scan_with(
        &self,
        content: &[u8],
        scratch: &mut Scratch,
    ) -> Result<ContentScan, RuleError> {
        let mut found: Vec<Raw> = Vec::new();
        let assign_bit = self.prepare(scratch);
        let mut last_ident = usize::MAX;
        let mut lower = std::mem::take(&mut scratch.lower);
        lower.clear();
        lower.extend(content.iter().map(u8::to_ascii_lowercase));
        // A short input (an environment value: several on every start) is
        // first searched for each keyword directly; when it holds none, the
        // automaton would find nothing, and need not be built (~0.2 ms).
        let may_match = self.keywords.get().is_some()
            || content.len() > SHORT
            || self.words.iter().any(|w| contains(&lower, w));
        let automaton = if may_match {
            self.keyword_automaton()?
        } else {
            None
        };
        if let Some(kw) = automaton {
            // Group keyword hits by line; a line's rule set is a bitmask.
            let mut line: Option<(usize, usize, u128)> = None;
            for m in kw.automaton.find_iter(&lower) {
                let p = m.pattern().as_usize();
                let mut rules = kw.rules[p];
                let (gate, held) = kw.gates[p];
                let open = match gate {
                    Gate::Open => true,
                    Gate::CamelKey => camel_key(content, m.start()),
                    Gate::Leading => leading(content, m.start()),
                };
                if !open {
                    rules &= !held;
                    if rules == 0 {
                        continue;
                    }
                }
                let (line_start, line_end) = match &mut line {
                    Some((s, e, mask)) if m.start() < *e => {
                        *mask |= rules & !assign_bit;
                        (*s, *e)
                    }
                    _ => {
                        if let Some((s, e, mask)) = line.take() {
                            self.scan_line(content, s, e, mask, scratch, &mut found)?;
                        }
                        let s = content[..m.start()]
                            .iter()
                            .rposition(|&b| b == b'\n')
                            .map_or(0, |p| p + 1);
                        let e = line_end(content, m.start());
                        line = Some((s, e, rules & !assign_bit));
                        (s, e)
                    }
                };
                if rules & assign_bit != 0 {
                    let at = ident_start(content, line_start, m.start());
                    if at != last_ident {
                        last_ident = at;
                        self.assignment_at(content, at, line_end, scratch, &mut found)?;
                    }
                }
            }
            if let Some((s, e, mask)) = line {
                self.scan_line(content, s, e, mask, scratch, &mut found)?;
            }
        }
        scratch.lower = lower;
        for &i in &self.unanchored {
            self.apply_rule(i, content, 0, content.len(), scratch, &mut found)?;
        }
        Ok(finish(content, found))
    }

    /// The assignment rule, anchored at byte `at` (the start of a name that
    /// holds a keyword), up to the end of its line.
    fn assignment_at(
        &self,
        content: &[u8],
        at: usize,
        end: usize,
        scratch: &mut Scratch,
        out: &mut Vec<Raw>,
    ) -> Result<(), RuleError> {
        let Some(g) = self.assignment else {
            return Ok(());
        };
        let slot = self.rules.len();
        if scratch.regexes[slot].is_none() {
            let c = self
                .anchored
                .get_or_init(|| Compiled::new(&format!("^(?:{})", self.rules[g].pattern)))
                .as_ref()
                .map_err(|e| RuleError::new(format!("assignment rule does not compile: {e}")))?
                .clone();
            let locs = c.re.capture_locations();
            scratch.regexes[slot] = Some((c, locs));
        }
        let Some((c, locs)) = scratch.regexes[slot].as_mut() else {
            return Ok(());
        };
        let hay = &content[at..end];
        let typed = |out: &mut Vec<Raw>| {
            if let Some((s, e)) = typed_secret(hay) {
                out.push(Raw {
                    rule: g,
                    start: at + s,
                    end: at + e,
                });
            }
        };
        let Some(m) = c.re.find(hay) else {
            match assigned_at(hay)
                .and_then(|(name, v)| {
                    quoted_secret(hay, name, v)
                        .or_else(|| credential_pair(hay, name, v))
                        .map(|(s, e)| (at + s, at + e))
                        .or_else(|| yaml_block_secret(content, at, end, name, v))
                })
                .or_else(|| pair_secret(content, at).map(|(s, e)| (at + s, at + e)))
            {
                Some((start, end)) => out.push(Raw {
                    rule: g,
                    start,
                    end,
                }),
                None => typed(out),
            }
            return Ok(());
        };
        if (code_follows(&hay[m.end()..]) && !quoted(&hay[m.range()]))
            || c.re.captures_read(locs, hay).is_none()
        {
            typed(out);
            return Ok(());
        }
        let (Some((ns, ne)), Some((vs, ve))) = (
            c.name.and_then(|i| locs.get(i)),
            c.secret.and_then(|i| locs.get(i)),
        ) else {
            return Ok(());
        };
        if let Some(e) = assignment_secret(hay, &hay[ns..ne], vs, ve) {
            out.push(Raw {
                rule: g,
                start: at + vs,
                end: at + e,
            });
        }
        Ok(())
    }

    fn scan_line(
        &self,
        content: &[u8],
        s: usize,
        e: usize,
        mask: u128,
        scratch: &mut Scratch,
        out: &mut Vec<Raw>,
    ) -> Result<(), RuleError> {
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            self.apply_rule(i, content, s, e, scratch, out)?;
            if self.rules[i].kind == Kind::PemBlock {
                // The block's end lies on a later line (or the same line, in
                // a JSON string); extend each BEGIN match to it.
                let end_re = self.pem_end()?;
                for r in out
                    .iter_mut()
                    .filter(|r| r.rule == i && r.start >= s && r.end <= e)
                {
                    r.end = end_re
                        .find(&content[r.start..])
                        .map_or(content.len(), |m| r.start + m.end());
                }
            }
        }
        Ok(())
    }

    /// Run rule `i` over bytes `s..e` of `content`.
    fn apply_rule(
        &self,
        i: usize,
        content: &[u8],
        s: usize,
        e: usize,
        scratch: &mut Scratch,
        out: &mut Vec<Raw>,
    ) -> Result<(), RuleError> {
        let rule = &self.rules[i];
        if scratch.regexes[i].is_none() {
            let c = self.compiled(i)?.clone();
            let locs = c.re.capture_locations();
            scratch.regexes[i] = Some((c, locs));
        }
        let Some((c, locs)) = scratch.regexes[i].as_mut() else {
            return Ok(());
        };
        let (hay, base) = (&content[s..e], s);
        let mut at = 0;
        while at < hay.len() {
            let Some(m) = c.re.find_at(hay, at) else {
                break;
            };
            at = m.end().max(m.start() + 1);
            // An assignment followed by `(`, `<`, `[`… is code: skip the
            // costlier capture step (most candidate lines end here).
            if rule.kind == Kind::Assignment
                && code_follows(&hay[m.end()..])
                && !quoted(&hay[m.range()])
            {
                continue;
            }
            if c.re.captures_read_at(locs, hay, m.start()).is_none() {
                continue;
            }
            let Some(whole) = locs.get(0) else { continue };
            if rule.kind == Kind::OptionValue {
                if let Some((ns, ne)) = c.name.and_then(|g| locs.get(g))
                    && let Some((vs, ve)) = option_value(content, base + ne)
                    && let Some(len) = assigned_secret(&hay[ns..ne], &content[vs..ve])
                {
                    out.push(Raw {
                        rule: i,
                        start: vs,
                        end: vs + len,
                    });
                }
                continue;
            }
            if rule.kind == Kind::KubeSecret {
                for (start, end) in kube_secret_values(content, base + whole.0) {
                    out.push(Raw {
                        rule: i,
                        start,
                        end,
                    });
                }
                continue;
            }
            let (vs, ve) = c.secret.and_then(|g| locs.get(g)).unwrap_or(whole);
            let value = &hay[vs..ve];
            let keep = match rule.kind {
                Kind::Token | Kind::Marker | Kind::KubeSecret | Kind::OptionValue => {
                    Some(value.len())
                }
                Kind::PemBlock => pem_body_follows(&content[s + whole.1..]).then_some(value.len()),
                Kind::RandomToken => plausible_token(value).then_some(value.len()),
                Kind::UriPassword => uri_password(value).then_some(value.len()),
                Kind::Password => plausible_secret(value).then_some(value.len()),
                Kind::Tagged => c
                    .name
                    .and_then(|g| locs.get(g))
                    .and_then(|(ns, ne)| assigned_secret(&hay[ns..ne], value)),
                Kind::Assignment => c
                    .name
                    .and_then(|g| locs.get(g))
                    .and_then(|(ns, ne)| assignment_secret(hay, &hay[ns..ne], vs, ve))
                    .map(|e| e - vs),
                Kind::NameValue => sibling_name(content, base + whole.0)
                    .and_then(|name| assignment_secret(hay, name, vs, ve))
                    .map(|e| e - vs),
                Kind::Default => default_owner(content, base, base + whole.0)
                    .and_then(|name| assignment_secret(hay, name, vs, ve))
                    .map(|e| e - vs),
            };
            if let Some(len) = keep {
                out.push(Raw {
                    rule: i,
                    start: base + vs,
                    end: base + vs + len,
                });
            }
        }
        Ok(())
    }
}

/// The end of the line holding byte `at` (its newline, or the end).
fn line_end(content: &[u8], at: usize) -> usize {
    content[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(content.len(), |p| at + p)
}

/// Where the name holding the keyword at `kw` starts: back over name
/// characters (at most 80, the rule's limit), then forward to a letter or
/// `_` (a name cannot start with a digit, `.` or `-`), into the keyword
/// when it starts with a `-` (`--auth-token=…` hit by `-auth`).
fn ident_start(content: &[u8], line_start: usize, kw: usize) -> usize {
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let floor = kw.saturating_sub(80).max(line_start);
    let mut at = kw;
    while at > floor && name_char(content[at - 1]) {
        at -= 1;
    }
    while at < (kw + 1).min(content.len())
        && !(content[at].is_ascii_alphabetic() || content[at] == b'_')
    {
        at += 1;
    }
    at
}

/// For each keyword, the rules its hit triggers: its own, and those of
/// every keyword that a leftmost-longest search could skip because of it
/// (one inside it, or one starting inside it and running past its end).
fn keyword_masks(words: &[Vec<u8>], owners: &[u128]) -> Vec<u128> {
    words
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut mask = owners[i];
            for (j, b) in words.iter().enumerate() {
                let inside = !b.is_empty() && a.windows(b.len()).any(|w| w == b.as_slice());
                let overlaps = (1..a.len().min(b.len())).any(|n| a[a.len() - n..] == b[..n]);
                if inside || overlaps {
                    mask |= owners[j];
                }
            }
            mask
        })
        .collect()
}

/// Inputs up to this size are searched for keywords without the automaton
/// while it is not built.
const SHORT: usize = 4096;

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    match needle.first() {
        None => true,
        Some(&b) => hay.windows(needle.len()).any(|w| w[0] == b && w == needle),
    }
}

/// What follows an assignment's value shows it was code: a call, a generic
/// or an index (`x(`, `Vec<`, `a[`), or a type annotation (`name: Type =`).
fn code_follows(rest: &[u8]) -> bool {
    if let Some(b'(' | b'<' | b'[' | b'{') = rest.first() {
        return true;
    }
    let trimmed = rest.trim_ascii_start();
    trimmed.first() == Some(&b'=') && !matches!(trimmed.get(1), Some(b'=' | b'>'))
}

/// `name <sep>` at the start of `hay` (a key's closing quote or bracket
/// and blanks around the separator allowed): the name's length and where
/// its value starts. Most lines the regex misses are code
/// (`password_hash(&x)`) and end here.
fn assigned_at(hay: &[u8]) -> Option<(usize, usize)> {
    let name = hay
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))?;
    let mut i = name;
    while i < name + 4 && matches!(hay.get(i), Some(b'\\' | b'"' | b'\'' | b']')) {
        i += 1;
    }
    while matches!(hay.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i += match (hay.get(i)?, hay.get(i + 1)) {
        // A comparison (`token == "…"`) is no assignment.
        (b'=', Some(b'=')) => return None,
        (b'=', Some(b'>')) | (b':', Some(b'=')) => 2,
        // Ruby's and JavaScript's `ENV['X'] ||= "…"`, `x ??= "…"`.
        (b'|', Some(b'|')) | (b'?', Some(b'?')) if hay.get(i + 2) == Some(&b'=') => 3,
        (b'=' | b':', _) => 1,
        _ => return None,
    };
    while matches!(hay.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    Some((name, i))
}

/// A quoted value the regex does not match at all, because it starts
/// with, or holds within its first six characters, what ends an unquoted
/// value (`"!Xk9…"`, `'ab&…'`): the value at `v` of the name `hay[..name]`,
/// judged whole (as in [`assignment_secret`], not code or a template).
fn quoted_secret(hay: &[u8], name: usize, v: usize) -> Option<(usize, usize)> {
    let open = if hay.get(v) == Some(&b'\\') { v + 1 } else { v };
    if !matches!(hay.get(open), Some(b'"' | b'\'' | b'`')) {
        return None;
    }
    let vs = open + 1;
    let q = closing_quote(hay, vs, vs)?;
    let value = &hay[vs..q];
    if code_or_template(value) {
        return None;
    }
    escaped_secret(&hay[..name], value).map(|len| (vs, vs + len))
}

/// `name = ("user", "password")` (or `[…]`): a user and password pair
/// given to a secret-sounding name (`auth=("ci", "…")` in a `requests`
/// call, `credentials = ["ci", "…"]`). The password's range in `hay`,
/// where `name` is the name's length and `v` where its value starts.
fn credential_pair(hay: &[u8], name: usize, v: usize) -> Option<(usize, usize)> {
    let close = match hay.get(v)? {
        b'(' => b')',
        b'[' => b']',
        _ => return None,
    };
    let blank = |i: usize| {
        i + hay[i..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count()
    };
    let string = |i: usize| -> Option<(usize, usize)> {
        if !matches!(hay.get(i), Some(b'"' | b'\'')) {
            return None;
        }
        Some((i + 1, closing_quote(hay, i + 1, i + 1)?))
    };
    let (_, user_end) = string(blank(v + 1))?;
    let comma = blank(user_end + 1);
    if hay.get(comma) != Some(&b',') {
        return None;
    }
    let (vs, ve) = string(blank(comma + 1))?;
    if hay.get(blank(ve + 1)) != Some(&close) {
        return None;
    }
    let value = &hay[vs..ve];
    if code_or_template(value) {
        return None;
    }
    escaped_secret(&hay[..name], value).map(|len| (vs, vs + len))
}

/// `"NAME", "value"` at `at` (the name's first byte): two string
/// arguments of a call, the first a secret-sounding name and the second its
/// value (`os.getenv("API_KEY", "…")`, `os.environ.setdefault`, Go's
/// `os.Setenv`, Java's `System.setProperty`, Ruby's `ENV.fetch`, a
/// header's `put("X-Api-Key", "…")`). The value's range, from `at`.
fn pair_secret(content: &[u8], at: usize) -> Option<(usize, usize)> {
    let q = *content.get(at.checked_sub(1)?)?;
    if !matches!(q, b'"' | b'\'') {
        return None;
    }
    // PHP's `define('NAME', '…')` is the `php-define-secret` rule's.
    let before = content[..at - 1].trim_ascii_end();
    if let Some(call) = before.strip_suffix(b"(") {
        let call = call.trim_ascii_end();
        let word = &call[call.len().saturating_sub(6)..];
        if word.eq_ignore_ascii_case(b"define") {
            return None;
        }
    }
    let hay = &content[at..line_end(content, at)];
    let name = hay
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))?;
    if hay[name] != q {
        return None;
    }
    let blank = |i: usize| {
        i + hay[i..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count()
    };
    let comma = blank(name + 1);
    if hay.get(comma) != Some(&b',') {
        return None;
    }
    let open = blank(comma + 1);
    if !matches!(hay.get(open), Some(b'"' | b'\'')) {
        return None;
    }
    let vs = open + 1;
    let close = closing_quote(hay, vs, vs)?;
    let value = &hay[vs..close];
    if code_or_template(value) {
        return None;
    }
    escaped_secret(&hay[..name], value).map(|len| (vs, vs + len))
}

/// `name: Type = "value"` (TypeScript, Kotlin, Swift, Rust, Python) or
/// `name Type = "value"` (Go) at the start of `hay`: a declaration whose
/// type stands between the name and the literal, which the regex reads as
/// the type assigned (code). The quoted literal, judged as the name's value
/// is (not code or a template).
fn typed_secret(hay: &[u8]) -> Option<(usize, usize)> {
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    // The `=` and the quote after it first: most lines tried here are an
    // assignment of code (`let token_count = tokens.len();`) and end there.
    // Within a name (81), a type (64) and blanks: not along a long line.
    let eq = hay[..hay.len().min(160)].iter().position(|&b| b == b'=')?;
    if matches!(hay.get(eq + 1), Some(b'=' | b'>')) {
        return None;
    }
    let mut open = eq + 1 + hay[eq + 1..].iter().take_while(|b| blank(b)).count();
    // A byte-string prefix (`b"…"`).
    if hay.get(open) == Some(&b'b') {
        open += 1;
    }
    if !matches!(hay.get(open), Some(b'"' | b'\'' | b'`')) {
        return None;
    }
    let name = hay[..eq]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))?;
    let mut ty = name + hay[name..eq].iter().take_while(|b| blank(b)).count();
    if hay[ty] == b':' {
        ty += 1;
        ty += hay[ty..eq].iter().take_while(|b| blank(b)).count();
    } else if ty == name {
        return None;
    }
    // The type (`&'static str`, `Option<String>`, `[u8; 32]`, `*C.char`),
    // blanks before the `=` aside.
    let type_char = |b: &u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'_' | b'&'
                    | b'\''
                    | b'<'
                    | b'>'
                    | b'['
                    | b']'
                    | b'.'
                    | b'*'
                    | b';'
                    | b'?'
                    | b' '
                    | b'\t'
            )
    };
    let first = hay.get(ty)?;
    if eq - ty > 64
        || !(first.is_ascii_alphabetic() || matches!(first, b'&' | b'[' | b'*'))
        || !hay[ty..eq].iter().all(type_char)
    {
        return None;
    }
    let vs = open + 1;
    let q = closing_quote(hay, vs, vs)?;
    let value = &hay[vs..q];
    if code_or_template(value) {
        return None;
    }
    escaped_secret(&hay[..name], value).map(|len| (vs, vs + len))
}

/// The value given to an option that ends at `at`: after a blank
/// (`--token VALUE`), or as the next element of a list (`"--token",
/// "VALUE"`), on the same line or the next (a pretty-printed JSON array,
/// a YAML sequence, a shell line continued with `\`). `--token=VALUE` is
/// the assignment rule's.
fn option_value(content: &[u8], at: usize) -> Option<(usize, usize)> {
    let blank = |b: u8| b == b' ' || b == b'\t';
    let mut i = at;
    let quoted = matches!(content.get(i), Some(b'"' | b'\''));
    // Whether the value may be on the next line: after a list's comma, or
    // a shell line's `\`; else only as a YAML sequence's next item.
    let mut continued = false;
    if quoted {
        i += 1;
        while content.get(i).is_some_and(|&b| blank(b)) {
            i += 1;
        }
        if content.get(i) == Some(&b',') {
            i += 1;
            continued = true;
        }
    } else if !content
        .get(i)
        .is_none_or(|&b| blank(b) || b == b'\r' || b == b'\n')
    {
        return None;
    }
    while content.get(i).is_some_and(|&b| blank(b)) {
        i += 1;
    }
    if !quoted && content.get(i) == Some(&b'\\') {
        i += 1;
        continued = true;
    }
    if content.get(i) == Some(&b'\r') {
        i += 1;
    }
    if content.get(i) == Some(&b'\n') {
        i += 1;
        while content.get(i).is_some_and(|&b| blank(b)) {
            i += 1;
        }
        // A YAML sequence item.
        if content.get(i) == Some(&b'-') && content.get(i + 1).is_some_and(|&b| blank(b)) {
            i += 2;
            while content.get(i).is_some_and(|&b| blank(b)) {
                i += 1;
            }
        } else if !continued {
            return None;
        }
    }
    if matches!(content.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let start = i;
    if matches!(content.get(i), Some(b'-' | b'$') | None) {
        return None;
    }
    while content.get(i).is_some_and(|&b| {
        !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\'' | b'`' | b',' | b';' | b']' | b')')
    }) {
        i += 1;
    }
    (i > start).then_some((start, i))
}

/// The name given by the `name` or `key` key (`Name`, `ParameterKey`…)
/// just before the `value` key at `at`, on its line or the line before:
/// `{"name": "API_TOKEN", "value": …}`, a Kubernetes env entry (`- name:
/// API_TOKEN` over `value: …`), an API client's `{"key": "token", "value":
/// …}`. Only quotes, commas and blanks may stand between the two.
fn sibling_name(content: &[u8], at: usize) -> Option<&[u8]> {
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let mut i = at;
    let mut newlines = 0;
    while i > 0
        && matches!(
            content[i - 1],
            b'"' | b'\'' | b',' | b' ' | b'\t' | b'\r' | b'\n'
        )
    {
        newlines += usize::from(content[i - 1] == b'\n');
        i -= 1;
    }
    let end = i;
    while i > 0 && end - i < 96 && name_char(content[i - 1]) {
        i -= 1;
    }
    let name = &content[i..end];
    if newlines > 1 || name.is_empty() {
        return None;
    }
    // `key": "` or `name: ` before the name.
    if matches!(i.checked_sub(1).map(|p| content[p]), Some(b'"' | b'\'')) {
        i -= 1;
    }
    while i > 0 && matches!(content[i - 1], b' ' | b'\t') {
        i -= 1;
    }
    if i == 0 || content[i - 1] != b':' {
        return None;
    }
    i -= 1;
    while i > 0 && matches!(content[i - 1], b' ' | b'\t' | b'"' | b'\'') {
        i -= 1;
    }
    let key = &content[..i];
    let ends =
        |w: &[u8]| key.len() >= w.len() && key[key.len() - w.len()..].eq_ignore_ascii_case(w);
    (ends(b"name") || ends(b"key")).then_some(name)
}

/// The name whose default is set at byte `at` of the line starting at
/// `line`: declared before it on its line (`variable "x" { default = …`,
/// `"DbPassword": {"Default": …`, `add_argument("--token", default=…)`),
/// or else by the nearest line above indented less (the block or key the
/// default belongs to: `variable "db_password" {`, a CloudFormation
/// parameter's `DbPassword:`, a GitHub Actions input's `deploy_token:`).
fn default_owner(content: &[u8], line: usize, at: usize) -> Option<&[u8]> {
    let before = &content[line..at];
    if !before.trim_ascii().is_empty() {
        return declared_name(before);
    }
    let blanks = |l: &[u8]| l.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let indent = blanks(&content[line..]);
    let mut end = line;
    // Within a block's length: a `default` far below any name has none.
    for _ in 0..64 {
        if end == 0 {
            return None;
        }
        let start = content[..end - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let prev = &content[start..end - 1];
        let t = prev.trim_ascii();
        if !(t.is_empty() || t.starts_with(b"#") || t.starts_with(b"//")) && blanks(prev) < indent {
            return declared_name(prev);
        }
        end = start;
    }
    None
}

/// The name a line declares: an HCL block's label (`variable "x" {`), a
/// command-line option (`("--api-token", …`), or a key (`"x": {`, `x:`,
/// `- x:`).
fn declared_name(line: &[u8]) -> Option<&[u8]> {
    let name_len = |s: &[u8]| {
        s.iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            .count()
    };
    let t = line.trim_ascii_start();
    let t = t.strip_prefix(b"- ").unwrap_or(t);
    if let Some(rest) = t
        .strip_prefix(b"variable")
        .filter(|r| matches!(r.first(), Some(b' ' | b'\t')))
    {
        let rest = rest.trim_ascii_start();
        let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
        let n = name_len(rest);
        return (n > 0).then(|| &rest[..n]);
    }
    if let Some(p) = line.windows(3).position(|w| matches!(w, b"\"--" | b"'--")) {
        let rest = &line[p + 3..];
        let n = name_len(rest);
        return (n > 0).then(|| &rest[..n]);
    }
    let quoted = matches!(t.first(), Some(b'"' | b'\''));
    let key = if quoted { &t[1..] } else { t };
    let n = name_len(key);
    let mut after = &key[n..];
    if quoted {
        after = after.strip_prefix(&t[..1]).unwrap_or(after);
    }
    (n > 0 && after.trim_ascii_start().starts_with(b":")).then(|| &key[..n])
}

/// The values of the `data` and `stringData` maps of the Kubernetes
/// Secret whose `kind: Secret` starts at `at`: in YAML (see
/// [`kube_yaml_secret_values`]) or, when `at` is a quote, in JSON (see
/// [`kube_json_secret_values`]).
fn kube_secret_values(content: &[u8], at: usize) -> Vec<(usize, usize)> {
    let mut out = if content.get(at) == Some(&b'"') {
        kube_json_secret_values(content, at)
    } else {
        kube_yaml_secret_values(content, at)
    };
    // An empty value, or a template (a Helm chart's `{{ .Values.x }}`).
    out.retain(|&(s, e)| s < e && !contains(&content[s..e], b"{{"));
    out
}

/// The column a YAML line's key starts at, past its indentation and a
/// sequence entry's `- `, and whether the line starts such an entry.
fn yaml_key_column(line: &[u8]) -> (usize, bool) {
    let indent = line.iter().take_while(|&&b| b == b' ').count();
    match line.get(indent..indent + 2) {
        Some(b"- " | b"-\t") => {
            let after = line[indent + 1..]
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            (indent + 1 + after, true)
        }
        _ => (indent, false),
    }
}

/// The YAML form of [`kube_secret_values`]. The Secret is its document
/// (between `---` lines; `kubectl get -o yaml` writes `data:` before
/// `kind:`) when `kind:` starts a line, or the sequence entry holding a
/// `kind: Secret` indented to its keys (an item of a `kind: List`, as
/// `kubectl get secrets -o yaml` writes, or of an OpenShift template's
/// `objects:`). Every value of its `data:` and `stringData:` maps counts,
/// whatever its key; a block scalar's value (`config.yaml: |`) is its
/// indented lines.
fn kube_yaml_secret_values(content: &[u8], at: usize) -> Vec<(usize, usize)> {
    let separator = |l: &[u8]| l.starts_with(b"---") && l[3..].trim_ascii().is_empty();
    let blank = |l: &[u8]| {
        let t = l.trim_ascii();
        t.is_empty() || t.starts_with(b"#")
    };
    let kind_line = &content[at..line_end(content, at)];
    // The column of the Secret's keys.
    let (base, mut entry) = yaml_key_column(kind_line);
    // Back to the document's start or the entry's `- ` line.
    let mut start = at;
    while start > 0 && !entry {
        let prev = content[..start - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line = &content[prev..start - 1];
        if separator(line) {
            break;
        }
        if !blank(line) {
            let (col, dash) = yaml_key_column(line);
            if col < base {
                break;
            }
            entry = dash && col == base;
        }
        start = prev;
    }
    // An indented `kind: Secret` outside a sequence entry is some other
    // object's field (a template, a document about Secrets).
    if base > 0 && !entry {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut in_map, mut entry_col) = (false, None);
    let mut block: Option<(usize, usize, usize)> = None;
    let mut pos = start;
    while pos < content.len() {
        let le = line_end(content, pos);
        let line = &content[pos..le];
        let next = le + 1;
        if separator(line) {
            break;
        }
        if blank(line) {
            pos = next;
            continue;
        }
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        // A block scalar's lines: deeper than its key.
        if let Some((key_col, first, _)) = block {
            if indent > key_col {
                let body = line[indent..].trim_ascii_end();
                let first = if first == usize::MAX {
                    pos + indent
                } else {
                    first
                };
                block = Some((key_col, first, pos + indent + body.len()));
                pos = next;
                continue;
            }
            if let Some((_, first, last)) = block.take() {
                out.push((first, last));
            }
        }
        let (col, dash) = yaml_key_column(line);
        // Past the Secret: a line left of its keys, or the next entry.
        if pos != start && (col < base || (dash && col == base)) {
            break;
        }
        let body = line[col..].trim_ascii_end();
        if col == base {
            in_map = matches!(body, b"data:" | b"stringData:");
            entry_col = None;
        } else if in_map && entry_col.is_none_or(|i| i == col) {
            entry_col = Some(col);
            let colon = body
                .windows(2)
                .position(|w| w == b": ")
                .or_else(|| body.ends_with(b":").then(|| body.len() - 1));
            if let Some(colon) = colon {
                let raw = &body[colon + 1..];
                let lead = raw.len() - raw.trim_ascii_start().len();
                let value = raw.trim_ascii();
                let vs = pos + col + colon + 1 + lead;
                if matches!(value.first(), Some(b'|' | b'>')) {
                    block = Some((col, usize::MAX, 0));
                } else {
                    let quoted = value.len() >= 2
                        && matches!(value[0], b'"' | b'\'')
                        && value.last() == Some(&value[0]);
                    let (vs, v) = if quoted {
                        (vs + 1, &value[1..value.len() - 1])
                    } else {
                        (vs, value)
                    };
                    out.push((vs, vs + v.len()));
                }
            }
        }
        pos = next;
    }
    if let Some((_, first, last)) = block {
        out.push((first, last));
    }
    out
}

/// How far [`kube_json_secret_values`] walks from a `"kind"` key, back to
/// its object's `{` and forward through the object.
const JSON_OBJECT_LIMIT: usize = 1 << 20;

/// The JSON form of [`kube_secret_values`] (`kubectl get secret -o json`,
/// each item of a `List`, a manifest kept as JSON): the string values of
/// the `data` and `stringData` objects of the object holding the `"kind"`
/// key at `at`, when that key is the object's own (an `involvedObject`
/// naming a Secret has no `data`).
fn kube_json_secret_values(content: &[u8], at: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let Some(open) = json_enclosing_object(content, at) else {
        return out;
    };
    let limit = content.len().min(open.saturating_add(JSON_OBJECT_LIMIT));
    let content = &content[..limit];
    // The object's members: `"key": value`, comma-separated.
    let mut i = open + 1;
    loop {
        i = json_skip_blank(content, i, true);
        if content.get(i) != Some(&b'"') {
            break;
        }
        let Some(key_end) = json_string_end(content, i) else {
            break;
        };
        let key = &content[i + 1..key_end];
        i = json_skip_blank(content, key_end + 1, false);
        if content.get(i) != Some(&b':') {
            break;
        }
        let v = json_skip_blank(content, i + 1, false);
        if matches!(key, b"data" | b"stringData") && content.get(v) == Some(&b'{') {
            // Its members' string values.
            let mut j = v + 1;
            loop {
                j = json_skip_blank(content, j, true);
                if content.get(j) != Some(&b'"') {
                    break;
                }
                let Some(k_end) = json_string_end(content, j) else {
                    break;
                };
                j = json_skip_blank(content, k_end + 1, false);
                if content.get(j) != Some(&b':') {
                    break;
                }
                j = json_skip_blank(content, j + 1, false);
                if content.get(j) == Some(&b'"')
                    && let Some(end) = json_string_end(content, j)
                {
                    out.push((j + 1, end));
                }
                match json_skip_value(content, j) {
                    Some(next) => j = next,
                    None => break,
                }
            }
        }
        match json_skip_value(content, v) {
            Some(next) => i = next,
            None => break,
        }
    }
    out
}

/// The `{` opening the JSON object that holds byte `at` (outside strings),
/// looking back at most [`JSON_OBJECT_LIMIT`] bytes.
fn json_enclosing_object(content: &[u8], at: usize) -> Option<usize> {
    let floor = at.saturating_sub(JSON_OBJECT_LIMIT);
    let escaped = |i: usize| {
        content[floor..i]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count()
            % 2
            == 1
    };
    let mut depth = 0usize;
    let mut i = at;
    while i > floor {
        i -= 1;
        match content[i] {
            b'"' if !escaped(i) => {
                // Back to the string's opening quote.
                loop {
                    if i <= floor {
                        return None;
                    }
                    i -= 1;
                    if content[i] == b'"' && !escaped(i) {
                        break;
                    }
                }
            }
            b'}' | b']' => depth += 1,
            b'[' if depth == 0 => return None,
            b'{' if depth == 0 => return Some(i),
            b'{' | b'[' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The index of the quote closing the JSON string opened at `at`.
fn json_string_end(content: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < content.len() {
        match content[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Past blanks (and commas, with `commas`) from `i`.
fn json_skip_blank(content: &[u8], mut i: usize, commas: bool) -> usize {
    while let Some(&b) = content.get(i) {
        if !(b.is_ascii_whitespace() || (commas && b == b',')) {
            break;
        }
        i += 1;
    }
    i
}

/// Past the JSON value that starts at `i`: a string, an object or array
/// (brackets matched, strings skipped), or a scalar.
fn json_skip_value(content: &[u8], i: usize) -> Option<usize> {
    match content.get(i)? {
        b'"' => json_string_end(content, i).map(|e| e + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < content.len() {
                match content[j] {
                    b'"' => j = json_string_end(content, j)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => Some(
            content[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .map_or(content.len(), |p| i + p),
        ),
    }
}

/// The value of a YAML block scalar assigned to the name at `at` (`key: |`
/// or `key: >-`, the value on the indented lines below), which the regex,
/// seeing one line, cannot reach. Judged as its lines joined, when each is
/// one unbroken word (a token or key wrapped over lines, not a script or
/// prose). `end` is the end of the name's line, `name` the name's length
/// and `v` where its value starts, both from `at`.
fn yaml_block_secret(
    content: &[u8],
    at: usize,
    end: usize,
    name: usize,
    v: usize,
) -> Option<(usize, usize)> {
    let (&indicator, flags) = content[at + v..end].trim_ascii_end().split_first()?;
    if !matches!(indicator, b'|' | b'>')
        || !flags.iter().all(|b| matches!(b, b'-' | b'+' | b'1'..=b'9'))
    {
        return None;
    }
    let name = &content[at..at + name];
    let line_start = content[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let base = content[line_start..at]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let mut joined = Vec::new();
    let (mut first, mut last) = (None, 0);
    let mut pos = end + 1;
    while pos < content.len() {
        let le = line_end(content, pos);
        let l = &content[pos..le];
        let indent = l.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        let body = l[indent..].trim_ascii_end();
        if !body.is_empty() {
            if indent <= base {
                break;
            }
            if body.iter().any(u8::is_ascii_whitespace) || joined.len() + body.len() > 4096 {
                return None;
            }
            first.get_or_insert(pos + indent);
            last = pos + indent + body.len();
            joined.extend_from_slice(body);
        }
        pos = le + 1;
    }
    let first = first?;
    assigned_secret(name, &joined)
        .filter(|&len| len == joined.len())
        .map(|_| (first, last))
}

/// Whether an assignment's match holds a quote (its value may be quoted).
fn quoted(m: &[u8]) -> bool {
    m.iter().any(|b| matches!(b, b'"' | b'\'' | b'`'))
}

/// Where the secret of an assignment whose value the regex found at
/// `vs..ve` of `hay` ends, if it is one. A quoted value runs to its closing
/// quote: the regex stops a value at what ends an unquoted one (`&`, `;`,
/// `,`, `(`, `<`, a space, another quote), and a generated password holds
/// such characters; redacting up to them left the rest readable. A value
/// that is a secret up to there is a secret to the quote; one that is not
/// is judged whole, unless it is code or a template (`"Shards[-1].Id"`,
/// `f"arn:{region}:…"`) or holds a blank (quoted prose, `"Error 401: bad
/// credentials"`, is no value).
fn assignment_secret(hay: &[u8], name: &[u8], vs: usize, ve: usize) -> Option<usize> {
    let close = closing_quote(hay, vs, ve);
    if close.is_none() && code_follows(&hay[ve..]) {
        return None;
    }
    let value = &hay[vs..ve];
    match (escaped_secret(name, value), close) {
        (Some(len), Some(q)) if len == value.len() => Some(q),
        (Some(len), _) => Some(vs + len),
        (None, Some(q)) if !code_follows(&hay[ve..]) && !code_or_template(&hay[vs..q]) => {
            escaped_secret(name, &hay[vs..q]).map(|len| vs + len)
        }
        (None, _) => None,
    }
}

/// [`assigned_secret`] of a value judged with its JSON `\uXXXX` escapes
/// decoded: an escape hides nothing from a program. One that decodes to
/// anything but printable ASCII is human text (`Mot\u00a0de\u00a0passe`),
/// not a generated secret.
fn escaped_secret(name: &[u8], value: &[u8]) -> Option<usize> {
    if !value.windows(2).any(|w| w == b"\\u") {
        return assigned_secret(name, value);
    }
    let mut decoded = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let escape = value[i..]
            .strip_prefix(b"\\u")
            .and_then(|h| h.get(..4))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u16::from_str_radix(h, 16).ok());
        match escape.map(u8::try_from) {
            Some(Ok(b @ 0x21..=0x7e)) => {
                decoded.push(b);
                i += 6;
            }
            Some(_) => return None,
            None => {
                decoded.push(value[i]);
                i += 1;
            }
        }
    }
    // Trailing colons are dropped one for one, past any escape.
    let len = assigned_secret(name, &decoded)?;
    Some(value.len() - (decoded.len() - len))
}

/// A quoted string that is no password even though the assignment rule
/// would take it whole: prose (a blank), a template (`{x}`, `$X`,
/// `<provider>`), an index, call or generic type (`Jobs[-1].JobId`,
/// `list[V1ObjectReference]`, `get(x)`), a version requirement
/// (`pyu2f>=0.1.5`).
fn code_or_template(v: &[u8]) -> bool {
    v.iter()
        .any(|b| b.is_ascii_whitespace() || matches!(b, b'{' | b'$'))
        || (v.first() == Some(&b'<') && v.last() == Some(&b'>'))
        || v.windows(2).any(|w| {
            (w[0].is_ascii_alphanumeric() || w[0] == b'_') && matches!(w[1], b'[' | b'(')
                || matches!(w, b">=" | b"<=" | b"~=")
        })
}

/// The offset of the quote closing the value at `vs..ve`, if a quote opens
/// it and closes it on the same line (within 4 KiB). An escaped opening
/// quote (`\"`, code inside a JSON string) is closed by an escaped one;
/// otherwise `\x` escapes are skipped.
fn closing_quote(hay: &[u8], vs: usize, ve: usize) -> Option<usize> {
    let q = *hay.get(vs.checked_sub(1)?)?;
    if !matches!(q, b'"' | b'\'' | b'`') {
        return None;
    }
    let escaped = vs >= 2 && hay[vs - 2] == b'\\';
    let limit = hay.len().min(vs + 4096);
    let mut i = ve;
    while i < limit {
        match hay[i] {
            b'\n' | b'\r' => return None,
            b'\\' if escaped && hay.get(i + 1) == Some(&q) => return Some(i),
            b'\\' if !escaped => i += 2,
            b if b == q && !escaped => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A PEM header is a key only when a base64 body follows it (a regex or a
/// doc mentioning the header is not): the next 40 characters of body, past
/// blank lines, `Proc-Type:`-style headers and `\n` escapes in JSON, must
/// all be base64.
fn pem_body_follows(rest: &[u8]) -> bool {
    let rest = &rest[..rest.len().min(4096)];
    let mut got = 0usize;
    let mut i = 0usize;
    let mut line_start = true;
    while i < rest.len() && got < 40 {
        let b = rest[i];
        if b == b'\\' && rest.get(i + 1) == Some(&b'n') || b == b'\n' || b == b'\r' {
            i += if b == b'\\' { 2 } else { 1 };
            line_start = true;
            continue;
        }
        if line_start {
            line_start = false;
            // Skip an RFC 1421 header line ("Proc-Type: 4,ENCRYPTED").
            let end = rest[i..]
                .iter()
                .position(|&c| c == b'\n' || c == b'\\')
                .map_or(rest.len(), |p| i + p);
            if rest[i..end].contains(&b':') {
                i = end;
                continue;
            }
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') {
            got += 1;
        } else if !b.is_ascii_whitespace() {
            return false;
        }
        i += 1;
    }
    got >= 40
}

#[derive(Debug, Clone, Copy)]
struct Raw {
    rule: usize,
    start: usize,
    end: usize,
}

/// Merge overlapping matches (the most specific rule names the union), and
/// add line numbers, fingerprints and line counts.
fn finish(content: &[u8], mut raw: Vec<Raw>) -> ContentScan {
    if raw.is_empty() {
        return ContentScan::default();
    }
    raw.sort_by_key(|r| (r.start, r.rule));
    let mut merged: Vec<Raw> = Vec::with_capacity(raw.len());
    for r in raw {
        match merged.last_mut() {
            Some(last) if r.start < last.end || (r.start == last.start && r.end == last.end) => {
                last.end = last.end.max(r.end);
                last.rule = last.rule.min(r.rule);
            }
            _ => merged.push(r),
        }
    }
    let mut findings = Vec::with_capacity(merged.len());
    let (mut line, mut at) = (1u32, 0usize);
    let mut secret_lines = 0u32;
    let mut last_line_counted = 0u32;
    for r in merged {
        line += count_newlines(&content[at..r.start]);
        at = r.start;
        let span_lines = count_newlines(&content[r.start..r.end]);
        let first = if line == last_line_counted {
            line + 1
        } else {
            line
        };
        let last = line + span_lines;
        if last >= first {
            secret_lines += last - first + 1;
        }
        last_line_counted = last;
        findings.push(Finding {
            rule: r.rule as u16,
            line,
            start: r.start as u32,
            end: r.end as u32,
            fingerprint: fingerprint(&content[r.start..r.end]),
        });
    }
    let content_lines = content
        .split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .count() as u32;
    ContentScan {
        findings,
        content_lines,
        secret_lines,
    }
}

fn count_newlines(b: &[u8]) -> u32 {
    b.iter().filter(|&&c| c == b'\n').count() as u32
}

/// First 4 bytes of the value's SHA-256: tells findings apart without
/// revealing anything usable.
pub fn fingerprint(value: &[u8]) -> u32 {
    let d = Sha256::digest(value);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Token-shaped test values are assembled at run time, so guard's own
    // source never contains a string its scanner would flag.
    fn tok(prefix: &str, body_len: usize) -> String {
        let alphabet = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU0vW1xY";
        let body: String = alphabet.chars().cycle().skip(3).take(body_len).collect();
        [prefix, &body].concat()
    }

    fn engine() -> ContentEngine {
        ContentEngine::new(builtin()).unwrap()
    }

    fn ids(text: &str) -> Vec<String> {
        let e = engine();
        let s = e.scan(text.as_bytes()).unwrap();
        s.findings
            .iter()
            .map(|f| e.rule_id(f.rule).to_string())
            .collect()
    }

    fn secrets(text: &str) -> Vec<String> {
        let s = engine().scan(text.as_bytes()).unwrap();
        s.findings
            .iter()
            .map(|f| text[f.start as usize..f.end as usize].to_string())
            .collect()
    }

    #[test]
    fn every_builtin_compiles() {
        for r in builtin() {
            compile(&r.pattern).unwrap_or_else(|e| panic!("{}: {e}", r.id));
        }
        compile(PEM_END).unwrap();
    }

    #[test]
    fn well_known_formats() {
        let cases = [
            (
                tok(&["AK", "IA"].concat(), 16).to_uppercase(),
                "aws-access-key-id",
            ),
            (tok(&["gh", "p_"].concat(), 36), "github-token"),
            (
                tok(&["github", "_pat_"].concat(), 40),
                "github-fine-grained-token",
            ),
            (tok(&["gl", "pat-"].concat(), 20), "gitlab-token"),
            (tok(&["xo", "xb-"].concat(), 30), "slack-token"),
            (tok(&["sk", "_live_"].concat(), 24), "stripe-live-key"),
            (tok(&["AI", "za"].concat(), 35), "google-api-key"),
            (tok(&["sk-", "ant-api03-"].concat(), 40), "anthropic-key"),
            (tok(&["sk-", "proj-"].concat(), 48), "openai-key"),
            (tok(&["np", "m_"].concat(), 36), "npm-token"),
        ];
        for (value, id) in cases {
            let text = format!("let x = call(\"{value}\");\n");
            assert_eq!(ids(&text), [id], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&value), "{text}");
        }
        // sonar-project.properties, and the scanner's -D option.
        let token = hex(40);
        for text in [
            format!("sonar.projectKey=app\nsonar.login={token}\n"),
            format!("sonar-scanner -Dsonar.login={token} -Dsonar.host.url=x\n"),
        ] {
            assert_eq!(ids(&text), ["sonar-login"], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&token), "{text}");
        }
        // A user name there is no token.
        assert!(ids("sonar.login=admin\n").is_empty());
    }

    fn hex(n: usize) -> String {
        "3f9a0c7e51b2d846".chars().cycle().take(n).collect()
    }

    /// Provider tokens agents' users hold (AI providers, clouds, CI, SaaS).
    /// Assembled at run time: guard's own tree must scan clean.
    #[test]
    fn provider_token_formats() {
        let cases = [
            (["sk-or-", "v1-", &hex(64)].concat(), "openrouter-key"),
            (["sk", "-", &hex(32)].concat(), "sk-hex-key"),
            (tok(&["gs", "k_"].concat(), 52), "groq-key"),
            (tok(&["xa", "i-"].concat(), 80), "xai-key"),
            (tok(&["pp", "lx-"].concat(), 48), "perplexity-key"),
            (tok(&["r", "8_"].concat(), 37), "replicate-token"),
            (
                [&tok(&["S", "G."].concat(), 22), ".", &tok("", 43)].concat(),
                "sendgrid-key",
            ),
            (["dop", "_v1_", &hex(64)].concat(), "digitalocean-token"),
            (["shp", "at_", &hex(32)].concat(), "shopify-token"),
            (
                tok(&["pypi-", "AgEIcHlwaS5vcmc"].concat(), 60),
                "pypi-token",
            ),
            (tok(&["dckr", "_pat_"].concat(), 27), "docker-hub-token"),
            (tok(&["hv", "s."].concat(), 90), "vault-token"),
            (
                [&tok("", 14), ".atlas", "v1.", &tok("", 67)].concat(),
                "terraform-cloud-token",
            ),
            (
                ["AGE-SECRET-", "KEY-1"]
                    .concat()
                    .chars()
                    .chain(
                        "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
                            .chars()
                            .cycle()
                            .skip(5)
                            .take(58),
                    )
                    .collect(),
                "age-secret-key",
            ),
            (["da", "pi", &hex(32)].concat(), "databricks-token"),
            (tok(&["dp.", "st."].concat(), 43), "doppler-token"),
            (
                tok(&["123456789", ":AA"].concat(), 33),
                "telegram-bot-token",
            ),
            (["ke", "y-", &hex(32)].concat(), "mailgun-key"),
            (tok(&["lin", "_api_"].concat(), 40), "linear-api-key"),
            (
                ["PM", "AK-", &hex(24), "-", &hex(34)].concat(),
                "postman-api-key",
            ),
            (
                [&tok(&["gl", "sa_"].concat(), 32), "_", &hex(8)].concat(),
                "grafana-token",
            ),
            (tok(&["sn", "trys_"].concat(), 60), "sentry-token"),
            (
                ["NR", "AK-", &tok("", 27).to_uppercase()].concat(),
                "new-relic-key",
            ),
            (
                tok(&["GOC", "SPX-"].concat(), 28),
                "google-oauth-client-secret",
            ),
            (
                [&tok("", 3), "8Q", "~", &tok("", 34)].concat(),
                "azure-ad-client-secret",
            ),
            (tok(&["ATA", "TT3"].concat(), 186), "atlassian-api-token"),
            (tok(&["EA", "AA"].concat(), 60), "square-token"),
            (
                [
                    "access_token",
                    "$production$",
                    &tok("", 16).to_lowercase(),
                    "$",
                    &hex(32),
                ]
                .concat(),
                "braintree-token",
            ),
            (["sb", "p_", &hex(40)].concat(), "supabase-token"),
            (tok(&["fo", "1_"].concat(), 43), "fly-token"),
            (tok(&["wh", "sec_"].concat(), 32), "webhook-signing-secret"),
            (tok(&["HR", "KU-"].concat(), 60), "heroku-token"),
            (tok(&["nf", "p_"].concat(), 36), "netlify-token"),
            (tok(&["pscale", "_tkn_"].concat(), 43), "planetscale-token"),
            (["pu", "l-", &hex(40)].concat(), "pulumi-token"),
            (["ruby", "gems_", &hex(48)].concat(), "rubygems-api-key"),
            (
                [&tok(&["ts", "key-auth-"].concat(), 12), "-", &tok("", 24)].concat(),
                "tailscale-key",
            ),
            (["sq", "p_", &hex(40)].concat(), "sonarqube-token"),
            (tok(&["fi", "gd_"].concat(), 40), "figma-token"),
            (tok(&["AT", "BB"].concat(), 32), "bitbucket-app-password"),
            (
                [&["nt", "n_"].concat(), "12345678901", &tok("", 35)].concat(),
                "notion-token",
            ),
        ];
        for (value, id) in cases {
            let text = format!("let x = call(\"{value}\");\n");
            assert_eq!(ids(&text), [id], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&value), "{text}");
        }
        // Look-alikes that are not tokens.
        for text in [
            "let msg = SG.get(name);",
            "map.insert(\"key-value\", 1);",
            "const dapi = require('dapi');",
            "ratio = 1:AA",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn binary_data_finds_run_together_tokens_and_no_assignments() {
        let gh = tok(&["gh", "p_"].concat(), 36);
        let row = format!("\0\x05\x17github{gh}\0\x01password={}\0", tok("", 24));
        let e = engine();
        let text = e.scan(row.as_bytes()).unwrap();
        assert!(
            text.findings
                .iter()
                .all(|f| e.rule_id(f.rule) == "secret-assignment"),
            "as text, the run-together token is not at a word boundary"
        );
        let bin = e
            .scan_binary(row.as_bytes(), &mut Scratch::default())
            .unwrap();
        let ids: Vec<_> = bin.findings.iter().map(|f| e.rule_id(f.rule)).collect();
        assert_eq!(ids, ["github-token"]);
        let f = bin.findings[0];
        assert_eq!(&row[f.start as usize..f.end as usize], gh);
    }

    #[test]
    fn xml_settings_and_elements() {
        let pw = tok("", 20);
        let maven = format!(
            "<server>\n  <id>central</id>\n  <username>deploy</username>\n  <password>{pw}</password>\n</server>\n"
        );
        assert_eq!(ids(&maven), ["xml-secret-element"]);
        assert_eq!(secrets(&maven), std::slice::from_ref(&pw));
        let attr = format!("<apiToken type=\"x\">{pw}</apiToken>");
        assert_eq!(secrets(&attr), std::slice::from_ref(&pw));
        let dotnet = format!(
            "<appSettings>\n  <add key=\"ApiToken\" value=\"{pw}\" />\n  <add key=\"Mode\" value=\"fast\" />\n</appSettings>\n"
        );
        assert_eq!(ids(&dotnet), ["xml-secret-setting"]);
        assert_eq!(secrets(&dotnet), std::slice::from_ref(&pw));
        // Not secrets: placeholders, templates, plain words, other names.
        for text in [
            "<password>${env.DEPLOY_PASSWORD}</password>",
            "<password>changeme</password>",
            "<token>{{ .Values.token }}</token>",
            "<tokenizer>WhitespaceTokenizer2</tokenizer>",
            "<name>aB3dE5fG7hJ9kL2mN4pQ</name>",
            "<add key=\"Mode\" value=\"aB3dE5fG7hJ9kL2mN4pQ\" />",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn short_inputs_without_keywords_need_no_automaton_and_scan_the_same() {
        let inputs = [
            String::new(),
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "LANG=C.UTF-8".into(),
            format!("GH={}", tok(&["gh", "p_"].concat(), 36)),
            format!("DATABASE_URL=postgres://app:{}@db/app", tok("", 16)),
            format!("API_{}EN={}", "TOK", tok("", 24)),
            format!("{}\n", tok(&["AK", "IA"].concat(), 16).to_uppercase()),
        ];
        let fresh = ContentEngine::new(builtin()).unwrap();
        let built = ContentEngine::new(builtin()).unwrap();
        built.scan("x = 1\n".repeat(SHORT).as_bytes()).unwrap();
        assert!(built.keywords.get().is_some());
        for i in &inputs {
            let e = ContentEngine::new(builtin()).unwrap();
            assert_eq!(
                e.scan(i.as_bytes()).unwrap(),
                built.scan(i.as_bytes()).unwrap(),
                "{i}"
            );
            assert_eq!(
                fresh.scan(i.as_bytes()).unwrap(),
                built.scan(i.as_bytes()).unwrap(),
                "{i}"
            );
        }
        let e = ContentEngine::new(builtin()).unwrap();
        assert!(e.scan(inputs[1].as_bytes()).unwrap().findings.is_empty());
        assert!(
            e.keywords.get().is_none(),
            "built for a value without keywords"
        );
        assert!(!e.scan(inputs[3].as_bytes()).unwrap().findings.is_empty());
    }

    #[test]
    fn jwt_and_uri() {
        let jwt = [
            "ey",
            "J",
            &tok("", 20),
            ".ey",
            "J",
            &tok("", 30),
            ".",
            &tok("", 25),
        ]
        .concat();
        assert_eq!(ids(&format!("auth_header = {jwt}")), ["jwt"]);
        let uri = ["postgres://app:", "Zq8vL2mN4pQ6", "@db.internal:5432/app"].concat();
        assert_eq!(secrets(&format!("url: {uri}\n")), ["Zq8vL2mN4pQ6"]);
        // Placeholders and templated passwords are not secrets.
        for text in [
            "postgres://user:password@localhost/db",
            "redis://:${REDIS_PASSWORD}@cache:6379",
            "let url = format!(\"{}://{}:{}@{}\", scheme, user, pass, host);",
            "https://user:<password>@example.com",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn pem_blocks_multiline_and_json() {
        let body = tok("", 64);
        let pem = format!(
            "note\n{}\n{body}\n{body}\n{}\ntrailer\n",
            ["-----BEGIN ", "RSA PRIVATE KEY-----"].concat(),
            ["-----END ", "RSA PRIVATE KEY-----"].concat()
        );
        let s = engine().scan(pem.as_bytes()).unwrap();
        assert_eq!(s.findings.len(), 1);
        let f = s.findings[0];
        assert_eq!(f.line, 2);
        assert!(pem[f.start as usize..f.end as usize].contains(&body));
        assert!(pem[f.end as usize..].starts_with("\ntrailer"));
        assert_eq!((s.content_lines, s.secret_lines), (6, 4));

        let json = format!(
            "{{\"private_key\": \"{}\\n{body}\\n{}\\n\", \"x\": 1}}",
            ["-----BEGIN ", "PRIVATE KEY-----"].concat(),
            ["-----END ", "PRIVATE KEY-----"].concat()
        );
        assert_eq!(ids(&json), ["private-key"]);
        assert!(!secrets(&json).is_empty() && secrets(&json)[0].contains(&body));
    }

    #[test]
    fn yarn_ones_blank_separated_credentials() {
        let v = "Zk3f9QmX2vLp8Rt4Wn7Bc6Yd1Fh5Jg0S";
        for text in [
            format!("\"//npm.example.test/:_authToken\" \"{v}\""),
            format!("//npm.example.test/:_password \"{v}\""),
            format!("_auth {v}"),
        ] {
            assert_eq!(ids(&text), ["yarnrc-auth"], "{text}");
            assert_eq!(secrets(&text), [v], "{text}");
        }
        for text in [
            "\"//npm.example.test/:_authToken\" \"${NPM_TOKEN}\"",
            "_auth = ${NPM_AUTH}",
            "    _password = getpass()",
            "def _auth(self):",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn assignments_in_every_format() {
        let v = "Qm9vTGx2NXJ4c0t3ZmQ3";
        let uuid = "6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c";
        for text in [
            format!("export RAILWAY_TOKEN={uuid}"),
            format!("RAILWAY_TOKEN=\"{uuid}\""),
            format!("api_key: {v}"),
            format!("  password: \"{v}\""),
            format!("{{\"client_secret\": \"{v}\"}}"),
            format!("auth_token = '{v}'"),
            format!("const API_KEY = \"{v}\";"),
            format!("Authorization: Bearer {v}"),
            format!("db_passwd := \"{v}\""),
            format!("$config['secret_key'] => '{v}',"),
            format!("//registry.example/:_authToken={v}"),
        ] {
            assert_eq!(ids(&text), ["secret-assignment"], "{text}");
            let got = secrets(&text);
            assert!(got == [v] || got == [uuid], "{text}: {got:?}");
        }
        // Values that look a little like code but are secrets: base64
        // with padding, a password with operator characters. (Assembled
        // here, so guard's own source holds no secret-shaped line.)
        for (name, value) in [
            ("  password: ", ["cGFzc3dvcmQx", "MjM0NTY3OA=="].concat()),
            ("client_secret: ", ["Xk9*mP2", "!qR7z"].concat()),
            ("db_password = ", ["Tz4+Lm8/", "Qw2+Rv6="].concat()),
        ] {
            let text = format!("{name}\"{value}\"");
            assert_eq!(ids(&text), ["secret-assignment"], "{text}");
            assert_eq!(secrets(&text), [value.as_str()], "{text}");
        }
    }

    #[test]
    fn no_false_positives_on_code_and_placeholders() {
        for text in [
            "token = os.environ[\"GITHUB_TOKEN\"]",
            "let token = std::env::var(\"TOKEN\")?;",
            "password: ${DB_PASSWORD}",
            "api_key: <your-api-key>",
            "API_KEY=changeme",
            "SECRET_KEY=xxxxxxxxxxxxxxxxxxxx",
            "password = \"password123\"",
            "token: process.env.NPM_TOKEN,",
            "auth_url: https://auth.example.com/oauth2/v1/authorize",
            "author = \"Jane Doe 1234567\"",
            "authors = [\"A <a@b.c>\"]",
            "tokens: Vec<Token>,",
            "let secret_len = 32;",
            "password_file = /run/secrets/db_password_2",
            "if token == expected_token_value_1 {",
            "token_type: bearer",
            "self.api_key = api_key_from_settings_v2",
            "secret_name: db-credentials",
            "pub fn authenticate(token: &str) -> Result<Session> {",
            "  auth: AuthConfig::new(\"x\"),",
            "checksum = \"4b1e2c63f8d3a0e0a3c4d1b2a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4\"",
            "sk-learn-is-a-library-name-not-a-secret-at-all",
            "task-runner-disk-usage-report-for-the-risk-desk",
            // Seen in installed Python packages (a redaction there breaks
            // the program that imports them).
            "    elif auth_reply.method == SOCKS5AuthMethod.NO_AUTH_REQUIRED:",
            "  \"cache_read_input_token_cost\": 5.46875e-07,",
            "  \"input_cost_per_token\": 1.25e-06,",
            "    oauth2_id_jag = \"oauth2_id_jag\"",
            "    client_credentials = \"m2m-client-credentials\"",
            "            ephemeral_5m_input_tokens=detailed_5m + undetailed,",
            "  api_key: os.environ/E2B_API_KEY",
            "      \"Here is my API token: sk-abc123def456\",",
            // Minified JavaScript.
            "{oauth2_flow:e.oauth_flow_type===e7.n.M2M?e7.P:e7.V}",
            "delegate_auth_to_upstream:P.auth_type===e7.W.OAUTH2&&!!(N??l.x)",
            "duration_ms:1200,input_tokens:520+41*n,output_tokens:48+7*n",
            "{auth_backoff:520+41*n,secret_delay:48+7*attempt}",
            "timeout:e.timeout,auth:e.auth??!0}",
            "OAUTH2_TOKEN_EXCHANGE:\"oauth2_token_exchange\",OAUTH2_ID_JAG:\"oauth2_id_jag\"",
            // Installed packages (review 32): minified and generated code,
            // whose redaction broke `next build` and boto3's paginators.
            "        openClassPosStack[openTokenDepth] = nextBraceIsClass;",
            "e.HTAB_SP_VCHAR_OBS_TEXT=e.SP=e.HTAB=e.TOKEN=e.HEX=e.URL_CHAR=e.USERINFO_CHARS=e.MARK=e.ALPHANUM=e.DIGIT",
            "this.lastTokEndLoc=this.lastTokStartLoc=null;this.lastTokStart=0",
            "defineProperty(t,\"__esModule\",{value:true});t.tokenizeClass=t.strToChars=void 0;",
            "this._inKey?++this._bytesKey:++this._bytesVal}",
            "deploymentId:c,clientAssetToken:S.supportsImmutableAssets?\"\":c}}",
            "(t.referrerPolicy=e.referrerPolicy),t.credentials=e.crossOrigin===`use-credentials`?`include`:e",
            "const a=r.runtimeKey=\"@babel/plugin-regexp-features/runtimeKey\";",
            "  internalInstanceKey = \"__reactFiber$\" + randomKey,",
            "        nextLastSignificantToken = \"?NonExpressionParenEnd\";",
            "const expectedToken = isImmutableFile || isServiceWorker ? undefined : x;",
            "didScheduleRenderPhaseUpdateDuringThisPass=didScheduleRenderPhaseUpdate=!0;",
            "var listenerSetKey=domEventName+\"__bubble\";",
            "      \"result_key\": \"TransitGatewayVpcAttachments\"",
            "\"getHeadRequestKey\",\"getStaleTimeMs\",\"tsParseModifier\",\"skipWhiteSpaceRe\"",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn bearer_tokens_without_a_secret_name() {
        let t = tok("", 40);
        // A header saved as JSON (.har, API client collections).
        let har = format!(r#"{{"name": "Authorization", "value": "Bearer {t}"}}"#);
        assert_eq!(secrets(&har), [t.as_str()]);
        assert_eq!(ids(&har), ["bearer-token"]);
        assert_eq!(
            ids(&format!("headers = [('x', 'bearer {t}')]")),
            ["bearer-token"]
        );
        for text in [
            "\"value\": \"Bearer YOUR_ACCESS_TOKEN_HERE_1234\"",
            "headers[\"Authorization\"] = \"Bearer \" + token",
            "f\"Bearer {self.access_token_value}\"",
            "uses a bearer authentication scheme for the requests",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn cookie_jar_lines() {
        let jar = "# Netscape HTTP Cookie File\n\n.example.com\tTRUE\t/\tTRUE\t1798000000\tsession\tabc123\n#HttpOnly_example.com\tFALSE\t/\tFALSE\t0\tsid\txyz\n";
        assert_eq!(ids(jar), ["cookie-jar", "cookie-jar"]);
        assert_eq!(secrets(jar), ["abc123", "xyz"]);
        // The header quoted in code that writes such files.
        assert!(ids("HEADER = \"\"\"\\\n# Netscape HTTP Cookie File\n\"\"\"\n").is_empty());
    }

    #[test]
    fn base64_pem_private_keys() {
        let b64 = |s: &str| -> String {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut out = String::new();
            for c in s.as_bytes().chunks(3) {
                let n = c
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
                for i in 0..4 {
                    let pad = i > c.len();
                    out.push(if pad {
                        '='
                    } else {
                        char::from(A[(n >> (18 - 6 * i) & 63) as usize])
                    });
                }
            }
            out
        };
        for alg in ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "] {
            let pem =
                format!("-----BEGIN {alg}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n");
            let text = format!("    client-key-data: {}\n", b64(&pem));
            assert_eq!(ids(&text), ["private-key-base64"], "{alg}");
            let e = engine();
            let r = e.rules().iter().position(|r| r.id == "private-key-base64");
            assert!(r.is_some_and(|r| e.rules()[r].hide_file));
        }
        let cert = b64("-----BEGIN CERTIFICATE-----\nMIIC\n");
        assert!(ids(&format!("client-certificate-data: {cert}\n")).is_empty());
    }

    #[test]
    fn overlapping_rules_are_merged_to_the_specific_one() {
        let t = tok(&["gh", "p_"].concat(), 36);
        let text = format!("GITHUB_TOKEN={t}\n");
        assert_eq!(ids(&text), ["github-token"]);
    }

    #[test]
    fn line_numbers_and_fingerprints() {
        let t = tok(&["gh", "p_"].concat(), 36);
        let text = format!("a\nb\nx = \"{t}\"\nc\nd = \"{t}\"\n");
        let s = engine().scan(text.as_bytes()).unwrap();
        let lines: Vec<u32> = s.findings.iter().map(|f| f.line).collect();
        assert_eq!(lines, [3, 5]);
        assert_eq!(s.findings[0].fingerprint, s.findings[1].fingerprint);
        assert_eq!(s.findings[0].fingerprint, fingerprint(t.as_bytes()));
        assert_eq!((s.content_lines, s.secret_lines), (5, 2));
    }

    #[test]
    fn custom_rule_without_keywords_runs_on_whole_files() {
        let mut rules = builtin();
        rules.push(ContentRule {
            id: "acme".into(),
            description: "ACME key".into(),
            pattern: r"acme_[0-9]{6}".into(),
            keywords: vec![],
            kind: Kind::Token,
            hide_file: false,
        });
        let e = ContentEngine::new(rules).unwrap();
        let s = e.scan(b"x\nkey acme_123456 y\n").unwrap();
        assert_eq!(s.findings.len(), 1);
        assert_eq!(e.rule_id(s.findings[0].rule), "acme");
        assert_eq!(s.findings[0].line, 2);
    }

    #[test]
    fn quoted_values_run_to_the_closing_quote_code_does_not() {
        let v = tok("", 16);
        for (text, secret) in [
            (
                format!("DB_PASSWORD = \"{v}&x(1)<2,3\"\n"),
                format!("{v}&x(1)<2,3"),
            ),
            (format!("pw_pass: 'ab&{v}'\n"), format!("ab&{v}")),
            (format!("secret_key = \"!{v}\"\n"), format!("!{v}")),
            (
                format!("{{\"db_password\": \"{v}\\\"tail9\"}}\n"),
                format!("{v}\\\"tail9"),
            ),
            (
                format!("\"c = Client(api_key=\\\"{v}\\\")\\n\",\n"),
                v.clone(),
            ),
        ] {
            assert_eq!(secrets(&text), [secret], "{text}");
        }
        for text in [
            "\"output_token\": \"StreamDescription.Shards[-1].ShardId\",",
            "self.request_token_arn = f\"arn:aws:s3:{region}:{account_id}:x/{op.lower()}\"",
            "\"auth_error\": \"Error 401: invalid credentials\",",
            "\"passwordLabel\": \"Mot\\u00a0de\\u00a0passe1\",",
            "\"output_token\": \"Jobs[-1].JobId\",",
            "'image_pull_secrets': 'list[V1LocalObjectReference]',",
            "\"reauth\": \"pyu2f>=0.1.5\",",
            "  --aws-sigv4'[Use AWS V4 signature authentication]':'<provider1[\\:provider2]>' \\",
        ] {
            assert!(secrets(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn yaml_block_scalars_and_json_escapes() {
        let v = tok("", 24);
        let (a, b) = v.split_at(10);
        let text = format!(
            "auth:\n  apiToken: |\n    {v}\n  hookSecret: >-\n    {a}\n    {b}\nport: 80\n"
        );
        assert_eq!(secrets(&text), [v.clone(), format!("{a}\n    {b}")]);
        // A script in a block scalar is not a value.
        assert!(secrets("auth_script: |\n  curl -s x1 | sh\n  echo 9f86d0818\n").is_empty());
        let escaped: String = v.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        let text = format!("{{\"api_token\": \"{escaped}\"}}\n");
        assert_eq!(secrets(&text), [escaped]);
    }

    #[test]
    fn command_line_and_netrc_passwords() {
        let v = tok("", 16);
        for text in [
            format!("curl -u admin:{v} https://x.example.com\n"),
            format!("  --user \"ci:{v}\" \\\n"),
            format!("mysqldump -h db -u root -p{v} app\n"),
            format!("restic backup --password {v} .\n"),
            format!("machine x.example.com login ci password {v}\n"),
            format!("password {v}\n"),
        ] {
            assert_eq!(secrets(&text), std::slice::from_ref(&v), "{text}");
        }
        for text in [
            "docker run -u www-data:www-data img",
            "docker exec -u 1000:1000 c sh",
            "curl -u \"$USER:$TOKEN\" https://x.example.com",
            "mysql -u root -p app",
            "The password field is required.",
        ] {
            assert!(secrets(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn typed_declarations() {
        let v = tok("", 32);
        for text in [
            format!("const apiKey: string = \"{v}\";"),
            format!("val apiSecret: String = \"{v}\""),
            format!("let apiToken: String = \"{v}\""),
            format!("var apiToken string = \"{v}\""),
            format!("pub static AUTH_TOKEN: &'static str = \"{v}\";"),
            format!("const API_KEY: &str = \"{v}\";"),
            format!("API_KEY: str = \"{v}\""),
            format!("const HMAC_KEY: &[u8] = b\"{v}\";"),
        ] {
            assert_eq!(ids(&text), ["secret-assignment"], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&v), "{text}");
        }
        for text in [
            "let token: String = String::new();",
            "password: Option<String> = None,",
            "let token: &str = \"Bearer\";",
            "api_key: str = \"{prefix}-{suffix}\"",
            "return token or \"aB3dE5fG7hJ9kL2mN4pQ\"",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn names_ending_in_key() {
        let v = tok("", 32);
        for text in [
            format!("const STRIPE_KEY = \"{v}\";"),
            format!("ENCRYPTION_KEY = \"{v}\""),
            format!("    signing-key: {v}"),
            format!("fly secrets set OPENAI_KEY={v}"),
            // camelCase and PascalCase (review 23).
            format!("const stripeKey = \"{v}\";"),
            format!("  apiKey: \"{v}\","),
            format!("private static final String encryptionKey = \"{v}\";"),
            format!("{{\"signingKey\": \"{v}\"}}"),
            format!("$licenseKey = '{v}';"),
            format!("\tMasterKey\t= {v}"),
            format!("hmac2Key: {v}"),
        ] {
            assert_eq!(ids(&text), ["secret-assignment"], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&v), "{text}");
        }
        for text in [
            format!("const publicKey = \"{v}\";"),
            format!("cacheKey: \"{v}\","),
            format!("private String primaryKey = \"{v}\";"),
            format!("sortKey = \"{v}\""),
            format!("foreignKey: \"{v}\""),
            format!("partitionKey: \"{v}\""),
            format!("translationKey: \"{v}\""),
            format!("i18nKey=\"{v}\""),
            format!("queryKey: [\"{v}\"]"),
            format!(
                "idempotencyKey: \"{}\"",
                "6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c"
            ),
            format!("monkey = \"{v}\""),
            format!("key: {v}"),
            format!("for key in {v}:"),
            format!("obj.key = \"{v}\""),
            format!("PRIMARY_KEY = \"{v}\""),
            format!("cache_key = \"{v}\""),
            format!("GPG_KEY={}", hex(40).to_uppercase()),
            format!(
                "idempotency_key: \"{}\"",
                "6f1c2a9e-3b7d-4e8a-9c0f-1d2e3f4a5b6c"
            ),
            "sort_key = \"created_at_v2\"".to_string(),
            "let cache_key = format!(\"{}:{}\", user, id);".to_string(),
        ] {
            assert!(ids(&text).is_empty(), "{text}: {:?}", ids(&text));
        }
    }

    #[test]
    fn comparisons_and_references_are_not_assignments() {
        let v = tok("", 32);
        for text in [
            format!("if token == \"{v}\":"),
            format!("    assert api_key == '{v}'"),
            format!("if (apiToken === \"{v}\") {{"),
            format!("if password==\"{v}\" {{"),
            format!("            secretKeyRef: {v}"),
            format!("secretKeyRef.key: {v}"),
            format!("db_password_ref: {v}"),
            format!("tokenSecretName: {v}"),
        ] {
            assert!(ids(&text).is_empty(), "{text}: {:?}", ids(&text));
        }
        // Assignments still are.
        for text in [
            format!("token = \"{v}\""),
            format!("'api_key' => '{v}',"),
            format!("password := \"{v}\""),
        ] {
            assert_eq!(secrets(&text), std::slice::from_ref(&v), "{text}");
        }
    }

    #[test]
    fn name_value_pairs() {
        let v = tok("", 32);
        for text in [
            format!("        - name: STRIPE_API_KEY\n          value: {v}\n"),
            format!("        - name: DB_PASSWORD\n          value: \"{v}\"\n"),
            format!("{{\"name\": \"API_TOKEN\", \"value\": \"{v}\"}}"),
            format!("  {{\n    \"name\": \"API_TOKEN\",\n    \"value\": \"{v}\"\n  }}"),
            format!("{{\"ParameterKey\": \"DbPassword\", \"ParameterValue\": \"{v}\"}}"),
            format!("\t\t\t\"key\": \"token\",\n\t\t\t\"value\": \"{v}\",\n"),
            format!("{{\"key\":\"apiKey\",\"value\":\"{v}\",\"type\":\"secret\"}}"),
        ] {
            assert_eq!(ids(&text), ["name-value-secret"], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&v), "{text}");
        }
        for text in [
            format!("        - name: LOG_LEVEL\n          value: {v}\n"),
            "        - name: API_TOKEN\n          valueFrom:\n            secretKeyRef:\n              name: api\n              key: token\n".to_string(),
            "{\"name\": \"API_TOKEN\", \"value\": \"${API_TOKEN}\"}".to_string(),
            format!("- name: API_TOKEN\n\n\n  value: {v}\n"),
            format!("{{\"name\": \"token\", \"defaultValue\": \"{v}\"}}"),
            "{\"key\": \"password\", \"value\": \"{{password}}\"}".to_string(),
            "Object.defineProperty(e,\"__esModule\",{value:!0}),t.token=void 0;".to_string(),
        ] {
            assert!(ids(&text).is_empty(), "{text}: {:?}", ids(&text));
        }
    }

    #[test]
    fn kubernetes_secret_values_whatever_their_keys() {
        let (a, b, c) = (tok("", 24), tok("", 32), tok("", 20));
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  mode: fast\n---\napiVersion: v1\ndata:\n  STRIPE_KEY: {a}\n  empty: \"\"\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  url: \"{b}\"\n  config.yaml: |\n    upstream:\n      key: {c}\ntype: Opaque\n---\nkind: Service\ndata:\n  port: x\n"
        );
        assert_eq!(ids(&text), ["kubernetes-secret"; 3]);
        assert_eq!(secrets(&text), [a, b, format!("upstream:\n      key: {c}")]);
        // Templates (a Helm chart's) and other kinds hold nothing.
        for text in [
            "apiVersion: v1\nkind: Secret\ndata:\n  password: {{ .Values.password | b64enc }}\n  token: |\n    {{ .Values.token }}\n",
            "kind: ConfigMap\ndata:\n  key: aB3dE5fG7hJ9kL2mN4pQ6rS8\n",
            "kind: Secret\nmetadata:\n  name: x\n",
            "  kind: Secret\n  data:\n    x: aB3dE5fG7hJ9kL2mN4pQ6rS8\n",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    #[test]
    fn kubernetes_secrets_in_lists_and_json() {
        let (a, b, c) = (tok("", 24), tok("", 32), tok("", 20));
        // `kubectl get secrets -o yaml`: items of a List, the first key on
        // the `- ` line; a ConfigMap item's data is no secret.
        let list = format!(
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n    STRIPE_KEY: {a}\n  kind: Secret\n  metadata:\n    name: api\n- apiVersion: v1\n  data:\n    mode: {c}\n  kind: ConfigMap\n- kind: Secret\n  stringData:\n    url: \"{b}\"\n  type: Opaque\nkind: List\n"
        );
        assert_eq!(ids(&list), ["kubernetes-secret"; 2]);
        assert_eq!(secrets(&list), [a.clone(), b.clone()]);
        // JSON: one line, pretty-printed, a List of them; an Event naming
        // a Secret has none of its data.
        let one = format!(
            "{{\"apiVersion\":\"v1\",\"data\":{{\"x\":\"{a}\",\"n\":1,\"e\":\"\"}},\"kind\":\"Secret\",\"metadata\":{{\"name\":\"x\"}}}}\n"
        );
        assert_eq!(secrets(&one), std::slice::from_ref(&a));
        let pretty = format!(
            "{{\n  \"kind\": \"Secret\",\n  \"metadata\": {{\"name\": \"x\", \"labels\": {{\"a\": \"b\"}}}},\n  \"stringData\": {{\n    \"tok\": \"{b}\",\n    \"t\\\"q\": \"{c}\"\n  }}\n}}\n"
        );
        assert_eq!(secrets(&pretty), [b.clone(), c.clone()]);
        let items = format!(
            "{{\"items\":[{{\"kind\":\"Secret\",\"data\":{{\"x\":\"{a}\"}}}},{{\"kind\":\"Secret\",\"data\":{{\"y\":\"{b}\"}}}}],\"kind\":\"List\"}}"
        );
        assert_eq!(secrets(&items), [a.clone(), b.clone()]);
        for text in [
            format!(
                "{{\"involvedObject\": {{\"kind\": \"Secret\", \"name\": \"{a}\"}}, \"data\": {{\"x\": \"{b}\"}}}}"
            ),
            format!("{{\"kind\": \"SecretStore\", \"data\": {{\"x\": \"{a}\"}}}}"),
            format!("[\"kind\", \"Secret\", {{\"data\": {{\"x\": \"{a}\"}}}}]"),
            format!("metadata:\n  kind: Secret\n  data:\n    x: {a}\n"),
        ] {
            assert!(ids(&text).is_empty(), "{text}: {:?}", ids(&text));
        }
    }

    #[test]
    fn defaults_of_secret_sounding_variables_and_options() {
        let v = tok("", 32);
        for text in [
            format!(
                "variable \"db_password\" {{\n  type      = string\n  sensitive = true\n  default   = \"{v}\"\n}}\n"
            ),
            format!("variable \"api_token\" {{ default = \"{v}\" }}\n"),
            format!("variable stripeKey {{\n  # set in CI\n\n  default = \"{v}\"\n}}\n"),
            format!(
                "Parameters:\n  DbPassword:\n    Type: String\n    NoEcho: true\n    Default: {v}\n"
            ),
            format!(
                "{{\n  \"Parameters\": {{\n    \"DbPassword\": {{\n      \"Type\": \"String\",\n      \"Default\": \"{v}\"\n    }}\n  }}\n}}\n"
            ),
            format!("    \"DbPassword\": {{\"Type\": \"String\", \"Default\": \"{v}\"}},\n"),
            format!(
                "on:\n  workflow_dispatch:\n    inputs:\n      deploy_token:\n        required: false\n        default: '{v}'\n"
            ),
            format!("parser.add_argument(\"--api-key\", type=str, default=\"{v}\")\n"),
            format!("@click.option('--token', default='{v}', help='API token')\n"),
        ] {
            assert_eq!(ids(&text), ["secret-default"], "{text}");
            assert_eq!(secrets(&text), std::slice::from_ref(&v), "{text}");
        }
        for text in [
            format!("variable \"region\" {{\n  default = \"{v}\"\n}}\n"),
            "variable \"db_password\" {\n  default = var.fallback_password\n}\n".to_string(),
            "variable \"db_password\" {\n  default = \"${var.x}-suffix1\"\n}\n".to_string(),
            format!(
                "variable \"db_password\" {{\n  type = string\n}}\nlocals {{\n  default = \"{v}\"\n}}\n"
            ),
            "      deploy_token:\n        default: ${{ secrets.DEPLOY_TOKEN }}\n".to_string(),
            format!("parser.add_argument(\"--seed\", default=\"{v}\")\n"),
            "switch (x) {\n  default: console.log(token);\n}\n".to_string(),
            format!("password:\n  type: string\n  default: changeme\n  example: {v}\n"),
            "The default is \"aB3dE5fG7hJ9kL2mN4pQ\" for the token.".to_string(),
        ] {
            assert!(ids(&text).is_empty(), "{text}: {:?}", ids(&text));
        }
    }

    #[test]
    fn more_places_credentials_are_kept() {
        let v = tok("", 32);
        let basic = b64(&format!("ci:{v}"));
        for (text, id, secret) in [
            (
                format!("os.environ.setdefault(\"STRIPE_API_KEY\", \"{v}\")"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("key = os.getenv('STRIPE_API_KEY', '{v}')"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("\tos.Setenv(\"API_TOKEN\", \"{v}\")"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("System.setProperty(\"aws.secretKey\", \"{v}\");"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("ENV['API_KEY'] ||= '{v}'"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("api_key = ENV.fetch(\"API_KEY\", \"{v}\")"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("r = requests.get(url, auth=(\"ci\", \"{v}\"))"),
                "secret-assignment",
                v.clone(),
            ),
            (
                format!("credentials = ['ci', '{v}']"),
                "secret-assignment",
                v.clone(),
            ),
            (format!("requirepass {v}"), "redis-password", v.clone()),
            (
                format!("\"//npm.example.test/:_authToken\" \"{v}\""),
                "yarnrc-auth",
                v.clone(),
            ),
            (format!("_auth {v}"), "yarnrc-auth", v.clone()),
            (
                format!("    command: redis-server --requirepass {v}"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("    command: [\"redis-server\", \"--requirepass\", \"{v}\"]"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("define('NONCE_SALT', '{v}');"),
                "php-define-secret",
                v.clone(),
            ),
            (format!("HASHIDS_SALT={v}"), "secret-assignment", v.clone()),
            (
                format!("        password '{v}'"),
                "quoted-password",
                v.clone(),
            ),
            (
                format!("CREATE USER app WITH PASSWORD '{v}';"),
                "quoted-password",
                v.clone(),
            ),
            (
                format!("ALTER USER 'root'@'localhost' IDENTIFIED BY '{v}';"),
                "quoted-password",
                v.clone(),
            ),
            (
                format!("CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY '{v}';"),
                "quoted-password",
                v.clone(),
            ),
            (format!("masterauth \"{v}\""), "redis-password", v.clone()),
            (
                format!("sentinel auth-pass mymaster {v}"),
                "redis-password",
                v.clone(),
            ),
            (
                format!("SetEnv STRIPE_API_KEY {v}"),
                "server-env-secret",
                v.clone(),
            ),
            (
                format!("    fastcgi_param DB_PASSWORD {v};"),
                "server-env-secret",
                v.clone(),
            ),
            (
                format!("docker login -u ci -p {v} registry.example.com"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("$pw = ConvertTo-SecureString \"{v}\" -AsPlainText -Force"),
                "powershell-secure-string",
                v.clone(),
            ),
            (
                format!("    proxy_set_header Authorization \"Basic {basic}\";"),
                "basic-auth-header",
                basic.clone(),
            ),
        ] {
            assert_eq!(ids(&text), [id], "{text}");
            assert_eq!(secrets(&text), [secret], "{text}");
        }
        for text in [
            format!("t(\"password\", \"Mot de passe {v}\")"),
            format!("os.getenv(\"API_KEY\", \"${{DEFAULT}}{v}\")"),
            format!("os.getenv(\"REGION\", \"{v}\")"),
            "token ||= generate_token(length)".to_string(),
            "auth = (user, password)".to_string(),
            format!("auth=(\"ci\", \"{v}\", timeout)"),
            format!("tokens = [\"a\", \"{v}\", \"b\"]"),
            "requirepass foobared".to_string(),
            "salt = os.urandom(16)".to_string(),
            "SALT_ROUNDS=12".to_string(),
            "basalt = \"aB3dE5fG7hJ9kL2mN4pQ\"".to_string(),
            "        password System.getenv('DEPLOY_PASSWORD')".to_string(),
            "        password project.findProperty('deployPassword')".to_string(),
            "CREATE USER app WITH PASSWORD 'changeme';".to_string(),
            "IDENTIFIED BY '${MYSQL_PASSWORD}'".to_string(),
            "Enter your password \"twice\" to confirm.".to_string(),
            "# requirepass".to_string(),
            "SetEnv APP_ENV production".to_string(),
            "fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;".to_string(),
            "docker login -u ci -p \"$CI_REGISTRY_PASSWORD\" $CI_REGISTRY".to_string(),
            "ConvertTo-SecureString $plain -AsPlainText -Force".to_string(),
            "Basic authentication is used by the RegistryClientFactory2".to_string(),
            "proxy_set_header Authorization \"Basic $auth_b64\";".to_string(),
        ] {
            assert!(ids(&text).is_empty(), "{text}: {:?}", ids(&text));
        }
    }

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
            for i in 0..4 {
                out.push(if i > c.len() {
                    '='
                } else {
                    char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
                });
            }
        }
        out
    }

    #[test]
    fn dockerfile_env_without_equals() {
        let v = tok("", 32);
        let text =
            format!("FROM node:20\nENV NODE_ENV production\nENV NPM_TOKEN {v}\nRUN npm ci\n");
        assert_eq!(ids(&text), ["dockerfile-env-secret"]);
        assert_eq!(secrets(&text), [v]);
        for text in [
            "ENV GPG_KEY A035C8C19219BA821ECEA86B64E628F8D684696D",
            "ENV API_TOKEN ${API_TOKEN}",
            "ENV PATH /usr/local/bin:$PATH",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }

    /// Review 31: credentials as tools keep them that the rules missed.
    /// Each case: the text, the rule that must name it, the secret.
    #[test]
    fn credentials_where_tools_keep_them() {
        let t = tok("", 32);
        let v = tok("", 20);
        let w = tok("", 24).to_uppercase() + "x9";
        let ctx = ["ctx7sk-", &t].concat();
        let hook = tok("", 68);
        let uuid = "3f9a0c7e-51b2-4846-9c1d-2e4f6a8b0c2d";
        let sig = [&tok("", 40), "%3D"].concat();
        let xxx = ["Utvnur", "Z9n9CxxX91ZgkY66", "yWLa9FyJuqAcWLaiUo"].concat();
        let cases = [
            // An MCP server's key, one line (TOML) or one element a line.
            (
                format!(r#"args = ["-y", "@upstash/context7-mcp", "--api-key", "{ctx}"]"#),
                "option-secret",
                ctx.clone(),
            ),
            (
                format!(
                    "      \"args\": [\n        \"-y\",\n        \"--api-key\",\n        \"{ctx}\"\n      ]"
                ),
                "option-secret",
                ctx.clone(),
            ),
            (
                format!("    args:\n      - --token\n      - {t}\n"),
                "option-secret",
                t.clone(),
            ),
            (
                format!("sentry-cli releases new --auth-token {t} 1.0"),
                "option-secret",
                t.clone(),
            ),
            (
                format!("deploy -password {v} -host db\n"),
                "option-secret",
                v.clone(),
            ),
            (
                format!("vercel deploy --prod \\\n  --token \\\n  {t}\n"),
                "option-secret",
                t.clone(),
            ),
            // The whole userinfo is the token.
            (
                format!("--extra-index-url https://{t}@pypi.fury.io/acme/"),
                "uri-token",
                t.clone(),
            ),
            (
                format!("\turl = https://{t}@dev.azure.com/org/proj/_git/repo"),
                "uri-token",
                t.clone(),
            ),
            // Password options of their own.
            (
                format!("  ProxyCommand sshpass -p {v} ssh -W %h:%p jump"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("redis-cli -h cache -a {v} ping"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("smbclient //nas/share -U admin%{v}"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("ldapsearch -x -D cn=admin,dc=acme -w {v} -b dc=acme"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("keytool -importkeystore -deststorepass {v} -destkeystore k.jks"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("7z a -p{v} backup.7z db/"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("zip -r -P {v} backup.zip db/"),
                "cli-password",
                v.clone(),
            ),
            (
                format!("npm config set \"//npm.acme.dev/:_authToken\" \"{t}\""),
                "yarnrc-auth",
                t.clone(),
            ),
            // Name and value as attributes.
            (
                format!("<env name=\"DB_PASSWORD\" value=\"{v}\" />"),
                "xml-secret-setting",
                v.clone(),
            ),
            (
                format!("<property name=\"deploy.password\" value=\"{v}\"/>"),
                "xml-secret-setting",
                v.clone(),
            ),
            // URLs that are the credential.
            (
                format!("url: https://discord.com/api/webhooks/112233445566778899/{hook}"),
                "discord-webhook",
                hook.clone(),
            ),
            (
                format!(
                    "https://acme.webhook.office.com/webhookb2/{uuid}@{uuid}/IncomingWebhook/{t}/{uuid}"
                ),
                "teams-webhook",
                format!("{uuid}@{uuid}/IncomingWebhook/{t}/{uuid}"),
            ),
            (
                format!("https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sr=b&sig={sig}"),
                "azure-sas-signature",
                sig.clone(),
            ),
            (
                format!("curl https://fn.azurewebsites.net/api/Hook?code={t}=="),
                "azure-function-key",
                format!("{t}=="),
            ),
            // Session cookies.
            (
                format!("curl -b 'sessionid={t}' https://app.acme.dev/api"),
                "secret-assignment",
                t.clone(),
            ),
            (
                format!("curl -H 'Cookie: theme=dark; _app_session={t}' https://app.acme.dev/"),
                "secret-assignment",
                t.clone(),
            ),
            (
                format!("{{\"name\": \"connect.sid\", \"value\": \"{t}\"}}"),
                "name-value-secret",
                t.clone(),
            ),
            (
                format!("{{\"name\":\"Cookie\",\"value\":\"JSESSIONID={w}\"}}"),
                "secret-assignment",
                w.clone(),
            ),
            (
                format!("[sendemail]\n\tsmtppass = {v}\n"),
                "secret-assignment",
                v.clone(),
            ),
            // A URI's password with no user.
            (
                format!("CELERY_BROKER = \"redis://:{v}@cache:6379/0\""),
                "uri-password",
                v.clone(),
            ),
            // Random passwords that read almost as names (review 32's
            // relaxations for names hold for values without a digit only).
            (
                format!("  password: \"{}\"", ["6bRJZ876", "KdfqrXMZSHNU"].concat()),
                "secret-assignment",
                ["6bRJZ876", "KdfqrXMZSHNU"].concat(),
            ),
            (
                format!("  password: \"{}\"", ["wjhwea8DoX", "onHT5E3iet"].concat()),
                "secret-assignment",
                ["wjhwea8DoX", "onHT5E3iet"].concat(),
            ),
            // A random token holding a short placeholder word.
            (
                format!("token = \"{xxx}\""),
                "secret-assignment",
                xxx.clone(),
            ),
        ];
        for (text, id, secret) in &cases {
            assert!(
                ids(text).contains(&id.to_string()),
                "{text}: {:?}",
                ids(text)
            );
            assert!(
                secrets(text).contains(secret),
                "{text}: {:?}",
                secrets(text)
            );
        }
        // The assignment rule still sees names an option keyword starts in.
        for text in [
            format!("run --auth-token={t}"),
            format!("\"-auth={v}\","),
            format!("X-Api-Key: {t}"),
        ] {
            assert_eq!(ids(&text), ["secret-assignment"], "{text}");
        }
        let ovpn = format!(
            "client\nremote vpn.acme.dev 1194\n<auth-user-pass>\nalice\n{v}\n</auth-user-pass>\n"
        );
        assert_eq!(ids(&ovpn), ["openvpn-credentials"]);
        assert!(
            builtin()
                .iter()
                .any(|r| r.id == "openvpn-credentials" && r.hide_file)
        );
        for text in [
            "mytool --token-file /run/secrets/t",
            "curl --auth-type basic https://x",
            "app --api-key YOUR_API_KEY",
            "echo \"$PW\" | docker login -u ci --password-stdin ghcr.io",
            "kubectl get --secret-name app-secret-2",
            "git clone ssh://git@github.com/acme/app.git",
            "git clone https://deploy@example.com/app.git",
            "url = https://x-access-token@github.com/acme/app",
            "smbclient //nas/share -U \"admin%$SMB_PASSWORD\"",
            "sshpass -p \"$SSHPASS\" ssh host",
            "keytool -list -storepass changeit",
            "zip -r out.zip dir",
            "7z x archive.7z",
            "session: redis",
            "session_timeout: 3600",
            "sid: 42",
            "\"SessionId\": \"John-07a16060613c408b5\",",
            "\"pattern\": \"^http://[-a-zA-Z0-9+\\\\x38@#/%?=~_|!:,.;]*\"",
            "\"WebIdentityToken\": \"Atza%7CIQEBLjAsAhRFiXuWpUXuRvQ9PZL3GMFcYevydwIUFAHZwXZXXXXXXXXJnrul\"",
            "\"SID\": \"S-1-5-21-3623811015-3361044348-30300820-1013\"",
            "'Set-Cookie: number=7\\r\\nSet-Cookie: string=seven'",
            "<option value=\"/game/fleet.php?session=8912ae912fec&cp=33875341\">",
            "<input name=\"password\" value=\"\">",
            "<param name=\"token\" value=\"${TOKEN}\"/>",
            "args: [\"--token\", \"${GITHUB_TOKEN}\"]",
            "sig=abcdef",
            "API_TOKEN=xxxxxxxxxxxxxxxxxxxxxxxx",
            "token = \"test_token_for_unit_tests_1\"",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }
}
