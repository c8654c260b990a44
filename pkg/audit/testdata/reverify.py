#!/usr/bin/env python3
"""Re-verify an agentid audit export (JSON Lines) from the format in doc.go.

Written from the package documentation alone, as a check that the canonical
encoding can be rebuilt outside Go. Usage: reverify.py < export.jsonl
Prints "ok <n> events, head <seq>:<hash>" or the first broken sequence.
"""
import hashlib
import json
import struct
import sys

MAGIC = b"agentid-audit-v1\n"


def s(text):
    b = text.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def canonical(ev):
    out = MAGIC + struct.pack(">Q", ev["sequence"])
    out += s(ev["time"]) + s(ev["type"])
    for field in ("actor", "delegation_id", "agent", "user"):
        out += s(ev.get(field, ""))
    detail = ev.get("detail", {})
    out += struct.pack(">I", len(detail))
    for key in sorted(detail, key=lambda k: k.encode("utf-8")):
        out += s(key) + s(detail[key])
    return out + bytes.fromhex(ev["prev_hash"])


def main():
    prev_seq, prev_hash = 0, "0" * 64
    for n, line in enumerate(sys.stdin, 1):
        ev = json.loads(line)
        if hashlib.sha256(canonical(ev)).hexdigest() != ev["hash"]:
            sys.exit(f"broken at sequence {ev['sequence']}: hash mismatch (line {n})")
        if ev["sequence"] != prev_seq + 1 or ev["prev_hash"] != prev_hash:
            sys.exit(f"broken at sequence {ev['sequence']}: not linked to {prev_seq} (line {n})")
        prev_seq, prev_hash = ev["sequence"], ev["hash"]
    print(f"ok {prev_seq} events, head {prev_seq}:{prev_hash}")


if __name__ == "__main__":
    main()
