"""Small blocking HTTP client for loopback health checks, reloads and metrics scrapes.

Every request here goes straight to the address in its URL: ``http_proxy`` and the other
``*_proxy`` variables are ignored (a proxy would see loopback traffic and credentials).

``owner=UID`` makes a request trust the server only if it runs as that user: before
connecting, the listening socket on HOST:PORT must belong to ``UID``; after connecting
and before a single byte is sent, so must the socket that accepted this connection (the
listener may have changed in between). Otherwise nothing is sent and the result carries
``status=0`` and ``foreign_uid`` (the squatter's uid, or -1 when it cannot be told).
Redirects are not followed for an owner-checked request.
"""

from __future__ import annotations

import functools
import http.client
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ampd.gateways.listeners import connection_owner, listener_owner, split_hostport

__all__ = [
    "HttpResult",
    "NotOwned",
    "no_proxy_opener",
    "owned_get",
    "request",
    "tcp_check",
    "tcp_listening",
]

UNKNOWN_UID = -1
_FAR_END_WAIT = 0.2  # the accepted socket is in the table as soon as connect() returns


@dataclass(frozen=True)
class HttpResult:
    status: int  # 0 when nothing answered, or nothing was sent (see foreign_uid)
    body: str
    foreign_uid: int | None = None  # who holds the port instead of the expected owner


class NotOwned(OSError):
    """HOST:PORT is held by ``uid``, not by ``expected``: ampd sends it nothing."""

    def __init__(self, host: str, port: int, uid: int, expected: int) -> None:
        who = f"uid {uid}" if uid != UNKNOWN_UID else "an unknown user"
        super().__init__(f"{host}:{port} is held by {who}, not uid {expected}: nothing sent")
        self.uid = uid
        self.expected = expected


def _far_owner(sock: socket.socket) -> int:
    local, remote = sock.getsockname(), sock.getpeername()
    deadline = time.monotonic() + _FAR_END_WAIT
    while True:
        uid = connection_owner((local[0], local[1]), (remote[0], remote[1]))
        if uid is not None or time.monotonic() >= deadline:
            return UNKNOWN_UID if uid is None else uid
        time.sleep(0.005)


def _check_before(host: str, port: int, owner: int) -> None:
    held = listener_owner(host, port)
    if held is not None and held != owner:
        raise NotOwned(host, port, held, owner)


def _check_after(sock: socket.socket, host: str, port: int, owner: int) -> None:
    far = _far_owner(sock)
    if far != owner:
        sock.close()
        raise NotOwned(host, port, far, owner)


class _OwnedConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, owner: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def connect(self) -> None:
        port = self.port or 80
        _check_before(self.host, port, self._owner)
        super().connect()
        assert self.sock is not None
        _check_after(self.sock, self.host, port, self._owner)


class _OwnedHandler(urllib.request.HTTPHandler):
    def __init__(self, owner: int) -> None:
        super().__init__()
        self._owner = owner

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_OwnedConnection, owner=self._owner), req)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # the 3xx is the answer: a redirect could lead past the owner check


def no_proxy_opener(*handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
    """An opener that ignores ``*_proxy`` (for loopback and instance metadata)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)


def _opener(owner: int | None) -> urllib.request.OpenerDirector:
    if owner is None:
        return no_proxy_opener()
    return no_proxy_opener(_OwnedHandler(owner), _NoRedirect())


def request(
    url: str,
    method: str = "GET",
    timeout: float = 3.0,
    data: bytes | None = None,
    *,
    owner: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResult:
    """One request. ``owner``: the uid the server must run as (see the module docstring);
    None checks nothing, for servers whose user ampd does not know."""
    if owner is not None and urlsplit(url).scheme != "http":
        return HttpResult(0, f"refusing {url}: owner checks are for http:// loopback URLs")
    req = urllib.request.Request(url, method=method, data=data, headers=dict(headers or {}))  # noqa: S310 - loopback URLs built by ampd
    try:
        with _opener(owner).open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.read().decode("utf-8", "replace"))
    except urllib.error.URLError as e:
        if isinstance(e.reason, NotOwned):
            return HttpResult(0, str(e.reason), foreign_uid=e.reason.uid)
        return HttpResult(0, str(e.reason))
    except NotOwned as e:
        return HttpResult(0, str(e), foreign_uid=e.uid)
    except (OSError, TimeoutError, http.client.HTTPException) as e:
        return HttpResult(0, str(e))


def owned_get(owner: int, timeout: float = 3.0) -> Callable[[str], HttpResult]:
    """A ``fetch(url)`` that GETs only from a server running as ``owner``: for readers
    that take one (promqueue, promreload)."""

    def fetch(url: str) -> HttpResult:
        return request(url, timeout=timeout, owner=owner)

    return fetch


@dataclass(frozen=True)
class TcpResult:
    ok: bool
    foreign_uid: int | None = None
    detail: str = ""


def tcp_check(listen: str, timeout: float = 2.0, *, owner: int | None = None) -> TcpResult:
    """Whether something accepts connections on HOST:PORT (for servers with no health URL),
    and, with ``owner``, whether that something runs as ``owner``."""
    host, port = split_hostport(listen)
    try:
        if owner is not None:
            _check_before(host, port, owner)
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if owner is not None:
                _check_after(sock, host, port, owner)
            return TcpResult(True)
    except NotOwned as e:
        return TcpResult(False, e.uid, str(e))
    except OSError as e:
        return TcpResult(False, None, str(e))


def tcp_listening(listen: str, timeout: float = 2.0, *, owner: int | None = None) -> bool:
    return tcp_check(listen, timeout, owner=owner).ok
