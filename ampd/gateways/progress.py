"""The last moment a reconcile pass made progress: what the watchdog pinger reads.

A pass may legitimately take longer than ``WatchdogSec`` (a ``systemctl`` call that waits
for a slow stop, a bounded wait for the remote-write queue), so WATCHDOG=1 cannot mean
"a pass ended". It means "something completed recently": every completed step of a pass
(a systemctl call, a change applied, a poll of Prometheus) calls ``mark()``, and the
daemon's pinger pings only while the last mark is recent. Every external call is bounded
below ``WatchdogSec``, so a pass that makes progress keeps marking, and a pass stuck in
one call stops the pings and ends in systemd's watchdog restart.

One process-wide clock (a float written under the GIL) because progress happens in the
pass thread, the AWS worker and the supervisor's threads alike, and it must cost nothing.
"""

from __future__ import annotations

import time

__all__ = ["age", "mark"]

_last = time.monotonic()


def mark() -> None:
    """Something completed just now."""
    global _last  # noqa: PLW0603 - one process-wide clock, see the module docstring
    _last = time.monotonic()


def age() -> float:
    """Seconds since the last mark."""
    return time.monotonic() - _last
