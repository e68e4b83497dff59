#!/usr/bin/env bash
# Every side-by-side comparison of BENCHMARKS.md, measured in one run:
#   codec  acqswitch (criterion) vs pyiso8583 on the same wallet 0100
#   gpay   acqswitch vs the Python package google-pay-token-decryption on
#          the same ECv2 tokens (tokens per CPU-second)
#   pool   round trips through the acquirer pool (`acqswitch load` against
#          `acqswitch sim`), RUNS runs
#   api    cardOrder through the HTTP API (`acqswitch load --api` against
#          `acqswitch serve`), RUNS runs
# Usage: bash scripts/bench-compare.sh [SECTION...]   (default: all four)
# Env: RUNS (default 3), POOL_REQUESTS (500000), API_REQUESTS (100000).
# Prints Markdown tables with ratios and the targets of the issues. Only
# loopback addresses; every load run is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
sections="${*:-codec gpay pool api}"
runs="${RUNS:-3}"
pool_requests="${POOL_REQUESTS:-500000}"
api_requests="${API_REQUESTS:-100000}"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
py=.venv/bin/python
cargo build --release --quiet
bin=target/release/acqswitch
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# json FIELD: reads one JSON object on stdin, prints FIELD.
json() { "$py" -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
ratio() { "$py" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}x')" "$1" "$2"; }
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# load_rows TITLE UNIT MIN_PER_S MAX_P99_US COMMAND...: a table titled
# TITLE, one row per run of the load COMMAND (RUNS runs), each checked
# against the target (at least MIN_PER_S UNIT/s, p99 under MAX_P99_US, no
# errors).
load_rows() {
    local title=$1 unit=$2 min=$3 max_p99=$4
    shift 4
    echo
    echo "### $title"
    echo "| run | $unit/s | p50 us | p99 us | p99.9 us | errors | target (>= $min/s, p99 < $max_p99 us, 0 errors) |"
    echo "|---|---|---|---|---|---|---|"
    for i in $(seq "$runs"); do
        out=$(timeout 300 "$@" --quiet 2>/dev/null | grep '^{')
        tput=$(echo "$out" | json throughput_per_s)
        p99=$(echo "$out" | json p99_us)
        errors=$(echo "$out" | json errors)
        met=$("$py" -c "import sys; t, p, e, lo, hi = map(float, sys.argv[1:]); print('met' if t >= lo and p < hi and e == 0 else 'not met')" "$tput" "$p99" "$errors" "$min" "$max_p99")
        echo "| $i | $tput | $(echo "$out" | json p50_us) | $p99 | $(echo "$out" | json p999_us) | $errors | $met |"
    done
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"

for section in $sections; do
case "$section" in
codec)
    hex=$($bin iso encode --spec iso87binary --hex < benches/data/wallet_0100_iso87.json)
    cargo bench --quiet --bench codec -- --noplot 'wallet_0100' >/dev/null 2>&1
    pyres=$("$py" benches/pyiso8583_bench.py default "$hex")
    est() { "$py" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['mean']['point_estimate']))" "target/criterion/$1/new/estimates.json"; }
    rd=$(est "iso87binary_wallet_0100/decode"); re=$(est "iso87binary_wallet_0100/encode")
    cd_=$(est "cb2a_wallet_0100/decode"); ce=$(est "cb2a_wallet_0100/encode")
    pd=$(echo "$pyres" | json decode_ns); pe=$(echo "$pyres" | json encode_ns)
    echo
    echo "### codec: acqswitch vs pyiso8583 (criterion mean; pyiso8583 best of 5 timeit repeats)"
    echo "| message | operation | acqswitch ns | pyiso8583 ns | ratio (target >= 100x) |"
    echo "|---|---|---|---|---|"
    echo "| iso87binary wallet 0100 | decode | $rd | $pd | $(ratio "$pd" "$rd") |"
    echo "| iso87binary wallet 0100 | encode | $re | $pe | $(ratio "$pe" "$re") |"
    echo "| cb2a wallet 0100 | decode | $cd_ | - | - |"
    echo "| cb2a wallet 0100 | encode | $ce | - | - |"
    ;;
gpay)
    res=$("$py" benches/compare_gpay.py bench --acqswitch "$bin" --count 200 --rounds 5 --repeats "$runs")
    pc=$(echo "$res" | json python_tokens_per_cpu_s)
    ac=$(echo "$res" | json acqswitch_cached_tokens_per_cpu_s)
    ao=$(echo "$res" | json acqswitch_cold_tokens_per_cpu_s)
    echo
    echo "### Google Pay ECv2 unseal: acqswitch vs google-pay-token-decryption (200 tokens, best of $runs)"
    echo "| figure | acqswitch | Python package | ratio |"
    echo "|---|---|---|---|"
    echo "| tokens per CPU-second, intermediate key cached (target >= 5,000) | $ac | $pc | $(ratio "$ac" "$pc") |"
    echo "| tokens per CPU-second, cold (both keys verified) | $ao | $pc | $(ratio "$ao" "$pc") |"
    ;;
pool)
    port=5605
    $bin sim --listen "127.0.0.1:$port" --ledger 100000 --max-seconds 600 >/dev/null 2>&1 &
    pids+=($!)
    wait_port $port
    load_rows "round trips through the acquirer pool (\`acqswitch load\` against \`acqswitch sim\`)" \
        "round trips" 200000 2000 \
        $bin load --target "127.0.0.1:$port" --requests "$pool_requests" --concurrency 256 --links 4
    kill "${pids[-1]}" 2>/dev/null || true
    ;;
api)
    port=18082
    $bin serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
    pids+=($!)
    wait_port $port
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    load_rows "cardOrder through the HTTP API (\`acqswitch load --api\` against \`acqswitch serve\`, embedded default)" \
        requests 30000 10000 \
        $bin load --api "http://127.0.0.1:$port" --requests "$api_requests" --concurrency 64 --threads 1
    kill "${pids[-1]}" 2>/dev/null || true
    ;;
*)
    echo "unknown section: $section (codec, gpay, pool, api)" >&2
    exit 2
    ;;
esac
done
