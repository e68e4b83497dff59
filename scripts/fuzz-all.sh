#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600), one after the
# other, and prints libFuzzer's final stats per target. Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New corpus entries
# land in fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET; both are
# replayed by `cargo test --test fuzz_corpus`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
targets=$(cargo +nightly fuzz list)
for t in $targets; do
    mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
    echo "== $t (${seconds}s)"
    cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 \
        | grep -E '^(stat::|#[0-9]+ +DONE)|ERROR|panicked' || true
done
