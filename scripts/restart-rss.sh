#!/usr/bin/env bash
# Memory of `serve` at a restart: N cardOrders through `load --api` against
# `serve` on the embedded default (journal on disk, in a scratch folder),
# SIGTERM, `serve` again on the same journal, then its peak and current
# RSS once it listens (VmHWM, VmRSS). What start-up reads back (the
# duplicate window, token ids, the vault) shows here.
# Usage: bash scripts/restart-rss.sh [BIN] [N]
#   BIN: the acqswitch binary (default target/release/acqswitch), N: 150000.
# Only loopback; the load is bounded in count.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/acqswitch}")
N=${2:-150000}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
PORT=18092
wait_listening() {
  for _ in $(seq 1 300); do
    grep -q "acqswitch listening on" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "serve did not start: $(cat "$1")" >&2
  exit 1
}
cd "$DIR"
"$BIN" serve --listen 127.0.0.1:$PORT > first.out 2>&1 &
P=$!
wait_listening first.out
"$BIN" load --api http://127.0.0.1:$PORT --requests "$N" --concurrency 64 --threads 1 --quiet > /dev/null 2>&1
kill -TERM $P
wait $P
"$BIN" serve --listen 127.0.0.1:$PORT > second.out 2>&1 &
P=$!
wait_listening second.out
grep -E "VmHWM|VmRSS" /proc/$P/status | tr -s ' \t' ' ' | paste -sd ' '
kill -TERM $P
wait $P
