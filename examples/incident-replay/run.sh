#!/usr/bin/env bash
# The incident, replayed twice: bare (the production volume is deleted) and
# under guard (it is not), then where guard broke the chain, link by link.
#
# usage: examples/incident-replay/run.sh [path/to/guard]
# Exit status 0 when the bare run deleted the volume and the guarded run did
# not, and the token appears nowhere in the guarded run's output.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guard=${1:-$(command -v guard || echo "$here/../../target/release/guard")}
[ -x "$guard" ] || { echo "run.sh: guard binary not found: $guard (build with cargo build --release)" >&2; exit 2; }
command -v curl >/dev/null || { echo "run.sh: curl is required" >&2; exit 2; }

work=$(mktemp -d /tmp/guard-incident.XXXXXX)
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
token=$(python3 -c 'import uuid; print(uuid.uuid4())')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp -r "$here/project" "$work/project"
cp "$here/agent.sh" "$work/agent.sh"
sed -i "s/@TOKEN@/$token/" "$work/project/scripts/domains.sh"
(cd "$work/project" && git init -q . && git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm init)
chmod -R a+rX "$work"
state=$work/control-plane.log
python3 "$here/control_plane.py" "$port" "$token" "$state" &
server=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

# The API's name: real control planes are public hosts; here the name is
# pinned to the local stand-in (curl --resolve outside, a profile pin inside).
api_host=backboard.railway.example
api="http://$api_host:$port/graphql"

echo "=== 1. bare: the agent runs with the developer's full access"
: >"$state"
(cd "$work/project" && CURL_RESOLVE="$api_host:$port:127.0.0.1" sh "$work/agent.sh" "$api" 2>&1) | sed 's/^/   /'
bare_deleted=$(grep -c DELETED "$state" || true)
echo "   control plane: ${bare_deleted} volume(s) deleted"

echo
echo "=== 2. under guard: the same agent, the same task"
: >"$state"
# The agent program itself is visible read-only; nothing else changes.
guarded_out=$(cd "$work/project" && "$guard" run --ro "$work/agent.sh" -- sh "$work/agent.sh" "$api" 2>&1)
echo "$guarded_out" | sed 's/^/   /'
guard_deleted=$(grep -c DELETED "$state" || true)
echo "   control plane: ${guard_deleted} volume(s) deleted"

echo
echo "=== where guard broke the chain"
if echo "$guarded_out" | grep -q "LINK 1 BROKEN"; then
  echo "   link 1 (find a token): broken — scripts/domains.sh was redacted/hidden inside the sandbox"
else
  echo "   link 1 (find a token): NOT broken — the agent found the token"
fi
if echo "$guarded_out" | grep -q "LINK 2 BROKEN"; then
  echo "   link 2 (reach the API): broken — $api_host is not on the sandbox's allowlist"
else
  echo "   link 2 (reach the API): NOT broken"
fi
leak=no
echo "$guarded_out" | grep -qF "$token" && leak=yes
echo "   token in the guarded run's output: $leak"

ran=no
echo "$guarded_out" | grep -q "agent: calling the control-plane API" && ran=yes
if [ "$bare_deleted" -ge 1 ] && [ "$guard_deleted" -eq 0 ] && [ "$leak" = no ] && [ "$ran" = yes ] \
   && echo "$guarded_out" | grep -q "LINK 2 BROKEN"; then
  echo "RESULT: bare run deleted the volume; guarded run did not."
  exit 0
fi
echo "RESULT: unexpected outcome (bare deleted: $bare_deleted, guarded deleted: $guard_deleted, leak: $leak, agent ran: $ran)"
exit 1
