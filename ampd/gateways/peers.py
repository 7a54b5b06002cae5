"""Who is on the other end of a local TCP connection: the owner uid of the peer's socket.

Linux lists every TCP socket of the network namespace in ``/proc/self/net/tcp`` and
``tcp6`` (``/proc/self/net`` rather than ``/proc/net``: it stays visible under systemd's
``ProcSubset=pid``). For a connection the proxy accepted, the peer's socket is the row
whose *local* end is the peer's address and whose *remote* end is the proxy's address;
its ``uid`` column is the user that created that socket.

Rows with inode 0 are skipped: they are sockets no process holds any more (TIME_WAIT, or
orphaned after close(), which the kernel reports as uid 0). A client that closes its end
right after sending cannot pass for root that way; the lookup finds nothing instead.

``peer_owner`` is what the proxy calls: the exact NETLINK ``sock_diag`` lookup of the one
socket (ampd.gateways.sockdiag), whose cost does not grow with the number of sockets other
users hold, and this table scan only where netlink is unavailable. Both block (a syscall,
a file read), so the proxy runs them in a worker thread.
"""

from __future__ import annotations

import ipaddress
import pwd
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import structlog

from ampd.gateways import sockdiag

__all__ = [
    "PeerLookupError",
    "is_loopback",
    "peer_owner",
    "socket_owner",
    "uids_of",
]

log = structlog.get_logger("ampd.peers")

PROC_NET = Path("/proc/self/net")

Address = tuple[str, int]


class PeerLookupError(OSError):
    """The socket tables cannot be read (not Linux, /proc not mounted, ...)."""


def _normal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _kernel_hex(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, v6: bool) -> str:
    """``ip:port`` spelled as /proc/net/tcp{,6} spells it: the address as 32-bit words
    in host byte order, each in hex; the port in hex."""
    if v6:
        packed = (
            ip.packed
            if isinstance(ip, ipaddress.IPv6Address)
            else ipaddress.IPv6Address(f"::ffff:{ip}").packed
        )
        words = struct.unpack("=4I", packed)
        text = "".join(f"{w:08X}" for w in words)
    else:
        if not isinstance(ip, ipaddress.IPv4Address):
            return ""  # an IPv6 end cannot be in the IPv4 table
        (word,) = struct.unpack("=I", ip.packed)
        text = f"{word:08X}"
    return f"{text}:{port:04X}"


def _rows(path: Path) -> Iterable[list[str]]:
    try:
        with path.open("rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []  # no IPv6 in this kernel, say
    except OSError as e:
        raise PeerLookupError(e.errno, f"cannot read {path}: {e.strerror}") from None
    return (line.split() for line in data.decode("ascii", "replace").splitlines()[1:])


def socket_owner(local: Address, remote: Address, proc_net: Path = PROC_NET) -> int | None:
    """The uid of the live TCP socket with these two ends, seen from its own side, or
    None when this namespace has no such socket (a remote host, or a closed client).

    For a connection accepted by a server, pass the *peer* address as ``local`` and the
    server's own end of the connection as ``remote``. Raises PeerLookupError when the
    tables cannot be read at all."""
    lip, rip = _normal(local[0]), _normal(remote[0])
    if not (proc_net / "tcp").exists():
        raise PeerLookupError(2, f"{proc_net}/tcp does not exist (not Linux?)")
    for table, v6 in (("tcp", False), ("tcp6", True)):
        want_local = _kernel_hex(lip, local[1], v6)
        want_remote = _kernel_hex(rip, remote[1], v6)
        if not want_local or not want_remote:
            continue
        for row in _rows(proc_net / table):
            # sl local rem st queues tr:when retrnsmt uid timeout inode ...
            if len(row) < 10 or row[1] != want_local or row[2] != want_remote:
                continue
            if row[9] == "0":
                continue  # no process holds it any more
            return int(row[7])
    return None


def uids_of(names: Iterable[str]) -> dict[str, int]:
    """The uids of the users that exist among ``names`` (from the passwd database)."""
    found: dict[str, int] = {}
    for name in names:
        try:
            found[name] = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
    return found


class _Netlink:
    """Whether sock_diag works here; found out once (a filter does not come and go)."""

    usable = True
    lock = threading.Lock()


def peer_owner(local: Address, remote: Address) -> int | None:
    """``socket_owner`` by the exact sock_diag lookup, or by the table scan when netlink
    cannot be used in this process (logged once). Blocking: call it off the event loop."""
    if _Netlink.usable:
        try:
            return sockdiag.connection_owner(local, remote)
        except sockdiag.SockDiagUnavailable as e:
            with _Netlink.lock:
                if _Netlink.usable:
                    log.warning("peers.sock_diag_unavailable", error=str(e), fallback="proc")
                _Netlink.usable = False
    return socket_owner(local, remote)


def is_loopback(host: str) -> bool:
    try:
        return _normal(host).is_loopback
    except ValueError:
        return False
