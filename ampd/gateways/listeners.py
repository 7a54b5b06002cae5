"""Who owns a loopback listener, and who owns the far end of a connection to it.

The kernel lists every TCP socket of the network namespace in ``/proc/self/net/tcp`` and
``tcp6`` (readable under the units' ``ProcSubset=pid``), with the uid that created it. A
server's accepted sockets carry the uid of its listening socket, so both questions are
answered from the same table:

- ``listener_owner(host, port)``: the uid of the LISTEN socket (state ``0A``) that a
  connection to HOST:PORT would reach (through ampd.gateways.sockdiag when netlink is
  allowed, else from the table). A socket bound to that very address wins over a
  wildcard one (``0.0.0.0``, ``::``), as in the kernel; ``None`` when nothing listens.
- ``connection_owner(local, remote)``: the uid of the socket at the far end of one of
  ampd's own connections, so that the answer is about the server that accepted *this*
  connection, not one that listened a moment ago.

A listening row with inode 0 is never believed. An accepted connection that the server
has not yet taken with ``accept()`` has inode 0 too, but carries its listener's uid
(``SYN_RECV`` and ``ESTABLISHED`` rows); other inode-0 rows (``TIME_WAIT``) read uid 0 and
are ignored.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ampd.gateways import sockdiag

__all__ = ["Row", "connection_owner", "listener_owner", "parse_table", "split_hostport"]

TABLES = (Path("/proc/self/net/tcp"), Path("/proc/self/net/tcp6"))
LISTEN = "0A"
_LIVE = ("01", "03")  # ESTABLISHED, SYN_RECV: a server end that still carries its uid

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Row:
    local: Addr
    local_port: int
    remote: Addr
    remote_port: int
    state: str
    uid: int
    inode: int


def _addr(hexaddr: str) -> Addr:
    raw = bytes.fromhex(hexaddr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    fixed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(fixed) == 4:
        return ipaddress.IPv4Address(fixed)
    return ipaddress.IPv6Address(fixed)


def parse_table(text: str) -> Iterator[Row]:
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        try:
            la, lp = f[1].split(":")
            ra, rp = f[2].split(":")
            yield Row(_addr(la), int(lp, 16), _addr(ra), int(rp, 16), f[3], int(f[7]), int(f[9]))
        except ValueError:
            continue


def _rows() -> Iterator[Row]:
    for table in TABLES:
        try:
            text = table.read_text()
        except OSError:
            continue
        yield from parse_table(text)


def _plain(a: Addr) -> Addr:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def split_hostport(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9090`` / ``[::1]:9090`` -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def connect_address(host: str) -> Addr:
    """Where a client that dials ``host`` lands: a wildcard means this host's loopback."""
    try:
        a = _plain(ipaddress.ip_address(host))
    except ValueError:
        a = ipaddress.ip_address(socket.gethostbyname(host))
    if a.is_unspecified:
        return ipaddress.ip_address("::1" if a.version == 6 else "127.0.0.1")
    return a


def listener_owner(host: str, port: int) -> int | None:
    """The uid that owns the listening socket a connection to HOST:PORT reaches, or None
    when nothing listens there. Asked of the kernel through sock_diag (a short list,
    however many sockets other users hold), else read from the table."""
    target = connect_address(host)
    try:
        return sockdiag.listener_owner(str(target), port)
    except sockdiag.SockDiagUnavailable:  # no AF_NETLINK here (ampd.service allows none)
        return _scanned_listener_owner(target, port)


def _scanned_listener_owner(target: Addr, port: int) -> int | None:
    exact: int | None = None
    wildcard: int | None = None
    for row in _rows():
        if row.state != LISTEN or row.local_port != port or row.inode == 0:
            continue
        local = _plain(row.local)
        if local == target:
            exact = row.uid
        elif local.is_unspecified and local.version in (target.version, 6):
            # ``::`` also takes IPv4 connections unless it is v6only (the table cannot
            # say); a ``0.0.0.0`` row of the same port is the one IPv4 connections reach.
            same_family = local.version == target.version
            wildcard = row.uid if wildcard is None or same_family else wildcard
    return exact if exact is not None else wildcard


def connection_owner(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The uid of the socket at the far end of ampd's connection ``local -> remote``
    (each ``(host, port)`` as ``getsockname``/``getpeername`` give them), or None when
    the table has no such socket."""
    mine = (_plain(ipaddress.ip_address(local[0])), local[1])
    theirs = (_plain(ipaddress.ip_address(remote[0])), remote[1])
    for row in _rows():
        if row.state not in _LIVE:
            continue
        if (_plain(row.local), row.local_port) == theirs and (
            _plain(row.remote),
            row.remote_port,
        ) == mine:
            return row.uid
    return None
