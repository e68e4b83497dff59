#!/usr/bin/env bash
# Codec comparison measured in one run: acqswitch (criterion) vs pyiso8583
# on the same wallet authorization 0100 in iso87binary (= pyiso8583 `default`).
# Prints a table with ratios. Needs .venv (see scripts/test-all.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { python3 -m venv .venv; }
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt

cargo build --release --quiet
hex=$(target/release/acqswitch iso encode --spec iso87binary --hex < benches/data/wallet_0100_iso87.json)
cargo bench --quiet --bench codec -- --noplot 'wallet_0100' >/dev/null
py=$(.venv/bin/python benches/pyiso8583_bench.py default "$hex")

est() { .venv/bin/python -c "import json,sys; print(round(json.load(open(sys.argv[1]))['mean']['point_estimate']))" "target/criterion/$1/new/estimates.json"; }
rd=$(est "iso87binary_wallet_0100/decode"); re=$(est "iso87binary_wallet_0100/encode")
cd_=$(est "cb2a_wallet_0100/decode"); ce=$(est "cb2a_wallet_0100/encode")
pd=$(echo "$py" | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['decode_ns'])")
pe=$(echo "$py" | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['encode_ns'])")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| message | operation | acqswitch ns | pyiso8583 ns | ratio |"
echo "|---|---|---|---|---|"
echo "| iso87binary wallet 0100 | decode | $rd | $pd | $(( pd / rd ))x |"
echo "| iso87binary wallet 0100 | encode | $re | $pe | $(( pe / re ))x |"
echo "| cb2a wallet 0100 | decode | $cd_ | - | - |"
echo "| cb2a wallet 0100 | encode | $ce | - | - |"
