"""Self-checking values for the concurrency tests: a torn or mixed value is recognised.

``VALUES_SOURCE`` is also run as source text by worker processes: keep it self-contained.
"""

from __future__ import annotations

from typing import Any

VALUES_SOURCE = '''
import hashlib

def make_value(key, writer, seq, size):
    """bytes of exactly ``size`` (>= 128): a header, a repeated pattern, a checksum."""
    head = f"{key}|{writer}|{seq}|{size}|".encode()
    block = hashlib.sha256(head).digest()
    body_len = size - len(head) - 32
    body = (block * (body_len // 32 + 1))[:body_len]
    return head + body + hashlib.sha256(head + body).digest()

def check_value(key, value):
    """(writer, seq) of a whole value for ``key``; raises ValueError on a torn or foreign one."""
    if len(value) < 33:
        raise ValueError(f"too short: {len(value)}")
    rest, digest = value[:-32], value[-32:]
    if hashlib.sha256(rest).digest() != digest:
        raise ValueError("checksum mismatch (torn or mixed value)")
    fields = rest.split(b"|", 4)
    if len(fields) != 5 or fields[0].decode() != key:
        raise ValueError(f"value of another key: {fields[0][:80]!r}")
    if int(fields[3]) != len(value):
        raise ValueError(f"length {len(value)}, header says {int(fields[3])}")
    return fields[1].decode(), int(fields[2])
'''

_values: dict[str, Any] = {}
exec(VALUES_SOURCE, _values)  # the same code the workers run
make_value = _values["make_value"]
check_value = _values["check_value"]
