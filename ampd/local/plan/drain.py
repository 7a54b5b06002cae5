"""The drain decision, in one place: must Prometheus' remote-write queue be emptied
before this pass touches Prometheus? Pure.

Prometheus drops what its queue holds when it restarts or stops, and when a reload
rebuilds the queue: when the external labels or the ``remote_write`` section of
``prometheus.yml`` change (``queue_fingerprint``). Scrape jobs, intervals and the header
leave the queue alone. The waiting itself is ``ampd.gateways.promqueue.wait_drained``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ampd.core import Action
from ampd.local.render.files import queue_fingerprint

RESTART = "restart"
REBUILT = "queue rebuilt by the reload"

_ENDS_QUEUE = frozenset({Action.RESTART, Action.DELETE, Action.REPLACE})


def drain_reason(actions: Iterable[Action], running: bytes | None, new: bytes | None) -> str | None:
    """Why the queue must drain first (:data:`RESTART` or :data:`REBUILT`), or None.

    ``actions``: what the plan does to the Prometheus process; ``running``: the
    prometheus.yml it runs now (None: nothing known to be running); ``new``: the one
    about to be written (None: none)."""
    acts = set(actions)
    if running is None:
        return None
    if acts & _ENDS_QUEUE:
        return RESTART
    if Action.RELOAD not in acts or new is None:
        return None
    return None if queue_fingerprint(running) == queue_fingerprint(new) else REBUILT
