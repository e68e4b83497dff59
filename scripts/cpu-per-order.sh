#!/usr/bin/env bash
# Where the CPU of a cardOrder goes: N cardOrders through `load --api`
# against `serve`, then serve's CPU per order (all its threads, and the
# simulator's and the journal writer's apart, from /proc/PID/task/*/stat),
# the load client's (user + system), and context switches per order
# (/proc/stat, the whole machine). One line per run; compare builds by
# alternating runs in the same minutes.
# Usage: bash scripts/cpu-per-order.sh BIN [CONFIG|-] [CONCURRENCY] [N]
#   BIN: the acqswitch binary to serve with; CONFIG: a configuration file
#   (`-`: the embedded default, journal on disk in a scratch folder);
#   CONCURRENCY 256, N 100000. LOAD: the binary whose `load --api` drives
#   it (default target/release/acqswitch, the same client for every build).
# Only loopback; the load is bounded in count.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:?usage: cpu-per-order.sh BIN [CONFIG|-] [CONCURRENCY] [N]}")
CONFIG=${2:--}
[ "$CONFIG" != - ] && CONFIG=$(realpath "$CONFIG")
CONC=${3:-256}
N=${4:-100000}
LOAD=$(realpath "${LOAD:-target/release/acqswitch}")
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
PORT=18093
cd "$DIR"
if [ "$CONFIG" = - ]; then
  "$BIN" serve --listen 127.0.0.1:$PORT > serve.out 2>&1 &
else
  cp "$CONFIG" cfg.toml
  "$BIN" serve --config cfg.toml --listen 127.0.0.1:$PORT > serve.out 2>&1 &
fi
P=$!
for _ in $(seq 1 300); do
  grep -q "listening on" serve.out 2>/dev/null && break
  sleep 0.1
done
grep -q "listening on" serve.out || { echo "serve did not start: $(cat serve.out)" >&2; exit 1; }
sleep 0.3
ticks() { awk '{print $14 + $15}' "$1/stat"; }
declare -A before
for t in /proc/$P/task/*; do before[$(basename "$t")]=$(ticks "$t"); done
cs0=$(awk '/^ctxt/ {print $2}' /proc/stat)
out=$( { /usr/bin/time -f "CLIENT %U %S" "$LOAD" load --api http://127.0.0.1:$PORT \
  --requests "$N" --concurrency "$CONC" --threads 1 --quiet; } 2>&1 )
cs1=$(awk '/^ctxt/ {print $2}' /proc/stat)
serve=0 sim=0 journal=0
for t in /proc/$P/task/*; do
  d=$(( $(ticks "$t") - ${before[$(basename "$t")]:-0} ))
  serve=$((serve + d))
  case "$(cat "$t/comm")" in
    acqswitch-sim) sim=$((sim + d)) ;;
    acqswitch-journ) journal=$((journal + d)) ;;
  esac
done
kill -TERM $P
wait $P 2>/dev/null || true
field() { echo "$out" | grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; }
client=$(echo "$out" | awk '/^CLIENT/ {print $2 + $3}')
tick_us=$((1000000 / $(getconf CLK_TCK)))
awk -v tp="$(field throughput_per_s)" -v p99="$(field p99_us)" -v err="$(field errors)" \
  -v s=$serve -v sim=$sim -v j=$journal -v c="$client" -v n="$N" -v cs=$((cs1 - cs0)) -v t=$tick_us \
  'BEGIN { printf "%.0f cardOrder/s, p99 %.1f ms, errors %s | CPU us per order: serve %.1f (simulator %.1f, journal writer %.1f), load client %.1f | context switches per order %.2f\n",
    tp, p99 / 1000, err, s * t / n, sim * t / n, j * t / n, c * 1e6 / n, cs / n }'
