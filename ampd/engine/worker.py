"""Runs a side's pass (the AWS side's) in a worker thread so that it never holds the
local side.

The pass waits for the AWS side at most ``timeout`` seconds. A slow AWS pass goes on
in its worker; the local side runs with the last known workspace, and the result is
picked up by the next pass (``on_done`` queues one). The worker runs under a copy of the
caller's context, so its log lines carry the pass's ``reconcile_id``.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
import traceback
from collections.abc import Callable

import structlog

from ampd.core import Condition, ConditionStatus, SideResult

log = structlog.get_logger()


def crashed(side: str, e: BaseException) -> SideResult:
    """What a side that raised something unexpected reports: Degraded, with the message."""
    message = f"{type(e).__name__}: {e}"
    cond = Condition(f"{side.title()}SideHealthy", ConditionStatus.FALSE, "Crashed", message)
    return SideResult(conditions=(cond,), unobserved=(f"{side} side: {message}",))


class SideWorker:
    def __init__(self, on_done: Callable[[], None] | None = None) -> None:
        self.on_done = on_done
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aws")
        self._future: concurrent.futures.Future[SideResult] | None = None
        self._consumed = True
        self._waiting = False
        self._lock = threading.Lock()

    def result(self, run: Callable[[], SideResult], *, timeout: float) -> SideResult:
        """The result of ``run`` (this pass's call), or of the slow one still running."""
        fut = self._future
        if fut is not None and fut.done() and not self._consumed:
            self._consumed = True  # a slow pass finished in the background
            return self._outcome(fut)
        if fut is None or fut.done():
            ctx = contextvars.copy_context()
            fut = self._future = self._pool.submit(ctx.run, run)
            self._consumed = False
            fut.add_done_callback(self._finished)
        self._waiting = True
        try:
            fut.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self._waiting = False
            log.warning("aws.pass.slow", waited_s=timeout)
            msg = f"the AWS pass is taking longer than {timeout:.0f}s; still running"
            cond = Condition("AwsReachable", ConditionStatus.UNKNOWN, "Slow", msg)
            return SideResult(conditions=(cond,), unobserved=(msg,))
        except Exception:  # noqa: S110 - reported by _outcome below
            pass
        self._waiting = False
        self._consumed = True
        return self._outcome(fut)

    def _finished(self, _fut: concurrent.futures.Future[SideResult]) -> None:
        # only a pass nobody waited for needs a new pass to pick its result up
        if not self._waiting and self.on_done is not None:
            self.on_done()

    def _outcome(self, fut: concurrent.futures.Future[SideResult]) -> SideResult:
        try:
            return fut.result(timeout=0)
        except Exception as e:
            tb = "".join(traceback.format_exception(e))
            log.error("aws.pass.crashed", error=str(e), traceback=tb)
            return crashed("aws", e)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
