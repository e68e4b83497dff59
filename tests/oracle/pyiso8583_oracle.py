"""Oracle for tests/interop_pyiso8583.rs: reads JSON lines on stdin, answers
one JSON line each on stdout, using pyiso8583 (an independent ISO 8583
implementation) with its built-in `default` and `default_ascii` specs.

Request:  {"op": "encode", "spec": "default", "doc": {...}}
          {"op": "decode", "spec": "default", "hex": "..."}
Answer:   {"hex": "..."} / {"doc": {...}} / {"error": "..."}
"""
import json
import sys

import iso8583
from iso8583.specs import default, default_ascii

SPECS = {"default": default, "default_ascii": default_ascii}


def main():
    for line in sys.stdin:
        req = json.loads(line)
        spec = SPECS[req["spec"]]
        try:
            if req["op"] == "encode":
                raw, _ = iso8583.encode(dict(req["doc"]), spec)
                out = {"hex": bytes(raw).hex().upper()}
            else:
                doc, _ = iso8583.decode(bytes.fromhex(req["hex"]), spec)
                out = {"doc": doc}
        except Exception as e:  # reported to the Rust side, which fails the test
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
