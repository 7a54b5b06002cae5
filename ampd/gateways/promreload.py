"""Reload Prometheus by SIGHUP and learn from its own /metrics whether the reload took.

Prometheus runs without ``--web.enable-lifecycle``: with it, any local user could stop it
(``POST /-/quit``). A signal carries no answer, so the answer comes from two of
Prometheus' own gauges, read before and after the signal:

- ``prometheus_config_last_reload_success_timestamp_seconds`` advances: the reload took;
- ``prometheus_config_last_reload_successful`` drops to 0: Prometheus refused the file
  and keeps running the configuration it had.

Some builds export the timestamp in whole seconds: a reload that succeeds in the same
second as the previous one would not move it, so when the previous success is in the
current second, the signal waits for the next one. When the previous reload had already
failed (the gauge is 0 before the signal), a new failure changes neither gauge; then the
process' own log line ("Error reloading config") is the evidence, when the runtime
keeps it. The wait is bounded (``timeout``), and so is every read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ampd.errors import PermanentError, TemporaryError
from ampd.gateways import progress
from ampd.gateways.http import HttpResult, request

__all__ = ["ReloadState", "confirm_reload", "read_reload_state", "reload_failure_detail"]

SUCCESSFUL = "prometheus_config_last_reload_successful"
SUCCESS_TIME = "prometheus_config_last_reload_success_timestamp_seconds"
TIMEOUT = 10.0  # Prometheus reloads in milliseconds; this bounds a wedged one
INTERVAL = 0.001  # the first polls: a reload takes Prometheus a few milliseconds
MAX_INTERVAL = 0.05  # doubled up to this while no verdict comes
READ_TIMEOUT = 2.0
_ERROR_MARK = "Error reloading config"
_LOG_GRACE = 0.5  # the log line follows the gauge by a moment
LOG_EVERY = 0.1

Fetch = Callable[[str], HttpResult]


def _get(url: str) -> HttpResult:
    return request(url, timeout=READ_TIMEOUT)


@dataclass(frozen=True)
class ReloadState:
    successful: bool
    success_time: float


def read_reload_state(listen: str, fetch: Fetch = _get) -> ReloadState | None:
    """The two gauges, or None when Prometheus does not answer or lacks them."""
    res = fetch(f"http://{listen}/metrics")
    if res.status != 200:
        return None
    values: dict[str, float] = {}
    for line in res.body.splitlines():
        name, _, rest = line.partition(" ")
        if name in (SUCCESSFUL, SUCCESS_TIME):
            try:
                values[name] = float(rest.split()[0])
            except (IndexError, ValueError):
                continue
    if SUCCESSFUL not in values or SUCCESS_TIME not in values:
        return None
    return ReloadState(values[SUCCESSFUL] == 1.0, values[SUCCESS_TIME])


def reload_failure_detail(lines: Sequence[str]) -> str | None:
    """The last "Error reloading config" line among a process' log lines."""
    return next((line for line in reversed(lines) if _ERROR_MARK in line), None)


def _new_lines(before: Sequence[str], after: Sequence[str]) -> Sequence[str]:
    if not before:
        return after
    last = before[-1]
    for i in range(len(after) - 1, -1, -1):
        if after[i] == last:
            return after[i + 1 :]
    return after


def confirm_reload(
    listen: str,
    signal: Callable[[], None],
    log_lines: Callable[[], Sequence[str]] = tuple,
    *,
    fetch: Fetch = _get,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send the reload (``signal``), then wait until Prometheus says whether it took.

    Raises PermanentError when Prometheus refused the configuration (with its own error
    line when ``log_lines`` has it), TemporaryError when it cannot say (not answering,
    no verdict within ``timeout``)."""
    before = read_reload_state(listen, fetch)
    if before is None:
        raise TemporaryError(f"prometheus did not answer on {listen}/metrics", delay=2)
    whole = before.success_time == math.floor(before.success_time)
    while whole and math.floor(clock()) <= before.success_time:
        sleep(max(interval, math.floor(before.success_time) + 1 - clock()))
    lines_before = tuple(log_lines())
    signal()
    deadline = clock() + timeout
    rejected_at: float | None = None
    next_log = clock() + LOG_EVERY
    while True:
        now = read_reload_state(listen, fetch)
        progress.mark()
        if now is not None and now.success_time > before.success_time and now.successful:
            return
        refused = now is not None and not now.successful and before.successful
        if refused:
            rejected_at = clock() if rejected_at is None else rejected_at
        if clock() >= next_log:  # a runtime's log may be a subprocess away: not every poll
            next_log = clock() + LOG_EVERY
            fresh = reload_failure_detail(_new_lines(lines_before, tuple(log_lines())))
            if fresh is not None:
                raise PermanentError(f"prometheus refused the new configuration: {fresh}")
        if rejected_at is not None and clock() - rejected_at >= _LOG_GRACE:
            raise PermanentError(  # no log line to quote: say what is known
                f"prometheus refused the new configuration ({SUCCESSFUL} is 0; its log says why)"
            )
        if clock() >= deadline:
            raise TemporaryError(f"prometheus did not confirm the reload within {timeout:.0f} s")
        sleep(interval)
        interval = min(interval * 2, MAX_INTERVAL)
