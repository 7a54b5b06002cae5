"""Native journald entries over ``/run/systemd/journal/socket``.

Under systemd, stderr is connected to the journal (``JOURNAL_STREAM`` names it), but a
line on a stream has only the unit's default priority. Sending each entry natively gives
it ``PRIORITY``, a short ``MESSAGE`` and the structured fields, so that
``journalctl -u ampd -p warning`` lists exactly the problems.

The protocol (systemd's ``sd_journal_sendv``): one datagram per entry, ``KEY=value``
lines; a value with a newline is sent as ``KEY\\n`` + its length (64-bit little endian) +
the bytes + ``\\n``. Entries too large for a datagram are passed in a sealed memfd in
systemd proper; ampd keeps its entries small and truncates what would not fit.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
MAX_VALUE = 48 * 1024  # well under the datagram limit


def stderr_is_journal(env: Mapping[str, str] | None = None) -> bool:
    """True when stderr is the journal stream systemd gave this process."""
    value = (env if env is not None else os.environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev or not ino:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == value


def encode(fields: Mapping[str, str]) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:MAX_VALUE]
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSender:
    """Sends entries; never raises. ``failed`` counts entries that could not be sent."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self.failed = 0
        self._sock: socket.socket | None = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        return self._sock

    def send(self, fields: Mapping[str, str]) -> bool:
        try:
            self._socket().sendto(encode(fields), self.path)
        except OSError:
            self.failed += 1
            return False
        return True
