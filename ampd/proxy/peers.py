"""Which local users the proxy signs for.

Loopback is not an authorization boundary on a multi-user host: any local user can reach
127.0.0.1:8005, and the proxy signs with the host's role. So each accepted connection is
mapped to the uid that owns the client's socket (ampd.gateways.peers: the kernel's
exact sock_diag answer, looked up off the event loop) and only allowed uids get their
requests signed. The verdict is taken once per connection, at its first request, and
kept for the connection's life (a socket's owner cannot change). A reload builds a new
gate, so open connections are checked again against the new list.

Refusal reasons (the ``reason`` label of ``ampd_proxy_refused_total``):

- ``uid``: the client's socket belongs to a user that is not allowed;
- ``peer_unknown``: no live socket in this network namespace matches the connection
  (the client closed it already, or the tables cannot be read), so nobody vouches for it.

A peer that is not on loopback and has no local socket is a remote host; it is accepted
only when the settings allow non-loopback listeners (``allow_non_loopback``), where the
operator has accepted that anything reaching the address can have requests signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor

import structlog

from ampd.core import PROCESS_USERS
from ampd.gateways.peers import PeerLookupError, is_loopback, peer_owner, uids_of

__all__ = ["ANY", "OwnerLookup", "PeerGate", "Verdict", "resolve_allowed"]

log = structlog.get_logger("ampd.proxy")

ANY = "any"  # the settings value that switches the check off
Address = tuple[str, int]
OwnerLookup = Callable[[Address, Address], int | None]


class Verdict:
    """The outcome for one connection: ``reason`` is None when it may be signed for."""

    __slots__ = ("reason", "uid")

    def __init__(self, reason: str | None, uid: int | None) -> None:
        self.reason = reason
        self.uid = uid


def resolve_allowed(setting: tuple[int | str, ...] | str | None) -> frozenset[int] | None:
    """The allowed uids from the settings value: None (the packaged Prometheus and Grafana
    users; never root), ``"any"`` (no check: returns None), or a list of uids and user
    names (names that do not exist are left out, with a warning)."""
    if setting == ANY:
        return None
    if setting is None:
        setting = (PROCESS_USERS["prometheus"], PROCESS_USERS["grafana"])
    assert not isinstance(setting, str)
    uids = {u for u in setting if isinstance(u, int)}
    names = [n for n in setting if isinstance(n, str)]
    found = uids_of(names)
    missing = sorted(set(names) - set(found))
    if missing:
        log.warning("proxy.allowed_users_missing", users=missing)
    return frozenset(uids | set(found.values()))


class PeerGate:
    """Decides, per connection, whether the proxy signs for the peer.

    ``allowed`` None switches the check off. ``owner`` is the socket lookup (the exact
    sock_diag query, the table scan where netlink is unavailable; tests may pass their
    own). It blocks, so it runs on ``executor`` (a thread), never on the event loop: a
    user holding many sockets slows nobody else's requests. ``allow_remote``: accept
    peers that are not local at all.
    """

    def __init__(
        self,
        allowed: Iterable[int] | None,
        *,
        allow_remote: bool = False,
        owner: OwnerLookup = peer_owner,
        executor: Executor | None = None,
    ) -> None:
        self.allowed = frozenset(allowed) if allowed is not None else None
        self._allow_remote = allow_remote
        self._owner = owner
        self._executor = executor
        self._verdicts: weakref.WeakKeyDictionary[asyncio.BaseTransport, Verdict] = (
            weakref.WeakKeyDictionary()
        )
        self._lookup_failed_once = False

    async def check(self, transport: asyncio.BaseTransport | None) -> Verdict:
        if self.allowed is None:
            return Verdict(None, None)
        if transport is None:  # the connection is already gone
            return Verdict("peer_unknown", None)
        try:
            return self._verdicts[transport]
        except (KeyError, TypeError):
            pass
        verdict = await self._decide(transport)
        # a transport that takes no weak reference is decided again at each request
        with contextlib.suppress(TypeError):
            self._verdicts[transport] = verdict
        return verdict

    def _lookup_if_open(
        self, transport: asyncio.BaseTransport, peer: Address, own: Address
    ) -> int | None:
        """The lookup, unless the connection closed while it waited for a thread: a
        flood of connections that give up must not leave a queue of lookups behind it
        (with the /proc scan, each costs more the more sockets there are)."""
        if transport.is_closing():  # a plain attribute read; a stale answer only costs a lookup
            return None
        return self._owner(peer, own)

    async def _decide(self, transport: asyncio.BaseTransport) -> Verdict:
        peer = transport.get_extra_info("peername")
        own = transport.get_extra_info("sockname")
        if not peer or not own:
            return Verdict("peer_unknown", None)
        peer_addr: Address = (str(peer[0]), int(peer[1]))
        own_addr: Address = (str(own[0]), int(own[1]))
        loop = asyncio.get_running_loop()
        try:
            uid = await loop.run_in_executor(
                self._executor, self._lookup_if_open, transport, peer_addr, own_addr
            )
        except PeerLookupError as e:
            if not self._lookup_failed_once:
                log.error("proxy.peer_lookup_failed", error=str(e))
                self._lookup_failed_once = True
            return Verdict("peer_unknown", None)
        if uid is None:
            if self._allow_remote and not is_loopback(peer_addr[0]):
                return Verdict(None, None)
            return Verdict("peer_unknown", None)
        assert self.allowed is not None
        return Verdict(None if uid in self.allowed else "uid", uid)
