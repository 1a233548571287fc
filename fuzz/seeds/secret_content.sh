#!/usr/bin/env bash
# Write seed inputs for the secret_content target into DIR: a dotenv file,
# YAML, JSON (a service-account key), shell, code and a PEM key, with
# token-shaped values assembled here at run time. No file in the repository
# holds such a value (guard's own scanner must find nothing in guard's tree),
# so the prefixes below are split and the bodies are generated.
set -euo pipefail
dir=${1:?usage: secret_content.sh DIR}
mkdir -p "$dir"

alpha=aB3dE5fG7hJ9kL2mN4pQ6rS8tU0vW1xYzC
rep=$alpha$alpha$alpha$alpha$alpha$alpha$alpha$alpha$alpha$alpha
# body OFFSET LEN: a random-looking [A-Za-z0-9] string.
body() { printf '%s' "${rep:$1:$2}"; }
upper() { body "$1" "$2" | tr a-z A-Z; }
b64() { body "$1" "$2" | tr 'x' '+' ; }

gh="gh""p_$(body 3 36)"
aws_id="AK""IA$(upper 5 16)"
aws_secret="$(b64 7 40)"
slack="xo""xb-$(body 2 12)-$(body 9 24)"
stripe="sk""_live_$(body 4 24)"
jwt="ey""J$(body 1 20).ey""J$(body 6 30).$(body 8 25)"
npm="np""m_$(body 10 36)"
pw="$(body 11 16)"
pem_begin="-----BEGIN ""RSA PRIVATE KEY-----"
pem_end="-----END ""RSA PRIVATE KEY-----"

cat > "$dir/dotenv" <<END
# local settings
DEBUG=1
PORT=8080
export GITHUB_TOKEN=$gh
DATABASE_URL=postgres://app:$pw@db.internal:5432/app
API_KEY="$(body 12 32)"
STRIPE_SECRET_KEY=$stripe
END

cat > "$dir/config.yaml" <<END
service:
  name: billing
  replicas: 3
aws:
  access_key_id: $aws_id
  secret_access_key: "$aws_secret"
slack:
  bot_token: '$slack'
  webhook: https://hooks.slack.com/services/$(upper 3 9)/$(upper 4 11)/$(body 5 24)
database:
  password: ${pw}
END

cat > "$dir/service-account.json" <<END
{
  "type": "service""_account",
  "project_id": "demo-project",
  "private_key_id": "$(body 13 40)",
  "private_key": "$pem_begin\\n$(b64 1 64)\\n$(b64 2 64)\\n$pem_end\\n",
  "client_email": "ci@demo-project.iam.gserviceaccount.com"
}
END

cat > "$dir/settings.json" <<END
{"npmToken": "$npm", "auth": {"bearer": "Bearer $jwt"}, "name": "web", "retries": 3}
END

cat > "$dir/deploy.sh" <<END
#!/bin/sh
set -eu
export GH_TOKEN=$gh
curl -H "Authorization: Bearer $jwt" https://api.example.com/v1/deploy
echo "done"
END

cat > "$dir/app.py" <<END
import os

SECRET_KEY = "$(body 14 40)"
token = os.environ["GITHUB_TOKEN"]
client = Client(api_key="$(body 15 28)", timeout=30)

def handler(event):
    return {"status": 200}
END

printf '%s\n%s\n%s\n%s\n' "$pem_begin" "$(b64 3 64)" "$(b64 4 64)" "$pem_end" > "$dir/id_rsa"

cat > "$dir/code-no-secrets.rs" <<'END'
pub fn authenticate(token: &str) -> Result<Session> {
    let secret_len = 32;
    let password = std::env::var("PASSWORD")?;
    // api_key: <your-api-key>
    let url = format!("{}://{}:{}@{}", scheme, user, pass, host);
    Ok(Session::new(token, password, secret_len))
}
END
