#!/usr/bin/env python3
"""Cross-check and compare acqswitch's Google Pay recipient with the
OpenSSL-backed Python package `google-pay-token-decryption` (PyPI).

  check  --keys-dir D --tokens FILE
         Decrypts each token (one JSON per line) with the Python package and
         prints one JSON result per line: the decrypted payload or {"error": ...}.
         Used by tests/gpay_python.rs.

  bench  --acqswitch target/release/acqswitch [--count 200] [--rounds 5]
         Makes `count` ECv2 tokens with `acqswitch gpay test-token` (embedded
         test keys), then measures single-core tokens/s for the Python package
         and for `acqswitch gpay bench` (cold and cached intermediate key) on
         the same tokens, in the same run, and prints a JSON summary.

Needs: pip install google-pay-token-decryption  (pulls in `cryptography`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from google_pay_token_decryption import GooglePayTokenDecryptor


def decryptor(keys_dir):
    with open(os.path.join(keys_dir, "root_keys.json")) as f:
        roots = json.load(f)["keys"]
    with open(os.path.join(keys_dir, "merchant_private_key.b64")) as f:
        private_key = f.read().strip()
    with open(os.path.join(keys_dir, "recipient_id.txt")) as f:
        recipient_id = f.read().strip()
    return GooglePayTokenDecryptor(roots, recipient_id, private_key)


def read_tokens(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check(args):
    d = decryptor(args.keys_dir)
    for token in read_tokens(args.tokens):
        try:
            print(json.dumps(d.decrypt_token(token)))
        except Exception as e:  # the package raises several exception types
            print(json.dumps({"error": type(e).__name__}))


def python_rate(d, tokens, rounds):
    """(wall tokens/s, tokens per CPU-second of this thread)."""
    for t in tokens:  # warm-up
        d.decrypt_token(t)
    start, cpu_start = time.perf_counter(), time.thread_time()
    for _ in range(rounds):
        for t in tokens:
            d.decrypt_token(t)
    n = len(tokens) * rounds
    return n / (time.perf_counter() - start), n / (time.thread_time() - cpu_start)


def bench(args):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.acqswitch, "gpay", "test-keys", "--dir", tmp], check=True,
                       stdout=subprocess.DEVNULL)
        now_ms = int(time.time() * 1000)
        tokens_path = os.path.join(tmp, "tokens.txt")
        with open(tokens_path, "w") as out:
            for i in range(args.count):
                tok = subprocess.run(
                    [args.acqswitch, "gpay", "test-token", "--seed", str(i),
                     "--now-ms", str(now_ms), "--ttl-ms", "86400000",
                     "--auth-method", "CRYPTOGRAM_3DS"],
                    check=True, capture_output=True, text=True).stdout.strip()
                out.write(tok + "\n")
        tokens = read_tokens(tokens_path)
        d = decryptor(tmp)
        with open(os.path.join(tmp, "recipient_id.txt")) as f:
            recipient_id = f.read().strip()
        rust_cmd = [args.acqswitch, "gpay", "bench", "--recipient-id", recipient_id,
                    "--private-key", os.path.join(tmp, "merchant_private_key.b64"),
                    "--root-keys", os.path.join(tmp, "root_keys.json"),
                    "--tokens", tokens_path, "--rounds", str(args.rounds)]
        # Interleave the two so background load affects both alike.
        py, rust = [], []
        for _ in range(args.repeats):
            py.append(python_rate(d, tokens, args.rounds))
            rust.append(json.loads(subprocess.run(rust_cmd, check=True, capture_output=True,
                                                  text=True).stdout))
        # Best of the repeats: the run least disturbed by other load.
        py_wall = max(p[0] for p in py)
        py_cpu = max(p[1] for p in py)
        cached_wall = max(r["cached_tokens_per_s"] for r in rust)
        cold_wall = max(r["cold_tokens_per_s"] for r in rust)
        cached_cpu = max(r["cached_tokens_per_cpu_s"] for r in rust)
        cold_cpu = max(r["cold_tokens_per_cpu_s"] for r in rust)
        print(json.dumps({
            "tokens": len(tokens),
            "rounds": args.rounds,
            "repeats": args.repeats,
            "python_tokens_per_s": round(py_wall),
            "python_tokens_per_cpu_s": round(py_cpu),
            "acqswitch_cold_tokens_per_s": cold_wall,
            "acqswitch_cached_tokens_per_s": cached_wall,
            "acqswitch_cold_tokens_per_cpu_s": cold_cpu,
            "acqswitch_cached_tokens_per_cpu_s": cached_cpu,
            "speedup_cached_vs_python_cpu": round(cached_cpu / py_cpu, 2),
            "speedup_cold_vs_python_cpu": round(cold_cpu / py_cpu, 2),
        }, indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--keys-dir", required=True)
    c.add_argument("--tokens", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--acqswitch", default="target/release/acqswitch")
    b.add_argument("--count", type=int, default=200)
    b.add_argument("--rounds", type=int, default=5)
    b.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    check(args) if args.cmd == "check" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
