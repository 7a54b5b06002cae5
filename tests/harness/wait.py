"""The suite's one wait: poll a check until it holds, bounded in time.

Every wait for a condition in the tests goes through :func:`wait_for`
(``Prometheus.wait_for`` and ``SysBox.wait_for``, which wait for a Prometheus query and a
systemd unit's properties, are built on it). A test never sleeps for a condition: it names
what it waits for, and a timeout says what that was and what was seen last.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")

MAX_INTERVAL = 1.0  # seconds: the longest pause between two checks
DEFAULT_TIMEOUT = 20.0
DEFAULT_INTERVAL = 0.05


def wait_for(
    check: Callable[[], T | None],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    what: str = "the condition",
    *,
    until: Callable[[T | None], object] = bool,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    detail: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``check`` until ``until(value)`` holds (by default: the value is truthy) and
    return that value; at most ``timeout`` seconds, pausing ``interval`` seconds (at most
    ``MAX_INTERVAL``, never past the deadline) between two calls.

    An exception of a ``retry_on`` type raised by ``check`` counts as "not yet" and is
    retried until the deadline; any other exception propagates at once. ``check`` runs at
    least once, and once more at the deadline. On a timeout an ``AssertionError`` names
    ``what``, the last value or exception seen and, when given, ``detail()`` (say, a
    journal); it is chained to that last exception.
    """
    if timeout < 0 or interval <= 0:
        raise ValueError(f"wait_for: timeout {timeout} (>= 0), interval {interval} (> 0)")
    pause = min(interval, MAX_INTERVAL)
    deadline = clock() + timeout
    while True:
        error: BaseException | None = None
        try:
            last: object = check()
        except retry_on as e:
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # it holds the response's socket
            last = error = e
        else:
            if until(cast("T | None", last)):
                # bool(value) held, or the caller's ``until`` accepted it
                return cast(T, last)
        left = deadline - clock()
        if left <= 0:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last: {last!r}){extra}"
            ) from error
        sleep(min(pause, left))
