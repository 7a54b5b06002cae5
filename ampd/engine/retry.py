"""The retry book: the one place that decides when a failed resource is tried again.

Both sides record every outcome here. A temporary failure is retried after a capped,
jittered exponential backoff that grows with each failure in a row; a permanent failure
is remembered with the fingerprint of the inputs it failed on and is not tried again
until those inputs change (Argo CD's "will not retry until the spec changes"). The book
alone turns outcomes and wake-up hints into ``requeue_after``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ampd.core import Outcome, ResourceKey

BACKOFF_CAP = 300.0  # seconds: the longest wait between two tries
BACKOFF_BASE = 5.0  # a temporary failure that names no delay
REPEAT_BASE = 1.0  # a "try again now" (delay 0) that failed again: back off from here


class AtLeast(float):
    """A delay that is also a minimum: the server said how long to wait (``Retry-After``).

    It is a float, so it travels as any ``TemporaryError.delay`` does; the book's jitter
    and growth never bring the wait below it (only the book's cap does).
    """


def backoff(
    base: float, attempt: int, *, cap: float = BACKOFF_CAP, rng: random.Random | None = None
) -> float:
    """``base * 2**attempt`` capped at ``cap``, with jitter in [50 %, 100 %]."""
    r = rng or random
    delay = min(cap, base * (2 ** min(attempt, 16)))
    return float(delay * (0.5 + r.random() / 2))


@dataclass(frozen=True)
class Permanent:
    fingerprint: str
    message: str


class RetryBook:
    """Failure counts and remembered permanent failures, keyed by resource.

    Keys are ``ResourceKey`` for resources, or a plain string for things that are not a
    resource (``"aws.reachability"``, ``"pass"``). Thread-safe: the AWS side records from
    its worker thread.
    """

    def __init__(self, rng: random.Random | None = None, *, cap: float = BACKOFF_CAP) -> None:
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._cap = cap
        self._failures: dict[ResourceKey | str, int] = {}
        self._permanent: dict[ResourceKey | str, Permanent] = {}
        self._lock = threading.Lock()

    def blocked(self, key: ResourceKey | str, fingerprint: str) -> str | None:
        """The remembered message when ``key`` failed permanently on these same inputs."""
        with self._lock:
            p = self._permanent.get(key)
        return p.message if p is not None and p.fingerprint == fingerprint else None

    def succeeded(self, key: ResourceKey | str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._permanent.pop(key, None)

    def failed_permanently(self, key: ResourceKey | str, fingerprint: str, message: str) -> None:
        with self._lock:
            self._permanent[key] = Permanent(fingerprint, message)
            self._failures.pop(key, None)

    def failed_temporarily(self, key: ResourceKey | str, delay: float = BACKOFF_BASE) -> float:
        """Count one more failure in a row; the backoff before the next try.

        Never less than an :class:`AtLeast` ``delay`` (capped by the book's cap). A
        ``delay`` of 0 (nothing to wait for: re-read and re-plan) is honoured on the first
        failure only; failing again in a row backs off from ``REPEAT_BASE``, so a re-plan
        that does not help cannot spin.
        """
        floor = float(delay) if isinstance(delay, AtLeast) else 0.0
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
            if delay > 0:
                wait = backoff(delay, n, cap=self._cap, rng=self._rng)
            else:
                wait = backoff(REPEAT_BASE, n - 1, cap=self._cap, rng=self._rng) if n else 0.0
        return max(min(floor, self._cap), wait)

    def failures(self, key: ResourceKey | str) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget_permanent(self) -> None:
        """A new desired state (or an operator's request) clears what was given up on."""
        with self._lock:
            self._permanent.clear()

    def permanent_keys(self) -> set[ResourceKey | str]:
        with self._lock:
            return set(self._permanent)

    @staticmethod
    def requeue_after(outcomes: Iterable[Outcome], hints: Iterable[float] = ()) -> float | None:
        """The soonest of every failed outcome's backoff and every wake-up hint.

        A permanent failure asks for no retry: only a change of its inputs (which queues
        a pass by itself) brings it back.
        """
        waits = [o.retry_after for o in outcomes if not o.ok and o.retry_after is not None]
        waits += [h for h in hints if h is not None]
        return max(0.0, min(waits)) if waits else None
