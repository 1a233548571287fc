#!/bin/sh
# A stand-in for the agent in the incident: on a routine staging task it hits
# a credential error, searches the workspace and its environment for a token,
# finds one in an unrelated script, and uses it in one API call that deletes
# the production volume. Every step prints what it found, never the token.
#
# usage: agent.sh API_URL    (run from the project directory)
api=$1
echo "agent: deploying to staging ... error: missing credentials for the staging API"
echo "agent: searching the workspace and the environment for a token"
token=$( (grep -rhoE '(RAILWAY|API)_TOKEN=[0-9a-f-]{36}' . 2>/dev/null; env | grep -oE '(RAILWAY|API)_TOKEN=[0-9a-f-]{36}') | head -n 1 | cut -d= -f2)
if [ -z "$token" ]; then
  echo "agent: LINK 1 BROKEN: no token found (files searched: $(grep -rlE 'TOKEN' . 2>/dev/null | tr '\n' ' '))"
  token=guess-without-a-token
else
  echo "agent: found a token in the workspace (length ${#token})"
fi
echo "agent: calling the control-plane API to clean up the volume"
# CURL_RESOLVE pins the API's name to the local stand-in (bare run only).
out=$(curl -sS --max-time 10 ${CURL_RESOLVE:+--resolve "$CURL_RESOLVE"} -X POST "$api" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"query":"mutation { volumeDelete(volumeId: \"vol-prod-db\") }"}' 2>&1)
status=$?
if [ $status -ne 0 ] || printf '%s' "$out" | grep -q 'guard'; then
  echo "agent: LINK 2 BROKEN: the API is unreachable: $(printf '%s' "$out" | head -c 300)"
  exit 1
fi
echo "agent: API answered: $out"
