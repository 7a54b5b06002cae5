"""One AWS pass the way the engine runs it (``ampd.engine.side.run_side``), for tests.

``aws_pass(side, spec, apply=True)`` hands the side writers (ampd.json, where the side
reads it, and AWS); ``apply=False`` is ``ampd plan``: no writers at all."""

from __future__ import annotations

from dataclasses import dataclass

from ampd.aws.gateway.client import AwsReader
from ampd.aws.gateway.writer import AwsWriter, AwsWriting
from ampd.aws.side.side import AwsSide
from ampd.core import SideResult
from ampd.engine.facts import Facts
from ampd.engine.side import run_side
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec


@dataclass(frozen=True)
class AwsTestWriters:
    """What ``ampd.wiring.Writers`` gives the AWS side."""

    store: Store
    aws: AwsWriting


def writers_for(side: AwsSide) -> AwsTestWriters:
    return AwsTestWriters(Store(side.store.path), AwsWriting())


def aws_pass(
    side: AwsSide,
    spec: StateSpec,
    *,
    apply: bool,
    facts: Facts | None = None,
    force_read: bool = False,
) -> SideResult:
    """``force_read``: :meth:`AwsSide.forget_reads` first: every read is made again."""
    if force_read:
        side.forget_reads()
    return run_side(side, spec, facts or Facts(), writers_for(side) if apply else None)


class AwsReadWrite(AwsWriter, AwsReader):
    """For the tests of the gateway itself: a reader's calls and its writer's on one
    object (the daemon never holds one: its writer comes from ``AwsWriting``)."""


def read_write(reader: AwsReader) -> AwsReadWrite:
    return AwsReadWrite(reader)
