"""Build Prometheus remote-write request bodies without protobuf or snappy libraries.

The body is a ``prometheus.WriteRequest`` protobuf, snappy block-compressed. Both are
simple enough to encode by hand: protobuf needs varints and length-delimited fields;
snappy accepts a stream made only of literals.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    return _field(1, name.encode()) + _field(2, value.encode())


def _sample(value: float, timestamp_ms: int) -> bytes:
    # field 1: double (wire type 1), field 2: int64 varint (wire type 0)
    return b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(timestamp_ms & (2**64 - 1))


def write_request(
    series: Iterable[tuple[Mapping[str, str], Sequence[tuple[float, int]]]],
) -> bytes:
    """Encode [(labels incl. __name__, [(value, timestamp_ms), ...]), ...] (not compressed)."""
    body = bytearray()
    for labels, samples in series:
        ts = b"".join(_field(1, _label(k, v)) for k, v in sorted(labels.items()))
        ts += b"".join(_field(2, _sample(v, t)) for v, t in samples)
        body += _field(1, ts)
    return bytes(body)


def snappy_block(data: bytes) -> bytes:
    """Snappy block format made of literal elements only (valid, not smaller)."""
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i : i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)


def body(series: Iterable[tuple[Mapping[str, str], Sequence[tuple[float, int]]]]) -> bytes:
    """A ready-to-POST remote-write body."""
    return snappy_block(write_request(series))
