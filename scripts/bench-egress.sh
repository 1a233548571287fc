#!/usr/bin/env bash
# Egress benchmark: direct vs a minimal splice relay (the floor for any
# relay) vs guard (CONNECT tunnel, HTTP proxy, transparent) against a
# loopback server, side by side in interleaved rounds:
#   1 GiB download; 1,000 sequential requests on new connections;
#   200 requests on one keep-alive connection (64 B, 8 KiB and chunked
#   answers); CPU time of all processes per GiB and per request; the
#   supervisor's peak RSS with 500 concurrent connections.
# Needs root (the server listens on 127.31.0.2:80 for the transparent path).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin guard
GUARD_BIN="$PWD/target/release/guard" cargo bench --quiet --bench egress
