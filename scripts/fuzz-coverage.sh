#!/usr/bin/env bash
# Coverage of each fuzz target's saved corpus over the crate's own code:
# replays fuzz/corpus/TARGET once (-runs=0) with libFuzzer's
# -print_coverage=1 and sums the edges of the functions defined under src/
# (dependencies and the standard library are left out), per target and per
# source file. Needs the nightly toolchain, cargo-fuzz and llvm-symbolizer
# (Debian package llvm).
# Usage: bash scripts/fuzz-coverage.sh [TARGET...]   (default: all targets)
# Env: FUZZ_BIN_DIR: use already built target binaries from there instead
# of building with `cargo +nightly fuzz build -O`.
set -euo pipefail
cd "$(dirname "$0")/.."
targets="${*:-$(cargo +nightly fuzz list)}"
bindir="${FUZZ_BIN_DIR:-}"
if [ -z "$bindir" ]; then
    cargo +nightly fuzz build -O >/dev/null
    bindir="fuzz/target/x86_64-unknown-linux-gnu/release"
fi
root="$(pwd)/src/"
echo "| target | corpus inputs | edges covered (crate code) | functions reached | files with most uncovered edges |"
echo "|---|---|---|---|---|"
for t in $targets; do
    "$bindir/$t" "fuzz/corpus/$t" -runs=0 -print_coverage=1 2>&1 \
        | python3 -c '
import re, sys, collections
root, target = sys.argv[1], sys.argv[2]
pat = re.compile(r"^(COVERED|UNCOVERED)_FUNC: hits: (\d+) edges: (\d+)/(\d+) (.*) (\S+):(\d+)$")
cov = tot = fcov = ftot = 0
per_file = collections.defaultdict(lambda: [0, 0])
inputs = 0
for line in sys.stdin:
    m = re.search(r"INFO: seed corpus: files: (\d+)", line)
    if m:
        inputs = int(m.group(1))
    m = pat.match(line.strip())
    if not m or not m.group(6).startswith(root):
        continue
    a, b = int(m.group(3)), int(m.group(4))
    f = m.group(6)[len(root):]
    cov += a; tot += b; ftot += 1; fcov += a > 0
    per_file[f][0] += a; per_file[f][1] += b
worst = sorted(per_file.items(), key=lambda kv: kv[1][0] - kv[1][1])[:3]
worst = ", ".join(f"{f} {c}/{t}" for f, (c, t) in worst)
pct = 100.0 * cov / tot if tot else 0.0
print(f"| {target} | {inputs} | {cov}/{tot} ({pct:.0f}%) | {fcov}/{ftot} | {worst} |")
' "$root" "$t"
done
