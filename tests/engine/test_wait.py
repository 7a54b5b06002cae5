"""The suite's one wait (tests/harness/wait.py), driven by a fake clock: no real waiting."""

from __future__ import annotations

import pytest

from tests.harness.clock import FakeClock
from tests.harness.wait import MAX_INTERVAL, wait_for


def test_returns_the_first_truthy_value() -> None:
    clock = FakeClock()
    values = iter([None, 0, "", [], {"ready": True}])
    got = wait_for(lambda: next(values), 5, 0.1, "ready", clock=clock, sleep=clock.sleep)
    assert got == {"ready": True}
    assert clock.slept == [0.1] * 4  # four "not yet"s, one pause after each


def test_a_value_that_holds_at_once_is_returned_without_a_pause() -> None:
    clock = FakeClock()
    assert wait_for(lambda: 7, what="seven", clock=clock, sleep=clock.sleep) == 7
    assert clock.slept == []


def test_until_decides_when_the_value_is_ready() -> None:
    clock = FakeClock()
    seen = iter([[1], [1, 2], []])
    got = wait_for(lambda: next(seen), until=lambda v: v == [], clock=clock, sleep=clock.sleep)
    assert got == []  # falsy, and still what was waited for


def test_a_timeout_names_what_and_the_last_value() -> None:
    clock = FakeClock()
    count = iter(range(1000))
    with pytest.raises(AssertionError) as caught:
        wait_for(
            lambda: next(count) > 999,
            timeout=2,
            interval=0.5,
            what="the counter to pass 999",
            detail=lambda: "journal: nothing",
            clock=clock,
            sleep=clock.sleep,
        )
    message = str(caught.value)
    assert "timed out after 2 s waiting for the counter to pass 999" in message
    assert "(last: False)" in message and message.endswith("journal: nothing")
    assert clock.elapsed == 2.0  # bounded: it stopped at the deadline
    assert clock.slept == [0.5] * 4  # and checked once more there


def test_exceptions_in_the_check_are_retried_until_the_deadline() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def refused() -> bool:
        calls.append(clock.monotonic())
        raise ConnectionRefusedError("not listening yet")

    with pytest.raises(AssertionError, match=r"the port.*ConnectionRefusedError") as caught:
        wait_for(refused, timeout=1, interval=0.25, what="the port", clock=clock, sleep=clock.sleep)
    assert calls == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_an_exception_then_a_value() -> None:
    clock = FakeClock()
    answers: list[object] = [OSError("reset"), KeyError("half written"), "up"]

    def check() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(check, clock=clock, sleep=clock.sleep) == "up"
    assert len(clock.slept) == 2


def test_an_exception_outside_retry_on_propagates_at_once() -> None:
    clock = FakeClock()

    def broken() -> bool:
        raise KeyError("a bug, not a 'not yet'")

    with pytest.raises(KeyError):
        wait_for(broken, retry_on=(OSError,), clock=clock, sleep=clock.sleep)
    assert clock.slept == []


def test_the_pause_is_bounded_and_never_passes_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(AssertionError):
        wait_for(lambda: False, timeout=2.5, interval=60, clock=clock, sleep=clock.sleep)
    assert max(clock.slept) == MAX_INTERVAL
    assert clock.elapsed == 2.5 and clock.slept[-1] == 0.5


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        wait_for(lambda: True, interval=0)
    with pytest.raises(ValueError, match="timeout"):
        wait_for(lambda: True, timeout=-1)


def test_real_time_default() -> None:
    """Without a fake clock it polls in real time, and a ready check costs nothing."""
    assert wait_for(lambda: "now", timeout=0, what="an immediate answer") == "now"
