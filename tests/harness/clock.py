"""A fake clock for timer and backoff logic: virtual time that only moves when told.

ampd's timers take their clocks as arguments (``clock: Callable[[], float]``, a monotonic
clock; ``wall_clock`` for epoch seconds; ``sleep: Callable[[float], None]``). A
:class:`FakeClock` stands in for all three, so a test of a 300 s backoff takes no real
time::

    clock = FakeClock()
    side = AwsSide(..., clock=clock, wall_clock=clock.time)
    clock.advance(121)
    apply_command(..., clock=clock, sleep=clock.sleep)
    assert clock.slept == [5.0, 10.0]
"""

from __future__ import annotations

import threading

# 2026-01-01T00:00:00Z: where the fake wall clock starts (any fixed, plausible epoch time)
DEFAULT_EPOCH = 1_767_225_600.0


class FakeClock:
    """Virtual time: ``monotonic()`` starts at ``start``, ``time()`` at ``epoch``; both move
    together, only by :meth:`advance` or :meth:`sleep`. Calling the clock itself is
    ``monotonic()``, so it passes as a ``clock=`` argument. Thread-safe (the AWS side reads
    its clock from a worker thread)."""

    def __init__(self, start: float = 0.0, epoch: float = DEFAULT_EPOCH) -> None:
        self._elapsed = 0.0
        self._start = start
        self._epoch = epoch
        self._lock = threading.Lock()
        self.slept: list[float] = []  # every sleep(dt) asked for, in order

    def monotonic(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def __call__(self) -> float:
        return self.monotonic()

    def time(self) -> float:
        """Wall-clock (epoch) seconds, moving with ``monotonic()``."""
        with self._lock:
            return self._epoch + self._elapsed

    def advance(self, dt: float) -> float:
        """Move time forward by ``dt`` seconds; the new ``monotonic()``."""
        if dt < 0:
            raise ValueError(f"time does not go back: advance({dt})")
        with self._lock:
            self._elapsed += dt
            return self._start + self._elapsed

    def sleep(self, dt: float) -> None:
        """What ``time.sleep`` would do, at once: records ``dt`` and advances by it."""
        if dt < 0:
            raise ValueError(f"sleep length must be non-negative: sleep({dt})")
        self.slept.append(dt)
        self.advance(dt)

    @property
    def elapsed(self) -> float:
        """Seconds of virtual time since the clock was made."""
        with self._lock:
            return self._elapsed
