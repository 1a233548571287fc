#!/bin/sh
# Tools the integration tests need: inside the sandbox (curl, git, python3,
# npm), as local test servers (openssl s_server, git http-backend), and to
# run guard as an unprivileged uid (setpriv, from util-linux). The agents
# test builds aider's virtualenv with the system python, which needs venv's
# ensurepip (Debian ships it apart, in python3-venv).
# The tests fail loudly when one is missing; this installs them on Debian.
set -eu
missing=""
for tool in curl git openssl python3 npm setpriv; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
if [ -n "$missing" ]; then
  echo "installing test dependencies (missing:$missing)"
  apt-get update
  apt-get install -y --no-install-recommends \
    ca-certificates curl git openssl python3 python3-venv npm util-linux
fi
