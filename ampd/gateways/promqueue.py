"""Prometheus' remote-write queues, read from its own ``/metrics`` (2.42 names, agent and
server mode alike), and a bounded wait for them to drain.

Why wait: a reload that changes ``remote_write`` or ``external_labels`` makes Prometheus
stop the queue and start a new one that reads the WAL from "now"; a restart does the
same. Whatever the old queue still held -- and, while the upstream is down, whatever it
had not yet read from the WAL -- is never sent. So before such a reload (or a restart
ampd cannot avoid) ampd waits, bounded, until everything appended before the wait began
has been sent, and reports what it waited for.

Per queue (``remote_name``), from Prometheus 2.42::

    prometheus_remote_storage_samples_pending                 gauge: in the shards, unsent
    prometheus_remote_storage_shards                          gauge: running shards
    prometheus_remote_storage_samples_total                   counter: sent
    prometheus_remote_storage_samples_failed_total            counter: non-recoverable
    prometheus_remote_storage_samples_retried_total           counter: recoverable, retried
    prometheus_remote_storage_samples_dropped_total           counter: dropped by relabelling
    prometheus_remote_storage_queue_highest_sent_timestamp_seconds   gauge (after a send)

and once per process ``prometheus_remote_storage_highest_timestamp_in_seconds`` (newest
sample appended) and ``prometheus_remote_storage_samples_in_total``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ampd.gateways.http import HttpResult, request

PREFIX = "prometheus_remote_storage_"
_LINE_RE = re.compile(r"^(prometheus_remote_storage_[a-z_]+)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

_PER_QUEUE = {
    "samples_pending": "pending",
    "shards": "shards",
    "samples_total": "sent",
    "samples_failed_total": "failed",
    "samples_retried_total": "retried",
    "samples_dropped_total": "dropped",
    "queue_highest_sent_timestamp_seconds": "highest_sent",
}


@dataclass(frozen=True)
class QueueStats:
    """One remote-write queue (``remote_name`` is the ``name:`` of its config)."""

    remote_name: str
    url: str
    pending: int = 0
    shards: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    highest_sent: float | None = None  # seconds; None until the first successful send


@dataclass(frozen=True)
class QueueSnapshot:
    queues: tuple[QueueStats, ...]
    highest_appended: float | None  # seconds; the newest sample Prometheus appended
    samples_in: int

    @property
    def pending(self) -> int:
        return sum(q.pending for q in self.queues)

    def queue(self, remote_name: str) -> QueueStats | None:
        return next((q for q in self.queues if q.remote_name == remote_name), None)


class Drained(NamedTuple):
    """What :func:`wait_drained` waited for. ``pending_at_end`` is None when Prometheus
    did not answer (nothing to drain: it is not running)."""

    drained: bool
    waited_s: float
    pending_at_end: int | None


def parse(text: str) -> QueueSnapshot:
    """The remote-write part of a Prometheus /metrics page."""
    fields: dict[tuple[str, str], dict[str, float]] = {}
    highest: float | None = None
    samples_in = 0.0
    for line in text.splitlines():
        m = _LINE_RE.match(line)
        if m is None:
            continue
        name, labels, raw = m.group(1)[len(PREFIX) :], m.group(2) or "", m.group(3)
        try:
            value = float(raw)
        except ValueError:
            continue
        if name == "highest_timestamp_in_seconds":
            highest = value if value > 0 else None
        elif name == "samples_in_total":
            samples_in = value
        elif name in _PER_QUEUE:
            lab = dict(_LABEL_RE.findall(labels))
            key = (lab.get("remote_name", ""), lab.get("url", ""))
            fields.setdefault(key, {})[_PER_QUEUE[name]] = value
    queues = []
    for (remote_name, url), f in sorted(fields.items()):
        sent_ts = f.get("highest_sent")
        queues.append(
            QueueStats(
                remote_name=remote_name,
                url=url,
                pending=int(f.get("pending", 0)),
                shards=int(f.get("shards", 0)),
                sent=int(f.get("sent", 0)),
                failed=int(f.get("failed", 0)),
                retried=int(f.get("retried", 0)),
                dropped=int(f.get("dropped", 0)),
                highest_sent=sent_ts if sent_ts else None,
            )
        )
    return QueueSnapshot(tuple(queues), highest, int(samples_in))


Fetch = Callable[[str], HttpResult]


def _get(url: str) -> HttpResult:
    return request(url, timeout=2.0)


def read_queues(listen: str, fetch: Fetch = _get) -> QueueSnapshot | None:
    """The queues of the Prometheus on ``listen`` (HOST:PORT); None if it did not answer."""
    result = fetch(f"http://{listen}/metrics")
    if result.status != 200:
        return None
    return parse(result.body)


def caught_up(snap: QueueSnapshot, mark: float | None) -> bool:
    """Every queue has sent everything appended up to ``mark`` (seconds), or holds nothing.

    ``pending == 0`` alone is rare while scrapes keep coming (a batch waits up to
    ``batch_send_deadline``); a sent timestamp at or past the mark proves the rest.
    """
    for q in snap.queues:
        if q.pending == 0:
            continue
        if mark is None or q.highest_sent is None or q.highest_sent < mark:
            return False
    return True


def wait_drained(
    listen: str,
    timeout: float,
    *,
    poll: float = 0.1,
    fetch: Fetch = _get,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Drained:
    """Wait at most ``timeout`` seconds until every remote-write queue of the Prometheus
    on ``listen`` has sent what was appended before the wait began (or holds nothing).

    Returns ``(drained, waited_s, pending_at_end)``. A Prometheus that does not answer
    has nothing to drain: returns at once with ``drained=False, pending_at_end=None``.
    Blocking; run it off the event loop.
    """
    start = clock()
    first = read_queues(listen, fetch)
    if first is None:
        return Drained(False, 0.0, None)
    mark = first.highest_appended
    snap = first
    while True:
        if caught_up(snap, mark):
            return Drained(True, clock() - start, snap.pending)
        remaining = timeout - (clock() - start)
        if remaining <= 0:
            return Drained(False, clock() - start, snap.pending)
        sleep(min(poll, remaining))
        latest = read_queues(listen, fetch)
        if latest is None:  # it went away while we waited: nothing left to drain
            return Drained(False, clock() - start, None)
        snap = latest
