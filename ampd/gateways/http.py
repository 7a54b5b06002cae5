"""Small blocking HTTP client for loopback health checks, reloads and metrics scrapes."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class HttpResult:
    status: int  # 0 when nothing answered
    body: str


def request(
    url: str, method: str = "GET", timeout: float = 3.0, data: bytes | None = None
) -> HttpResult:
    req = urllib.request.Request(url, method=method, data=data)  # noqa: S310 - loopback URLs built by ampd
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return HttpResult(resp.status, resp.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        return HttpResult(0, str(getattr(e, "reason", e)))


def tcp_listening(listen: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections on HOST:PORT (for servers with no health URL)."""
    host, _, port = listen.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False
