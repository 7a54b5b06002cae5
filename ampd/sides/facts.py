"""What a pass knows of the world besides the spec, and how it finds out — read-only.

:class:`FactFinder` reads instance metadata (IMDSv2), the versions of the Prometheus and
Grafana binaries, and the workspace record in ampd.json, and never writes anything:
``ampd render`` and ``ampd plan`` use it as the daemon does. Where a fact cannot be
known it says so in ``Facts.notes`` instead of inventing a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ampd.core import Condition, ConditionStatus, WorkspaceRecord
from ampd.gateways import execcheck, grafana, promtool
from ampd.gateways.store import StoreView
from ampd.render.context import RenderContext
from ampd.render.files import signing_mode
from ampd.spec.checks import executables
from ampd.spec.models import ProxySpec, StateSpec

# Prometheus releases before this send remote_write without a signature when sigv4 is set.
NATIVE_SIGV4_MIN = (2, 50, 0)

InstanceFacts = Callable[[], Mapping[str, str] | None]
IMDS_RETRY = 30.0  # seconds between two asks of an IMDS that did not answer in time


@dataclass(frozen=True)
class Facts:
    workspace: WorkspaceRecord | None = None
    instance_labels: Mapping[str, str] = field(default_factory=dict)
    prometheus_version: tuple[int, int, int] | None = None
    grafana_major: int | None = None
    native_failed: bool = False  # this Prometheus claimed to sign, and did not
    # the bytes of the rule and alert manager files as they were validated: the AWS side
    # pushes these, never a file that turned invalid after the last good load
    spec_files: Mapping[str, bytes | None] | None = None
    notes: tuple[str, ...] = ()  # what could not be known, for people
    conditions: tuple[Condition, ...] = ()  # InstanceMetadata, when the spec needs IMDS

    @property
    def instance_id(self) -> str | None:
        return self.instance_labels.get("instance_id")

    @property
    def prometheus_can_sign(self) -> bool:
        v = self.prometheus_version
        return not self.native_failed and v is not None and v >= NATIVE_SIGV4_MIN

    def with_workspace(self, ws: WorkspaceRecord | None) -> Facts:
        return self if ws is None or ws == self.workspace else replace(self, workspace=ws)


def pinned_workspace(spec: StateSpec, region: str | None) -> WorkspaceRecord | None:
    """A workspace pinned by ``workspace.id`` is known without asking AWS, given a region."""
    ws = spec.workspace
    if ws is None or ws.id is None or region is None:
        return None
    return WorkspaceRecord.at(ws.id, region, data_plane_url=spec.aws_or_default.data_plane_url)


def known_workspace(
    spec: StateSpec, stored: WorkspaceRecord | None, imds_region: str | None
) -> tuple[WorkspaceRecord | None, str | None]:
    """The workspace as far as it is known without AWS, and a note when it is not."""
    ws = spec.workspace
    if ws is None:
        return None, None
    aws = spec.aws_or_default
    region = aws.region if aws.region != "auto" else imds_region
    same_ws = ws.id is None or (stored is not None and stored.id == ws.id)
    if stored is not None and same_ws and (region is None or stored.region == region):
        if aws.data_plane_url is None or stored.base_url == aws.data_plane_url.rstrip("/"):
            return stored, None
        moved = WorkspaceRecord.at(
            stored.id, stored.region, data_plane_url=aws.data_plane_url, arn=stored.arn
        )
        return moved, None
    pinned = pinned_workspace(spec, region)
    if pinned is not None:
        return pinned, None
    if ws.id is not None:
        return None, "the workspace region is not known (aws.region: auto, no instance metadata)"
    return None, f"workspace alias {ws.alias!r} has not been resolved yet (no ampd.json record)"


class FactFinder:
    """Gathers :class:`Facts`; caches what cannot change while ampd runs."""

    def __init__(
        self,
        store: StoreView,
        instance_facts: InstanceFacts | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._instance_facts = instance_facts
        self._labels: Mapping[str, str] | None = None
        self._clock = clock
        self._imds_retry_at: float | None = None  # set while IMDS has not answered
        self._prom: tuple[str, tuple[int, int, int] | None] | None = None
        self.native_failed = False

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
            native_failed=self.native_failed,
            notes=notes,
            conditions=conditions,
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


def render_context(
    spec: StateSpec,
    facts: Facts,
    *,
    source: Path | str,
    state_dir: Path,
    python: str,
    process_users: Mapping[str, str] | None = None,
) -> RenderContext:
    """``process_users``: who each process runs as under the runtime in use (the proxy
    signs for Prometheus' and Grafana's); None: the packaged users."""
    return RenderContext(
        source=str(source),
        state_dir=str(state_dir),
        workspace=facts.workspace if spec.workspace is not None else None,
        instance_labels=facts.instance_labels,
        prometheus_can_sign=facts.prometheus_can_sign,
        grafana_major=facts.grafana_major,
        python=python,
        process_users=dict(process_users or {}),
    )


def effective_spec(spec: StateSpec, ctx: RenderContext) -> StateSpec:
    """Resolve ``signing: auto`` against the proxy: a Prometheus that cannot sign brings
    the proxy even without a proxy section (with its defaults); one that signs natively
    leaves an ``enabled: auto`` proxy off unless Grafana goes through it."""
    mode = signing_mode(spec, ctx)
    if spec.proxy is None and mode == "proxy" and spec.workspace is not None:
        return spec.model_copy(update={"proxy": ProxySpec()})
    grafana_via_proxy = (
        spec.grafana is not None and spec.grafana.enabled and spec.grafana.datasource.via == "proxy"
    )
    if (
        spec.proxy is not None
        and spec.proxy.enabled == "auto"
        and mode == "native"
        and not grafana_via_proxy
    ):
        return spec.model_copy(update={"proxy": spec.proxy.model_copy(update={"enabled": False})})
    return spec
