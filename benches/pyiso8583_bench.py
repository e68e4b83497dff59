"""Times pyiso8583 decode and encode of one message (hex on argv[2]) with its
`default` spec (= our iso87binary). Prints one JSON line: ns per operation."""
import json
import sys
import timeit

import iso8583
from iso8583.specs import default, default_ascii

spec = {"default": default, "default_ascii": default_ascii}[sys.argv[1]]
raw = bytes.fromhex(sys.argv[2])
doc, _ = iso8583.decode(raw, spec)
enc_doc = {k: v for k, v in doc.items() if k not in ("p", "1")}


def best_ns(fn, number):
    # Best of 5 repeats, the usual timeit practice for a noisy machine.
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


decode_ns = best_ns(lambda: iso8583.decode(raw, spec), 20000)
encode_ns = best_ns(lambda: iso8583.encode(dict(enc_doc), spec), 20000)
print(json.dumps({"decode_ns": round(decode_ns), "encode_ns": round(encode_ns)}))
