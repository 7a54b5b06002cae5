"""A network namespace per simulated host, without a container: many hosts on one machine,
each with its own loopback (so every host runs the same state document, ports and all, as
instances of a fleet do) and one link to the test (a veth pair, see
:class:`tests.harness.fleetbox.VethLink`): a host reaches the hub address, where the test
serves the AWS emulator, the data plane and instance metadata, and nothing beyond it.

A namespace lives as long as its holder process (``unshare --net``, a ``sleep``);
processes enter it with ``nsenter --net``. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN),
as the systemd box tests do.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.fleetbox import VethLink
from tests.harness.wait import wait_for

__all__ = ["NetHost"]


@dataclass
class NetHost:
    """One host's namespace and link: ``address`` on its ``eth0``, the test at ``hub``."""

    link: VethLink
    _holder: subprocess.Popen[bytes] | None = None
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.link.address

    @property
    def hub(self) -> str:
        return self.link.hub

    @property
    def pid(self) -> int:
        assert self._holder is not None
        return self._holder.pid

    def start(self) -> NetHost:
        self.link.create()
        try:
            self._holder = subprocess.Popen(
                ["unshare", "--net", "--", "sleep", "infinity"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            ours = Path("/proc/self/ns/net").readlink()
            wait_for(
                lambda: Path(f"/proc/{self.pid}/ns/net").readlink() != ours,
                10,
                what=f"{self.address}: its network namespace",
            )
            self.link.attach(self.pid)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def enter(self) -> list[str]:
        """The command line prefix that runs a program inside this host's namespace."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--"]

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        proc: subprocess.Popen[Any] = subprocess.Popen([*self.enter, *argv], **kw)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait(5)
            self._holder = None
        self.link.close()
