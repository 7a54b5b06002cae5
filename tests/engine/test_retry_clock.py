"""The retry book's backoff over virtual time (tests/harness/clock.py): doubling, the cap,
an AtLeast minimum and the reset on success, as a retrying caller would live them."""

from __future__ import annotations

import random

import pytest

from ampd.core import Kind, ResourceKey
from ampd.engine.retry import BACKOFF_BASE, BACKOFF_CAP, REPEAT_BASE, AtLeast, RetryBook
from tests.harness.clock import FakeClock

KEY = ResourceKey(Kind.FILE, "prometheus.yml")


class FixedJitter(random.Random):
    """Jitter pinned to one end: ``random()`` is always ``value`` (1.0: no jitter at all,
    0.0: the backoff's 50 % floor)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0)
    wall = clock.time()
    assert clock() == clock.monotonic() == 10.0
    clock.sleep(2.5)
    assert clock.advance(0.5) == 13.0
    assert clock.monotonic() == 13.0 and clock.time() == wall + 3.0 and clock.elapsed == 3.0
    assert clock.slept == [2.5]  # advance() is no sleep
    with pytest.raises(ValueError, match="time does not go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="non-negative"):
        clock.sleep(-0.1)


def fail_and_wait(book: RetryBook, clock: FakeClock, times: int, delay: float) -> list[float]:
    """A caller that fails ``times`` in a row and sleeps the book's backoff after each."""
    for _ in range(times):
        clock.sleep(book.failed_temporarily(KEY, delay))
    return clock.slept[-times:]


def test_the_backoff_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    book = RetryBook(FixedJitter(1.0))
    waits = fail_and_wait(book, clock, 9, BACKOFF_BASE)
    assert waits == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, BACKOFF_CAP, BACKOFF_CAP, BACKOFF_CAP]
    assert clock.elapsed == sum(waits)  # virtual: the test itself waited for nothing
    assert book.failures(KEY) == 9


def test_the_jitter_stays_between_half_and_the_whole_backoff() -> None:
    low = fail_and_wait(RetryBook(FixedJitter(0.0)), FakeClock(), 8, BACKOFF_BASE)
    assert low == [2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 150.0, 150.0]
    for seed in range(20):
        waits = fail_and_wait(RetryBook(random.Random(seed)), FakeClock(), 8, BACKOFF_BASE)
        full = [min(BACKOFF_CAP, BACKOFF_BASE * 2**n) for n in range(8)]
        assert all(f / 2 <= w <= f for w, f in zip(waits, full, strict=True)), (seed, waits)


def test_a_smaller_cap_bounds_every_wait() -> None:
    clock = FakeClock()
    waits = fail_and_wait(RetryBook(FixedJitter(1.0), cap=40), clock, 6, BACKOFF_BASE)
    assert waits == [5.0, 10.0, 20.0, 40.0, 40.0, 40.0]
    assert clock.elapsed == 155.0


def test_an_at_least_delay_is_a_minimum_through_jitter_and_growth() -> None:
    clock = FakeClock()
    book = RetryBook(FixedJitter(0.0))  # the lowest jitter: half of each backoff
    waits = fail_and_wait(book, clock, 6, AtLeast(30))
    # backoff(30, n) at 50 % is 15, 30, 60, 120, 150, 150: never below the 30 s asked for
    assert waits == [30.0, 30.0, 60.0, 120.0, 150.0, 150.0]
    capped = RetryBook(FixedJitter(0.0), cap=100)
    assert capped.failed_temporarily(KEY, AtLeast(500)) == 100.0  # only the cap lowers it


def test_success_resets_the_backoff() -> None:
    clock = FakeClock()
    book = RetryBook(FixedJitter(1.0))
    assert fail_and_wait(book, clock, 4, BACKOFF_BASE) == [5.0, 10.0, 20.0, 40.0]
    book.succeeded(KEY)
    assert book.failures(KEY) == 0
    assert fail_and_wait(book, clock, 2, BACKOFF_BASE) == [5.0, 10.0]  # from the start
    assert clock.elapsed == 90.0


def test_a_zero_delay_is_honoured_once_then_backs_off_from_the_repeat_base() -> None:
    clock = FakeClock()
    book = RetryBook(FixedJitter(1.0))
    waits = fail_and_wait(book, clock, 4, 0.0)
    assert waits == [0.0, REPEAT_BASE, 2 * REPEAT_BASE, 4 * REPEAT_BASE]
    book.succeeded(KEY)
    assert book.failed_temporarily(KEY, 0.0) == 0.0


def test_the_next_try_is_due_at_the_soonest_requeue() -> None:
    """A caller that schedules its next pass at ``now + requeue_after`` on the fake clock."""
    clock = FakeClock(start=1000.0)
    book = RetryBook(FixedJitter(1.0))
    due: list[float] = []
    for _ in range(3):
        wait = book.failed_temporarily(KEY, BACKOFF_BASE)
        after = RetryBook.requeue_after([], hints=[wait, 60.0])
        assert after is not None
        due.append(clock.monotonic() + after)
        clock.advance(after)
    assert due == [1005.0, 1015.0, 1035.0]
    assert clock.monotonic() == 1035.0
