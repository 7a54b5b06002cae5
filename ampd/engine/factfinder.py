"""How a pass finds its :class:`~ampd.engine.facts.Facts` -- read-only.

:class:`FactFinder` reads instance metadata (IMDSv2), the versions of the Prometheus and
Grafana binaries, and the workspace record in ampd.json, and never writes anything:
``ampd render`` and ``ampd plan`` use it as the daemon does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from ampd.core import Condition, ConditionStatus
from ampd.engine.facts import IMDS_RETRY, Facts, InstanceFacts, ReadAnswer, known_workspace
from ampd.gateways import execcheck, grafana, promtool
from ampd.gateways.http import HttpResult, request
from ampd.gateways.store import StoreView
from ampd.spec.checks import executables
from ampd.spec.models import StateSpec

READ_TIMEOUT = 3.0
OwnedFetch = Callable[[str, int], HttpResult]


def _owned_get(url: str, owner: int) -> HttpResult:
    return request(url, timeout=READ_TIMEOUT, owner=owner)


class OwnedReads:
    """:class:`~ampd.engine.facts.PassReads`: owner-checked loopback GETs, each (url,
    owner) made once per pass and shared by whoever asks in that pass. ``new_pass``
    forgets them (the fact finder calls it as a pass begins). A read for another owner
    is another read: an answer checked against one uid is never handed to another."""

    def __init__(self, fetch: OwnedFetch = _owned_get) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, int], ReadAnswer] = {}

    def new_pass(self) -> None:
        with self._lock:
            self._answers.clear()

    def get(self, url: str, owner: int) -> ReadAnswer:
        key = (url, owner)
        with self._lock:
            known = self._answers.get(key)
        if known is not None:
            return known
        res = self._fetch(url, owner)
        answer = ReadAnswer(res.status, res.body, res.foreign_uid)
        with self._lock:
            return self._answers.setdefault(key, answer)


class FactFinder:
    """Gathers :class:`Facts`; caches what cannot change while ampd runs. ``reads``: the
    loopback reads each pass shares (a new pass forgets the last one's)."""

    def __init__(
        self,
        store: StoreView,
        instance_facts: InstanceFacts | None,
        clock: Callable[[], float] = time.monotonic,
        reads: OwnedReads | None = None,
    ) -> None:
        self.reads = reads if reads is not None else OwnedReads()
        self._store = store
        self._instance_facts = instance_facts
        self._labels: Mapping[str, str] | None = None
        self._clock = clock
        self._imds_retry_at: float | None = None  # set while IMDS has not answered
        self._prom: tuple[str, tuple[int, int, int] | None] | None = None

    def instance_labels(self) -> Mapping[str, str]:
        if self._labels is None:
            found = self._instance_facts() if self._instance_facts is not None else None
            self._labels = dict(found or {})
            if not found and self._instance_facts is not None:
                self._imds_retry_at = self._clock() + IMDS_RETRY
        return self._labels

    def _imds_condition(self, spec: StateSpec) -> tuple[Condition, ...]:
        """When the spec needs instance metadata (instance labels) and IMDS did not answer
        in time: ask again every IMDS_RETRY seconds, and say so meanwhile."""
        wanted = spec.prometheus is not None and spec.prometheus.instance_labels
        if not wanted or self._instance_facts is None:
            return ()
        if self._imds_retry_at is not None and self._clock() >= self._imds_retry_at:
            self._labels = None  # ask again
            self.instance_labels()
            if self._labels:
                self._imds_retry_at = None
        if self._imds_retry_at is None:
            return (Condition("InstanceMetadata", ConditionStatus.TRUE, "Answered"),)
        msg = (
            "instance metadata (IMDSv2) did not answer in time or is not there; instance "
            f"labels are left out until it does (asked again every {IMDS_RETRY:.0f}s)"
        )
        return (Condition("InstanceMetadata", ConditionStatus.FALSE, "Unreachable", msg),)

    def prometheus_version(self, spec: StateSpec) -> tuple[int, int, int] | None:
        prom = spec.prometheus
        if prom is None:
            return None
        if self._prom is None or self._prom[0] != prom.binary:
            self._prom = (prom.binary, promtool.binary_version(prom.binary))
        return self._prom[1]

    def gather(self, spec: StateSpec) -> Facts:
        self.reads.new_pass()  # first: a gather that fails still leaves no stale read
        self.instance_labels()
        conditions = self._imds_condition(spec)
        labels = self.instance_labels()
        workspace, note = known_workspace(spec, self._store.load().workspace, labels.get("region"))
        # The version probes below refuse such a path themselves (ampd.gateways.execcheck);
        # this says why a version is unknown. Validation refuses the state already.
        notes: tuple[str, ...] = ((note,) if note else ()) + untrusted_notes(spec)
        return Facts(
            workspace=workspace,
            instance_labels=labels,
            prometheus_version=self.prometheus_version(spec),
            grafana_major=grafana.grafana_major(spec.grafana.binary) if spec.grafana else None,
            notes=notes,
            conditions=conditions,
            reads=self.reads,
        )


def untrusted_notes(spec: StateSpec) -> tuple[str, ...]:
    """One note per path in the state that ampd will not run (not root's all the way)."""
    out: dict[tuple[str, str], str] = {}
    for loc, path, what in executables(spec):
        field = ".".join(map(str, loc))
        why = execcheck.untrusted(path)
        if why is not None and (field, why) not in out:  # promtool beside: said once
            out[field, why] = f"{field}: {path} is not {what} by ampd: {why}"
    return tuple(out.values())
