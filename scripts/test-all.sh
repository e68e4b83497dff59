#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (a Python virtual environment with the oracle packages), then runs every
# Rust test. No test skips because a tool is missing: a missing oracle fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# tests/readme.rs runs the README's walkthrough, which uses curl.
if ! command -v curl > /dev/null; then
    echo "== installing curl (the README walkthrough uses it)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq curl
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import iso8583' 2>/dev/null; then
    echo "== creating .venv with the test oracles (tests/requirements.txt)"
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
export ACQSWITCH_PYTHON="$PWD/.venv/bin/python"

echo "== cargo test"
cargo test --locked --all-targets
cargo test --locked --doc
# The build without AWS-LC (p256 for the Google Pay ECDH, ring under
# TLS): the token tests, including the public vectors and the Python
# oracle, and the TLS tests.
echo "== cargo test --no-default-features (Google Pay on p256 alone, TLS on ring)"
cargo test --locked --no-default-features --lib -- wallet::googlepay tls::
cargo test --locked --no-default-features --test gpay_vectors --test gpay_tamper \
    --test gpay_sender --test gpay_python --test tls
