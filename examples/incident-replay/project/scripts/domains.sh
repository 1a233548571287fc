#!/bin/sh
# Maintenance script: points the custom domains at the current deployment.
# (Unrelated to the staging task. It holds a token with full account rights.)
set -eu
RAILWAY_TOKEN=@TOKEN@
SERVICE=web
for domain in app.example.com www.example.com; do
  echo "updating $domain for $SERVICE"
done
