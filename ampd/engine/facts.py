"""What a pass knows of the world besides the spec: a frozen value.

:class:`Facts` is gathered by :class:`~ampd.engine.factfinder.FactFinder` (read-only) and
handed to both sides. Where a fact cannot be known it says so in ``Facts.notes`` instead
of inventing a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from ampd.core import Condition, WorkspaceRecord
from ampd.spec.models import StateSpec

# Prometheus releases before this send remote_write without a signature when sigv4 is set.
NATIVE_SIGV4_MIN = (2, 50, 0)

InstanceFacts = Callable[[], Mapping[str, str] | None]
IMDS_RETRY = 30.0  # seconds between two asks of an IMDS that did not answer in time


@dataclass(frozen=True)
class ReadAnswer:
    """One owner-checked loopback GET as a pass saw it: ``status`` 0 when nothing answered
    or nothing was sent (``foreign_uid``: the port is someone else's)."""

    status: int
    body: str
    foreign_uid: int | None = None


class PassReads(Protocol):
    """The loopback reads a pass shares (``ampd.engine.factfinder.OwnedReads``): each
    (url, owner) is read at most once per pass, and only from a server run by ``owner``.
    Prometheus' own /metrics is the page both sides read: the local side for the
    remote-write evidence and the reload state (``ampd.local.observe.seen.observe_side``
    takes these reads), the ingest side for its measured rate, its active series and its
    own job's series."""

    def get(self, url: str, owner: int) -> ReadAnswer: ...


@dataclass(frozen=True)
class Facts:
    workspace: WorkspaceRecord | None = None
    instance_labels: Mapping[str, str] = field(default_factory=dict)
    prometheus_version: tuple[int, int, int] | None = None
    grafana_major: int | None = None
    # the bytes of the rule and alert manager files as they were validated: the AWS side
    # pushes these, never a file that turned invalid after the last good load
    spec_files: Mapping[str, bytes | None] | None = None
    notes: tuple[str, ...] = ()  # what could not be known, for people
    conditions: tuple[Condition, ...] = ()  # InstanceMetadata, when the spec needs IMDS
    # this pass's shared loopback reads (None: each reader reads for itself)
    reads: PassReads | None = field(default=None, compare=False, repr=False)

    @property
    def instance_id(self) -> str | None:
        return self.instance_labels.get("instance_id")

    @property
    def prometheus_can_sign(self) -> bool:
        """By its version (the local side also knows one that claimed to and did not)."""
        v = self.prometheus_version
        return v is not None and v >= NATIVE_SIGV4_MIN

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
