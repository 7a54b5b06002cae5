"""How managed processes are run: the contract both runtimes implement.

``supervisor`` (ampd's own children: containers, development, tests) lives in
``ampd.gateways.supervisor``; ``systemd`` (child units driven through systemctl) in
``ampd.gateways.systemd``. The reconcile loop only sees this protocol.

A process is described by a ``Command``. Under systemd the child unit runs
``ampd exec NAME``, which reads ``<state_dir>/generated/NAME.cmd.json`` (written by
ampd before any start/restart) and execs it, so one static unit serves every spec.
"""

from __future__ import annotations

from typing import Protocol

from ampd.core import Command, ProcessState

__all__ = ["PROCESS_NAMES", "Command", "ProcessControl", "ProcessState", "Runtime", "RuntimeView"]

PROCESS_NAMES = ("prometheus", "sigv4-proxy", "grafana")


class RuntimeView(Protocol):
    """What a pass may do with the runtime without writers: look."""

    @property
    def name(self) -> str: ...

    def observe(self, name: str) -> ProcessState: ...


class ProcessControl(RuntimeView, Protocol):
    """The capability to start, stop, restart, reload and fence processes. Only an
    applying pass holds one (``ampd.wiring.Writers``)."""

    def start(self, command: Command) -> None: ...

    def stop(self, name: str, timeout: float = 10.0) -> None: ...

    def restart(self, command: Command) -> None: ...

    def reload(self, name: str) -> None:
        """SIGHUP (or the runtime's reload); raises TemporaryError if not running."""
        ...

    def forget_data(self, name: str) -> None:
        """Remove the process's own data (``<state_dir>/data/NAME``); stops it first.

        systemd: stop the unit, then ``systemctl clean --what=state`` (its StateDirectory=);
        supervisor: stop the child, then remove the directory. Raises TemporaryError or
        PermanentError when the data may still be there: never returns having kept it.
        """
        ...

    def set_imds(self, name: str, allowed: bool) -> None:
        """Let the process reach the instance metadata service, or not.

        systemd: the unit's IPAddressDeny= (169.254.169.254 and fd00:ec2::254), set live
        with ``systemctl set-property --runtime`` only when it differs; it applies to the
        running unit at once. supervisor: nothing (no way to enforce it). Raises
        TemporaryError or PermanentError when it could not be set.
        """
        ...

    def shutdown(self, timeout: float = 15.0) -> None:
        """ampd is exiting. supervisor: stop every child in order; systemd: leave units."""
        ...


Runtime = ProcessControl  # what both runtimes implement: the view and the control
