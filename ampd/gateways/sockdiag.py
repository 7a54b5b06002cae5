"""Exact socket-owner lookups through NETLINK ``sock_diag`` (Linux's ``ss`` interface).

``/proc/self/net/tcp{,6}`` lists every socket of the namespace, so finding one row costs
time in proportion to how many sockets *any* local user holds: a user with 30,000 idle
sockets makes each lookup read megabytes. ``sock_diag`` asks the kernel for one socket by
its exact 4-tuple (``SOCK_DIAG_BY_FAMILY`` with ``inet_diag_req_v2``, no ``NLM_F_DUMP``):
a hash lookup, whatever else is open. The answer (``inet_diag_msg``) carries the owner
uid and the inode.

Rules kept from the table scan (ampd.gateways.peers):

- inode 0 means no process holds the socket any more (TIME_WAIT, or orphaned after
  close(), which the kernel reports as uid 0): "not a live socket", never "root";
- the answer must be the socket asked for: the kernel's exact lookup falls back to a
  *listener* on the requested destination when no connection matches, so the reply's
  state and both ends are checked.

``listener_owner`` is the LISTEN-side question ("who owns the socket accepting on
host:port?"): a dump restricted to listening sockets and that source port, a short list.

Raises SockDiagUnavailable when the netlink family cannot be used (not Linux, a seccomp
or ``RestrictAddressFamilies=`` filter without AF_NETLINK): callers fall back to the scan.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator

__all__ = [
    "NETLINK_SOCK_DIAG",
    "SOCK_DIAG_BY_FAMILY",
    "Address",
    "DiagEntry",
    "SockDiagUnavailable",
    "connection_owner",
    "listener_owner",
]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_REQUEST = 0x01
_NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
_TCP_LISTEN = 10
_TCPF_ALL = 0xFFF
_NOCOOKIE = 0xFFFFFFFF
_TIMEOUT = 2.0  # the kernel answers at once; this only bounds a wedged netlink socket

_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid:
# sport, dport (network order), src[16], dst[16], if, cookie[2]
_REQ_HEAD = struct.Struct("=BBBBI")
_PORTS = struct.Struct("!HH")
_REQ_TAIL = struct.Struct("=16s16sIII")
# inet_diag_msg: family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
_MSG_HEAD = struct.Struct("=BBBB")  # then _PORTS
_MSG_TAIL = struct.Struct("=16s16sIIIIIIII")
_MSG_SIZE = _MSG_HEAD.size + _PORTS.size + _MSG_TAIL.size  # 72

Address = tuple[str, int]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class SockDiagUnavailable(OSError):
    """NETLINK_SOCK_DIAG cannot be used here."""


class DiagEntry:
    """One socket as the kernel describes it (the fields ampd reads)."""

    __slots__ = ("dst", "inode", "src", "state", "uid")

    def __init__(self, state: int, src: Address, dst: Address, uid: int, inode: int) -> None:
        self.state = state
        self.src = src
        self.dst = dst
        self.uid = uid
        self.inode = inode


def _ip(host: str) -> IP:
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _packed(ip: IP) -> bytes:
    return ip.packed.ljust(16, b"\0")


def _decode(family: int, raw: bytes) -> IP:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[:4])
    return _ip(str(ipaddress.IPv6Address(raw)))


def _open() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as e:  # AttributeError: no AF_NETLINK (not Linux)
        raise SockDiagUnavailable(
            getattr(e, "errno", None) or errno.EAFNOSUPPORT, f"sock_diag unavailable: {e}"
        ) from None
    sock.settimeout(_TIMEOUT)
    return sock


def _request(family: int, flags: int, states: int, sport: int, dport: int,
             src: bytes, dst: bytes) -> bytes:  # fmt: skip
    body = (
        _REQ_HEAD.pack(family, socket.IPPROTO_TCP, 0, 0, states)
        + _PORTS.pack(sport, dport)
        + _REQ_TAIL.pack(src, dst, 0, _NOCOOKIE, _NOCOOKIE)
    )
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, 1, 0) + body


def _messages(sock: socket.socket, request: bytes, *, dump: bool) -> Iterator[DiagEntry]:
    """Send one request and yield the sockets of the answer (ENOENT: none). An exact
    lookup is answered in one datagram without NLMSG_DONE; a dump ends with DONE."""
    try:
        sock.sendto(request, (0, 0))
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    return
                start = offset + _NLMSGHDR.size
                offset += (length + 3) & ~3
                if kind == _NLMSG_DONE:
                    return
                if kind == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, start)
                    if code in (0, -errno.ENOENT):
                        return
                    raise SockDiagUnavailable(-code, f"sock_diag: {os.strerror(-code)}")
                if kind != SOCK_DIAG_BY_FAMILY or start + _MSG_SIZE > len(data):
                    continue
                fam, state, _timer, _retrans = _MSG_HEAD.unpack_from(data, start)
                sport, dport = _PORTS.unpack_from(data, start + _MSG_HEAD.size)
                src, dst, *_rest, uid, inode = _MSG_TAIL.unpack_from(
                    data, start + _MSG_HEAD.size + _PORTS.size
                )
                yield DiagEntry(
                    state,
                    (str(_decode(fam, src)), sport),
                    (str(_decode(fam, dst)), dport),
                    uid,
                    inode,
                )
            if not data or not dump:
                return
    except OSError as e:
        if isinstance(e, SockDiagUnavailable):
            raise
        raise SockDiagUnavailable(e.errno or errno.EIO, f"sock_diag: {e}") from None


def connection_owner(local: Address, remote: Address) -> int | None:
    """The uid of the live TCP socket whose own end is ``local`` and whose peer is
    ``remote``, or None (no such socket, or one no process holds: inode 0).

    For a connection a server accepted, pass the *peer* address as ``local`` and the
    server's own end as ``remote`` (the same convention as ampd.gateways.peers)."""
    lip, rip = _ip(local[0]), _ip(remote[0])
    if lip.version != rip.version:
        return None
    family = socket.AF_INET if lip.version == 4 else socket.AF_INET6
    request = _request(
        family, _NLM_F_REQUEST, _TCPF_ALL, local[1], remote[1], _packed(lip), _packed(rip)
    )
    with _open() as sock:
        for entry in _messages(sock, request, dump=False):
            if (
                entry.state == _TCP_LISTEN
                or entry.src != (str(lip), local[1])
                or entry.dst != (str(rip), remote[1])
            ):
                continue  # the kernel's listener fallback, not the connection asked for
            return entry.uid if entry.inode != 0 else None
    return None


def listener_owner(host: str, port: int) -> int | None:
    """The uid of the live socket that accepts TCP connections to ``host:port``: one
    bound to exactly that address, else a wildcard one (0.0.0.0 or ::); None when
    nothing listens there."""
    want = _ip(host)
    exact: int | None = None
    wildcard: int | None = None
    with _open() as sock:
        for family in (socket.AF_INET, socket.AF_INET6):
            request = _request(
                family,
                _NLM_F_REQUEST | _NLM_F_DUMP,
                1 << _TCP_LISTEN,
                port,
                0,
                bytes(16),
                bytes(16),
            )
            for entry in _messages(sock, request, dump=True):
                if entry.state != _TCP_LISTEN or entry.src[1] != port or entry.inode == 0:
                    continue
                bound = _ip(entry.src[0])
                if bound == want:
                    exact = entry.uid
                elif bound.is_unspecified and (
                    bound.version == want.version or family == socket.AF_INET6
                ):
                    wildcard = entry.uid if wildcard is None else wildcard
    return exact if exact is not None else wildcard
