"""What the AWS side's apply is handed: the one way it can write ampd.json and AWS.

``ampd.wiring.Writers`` is the concrete value (built only by the commands that apply);
observe, plan and report are never handed one."""

from __future__ import annotations

from typing import Protocol

from ampd.aws.gateway.writer import AwsWriting
from ampd.gateways.store import Store

__all__ = ["AwsWriters"]


class AwsWriters(Protocol):
    @property
    def store(self) -> Store:
        """ampd.json, writable."""
        ...

    @property
    def aws(self) -> AwsWriting:
        """Makes a writer for the session of the reader observe used."""
        ...
