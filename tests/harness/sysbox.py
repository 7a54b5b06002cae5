"""A real systemd booted as PID 1 in a namespace container: this machine's own Debian
release (12: systemd 252, 13: systemd 257), so that the box's python3 is the checkout's.

How a box is made:

1. ``ensure_rootfs()`` debootstraps a minimal tree of this machine's release (systemd,
   dbus, polkitd, python3) once, with a virtualenv at ``/opt/venvs/ampd`` holding ampd's
   dependencies (installed offline from a wheelhouse built on the host), ``/usr/bin/ampd``,
   and a ``.pth`` that puts ``/opt/ampd-src`` (the checkout, bind-mounted read-only at
   boot) on its path. It is cached under ``/var/cache/ampd-test/rootfs-<suite>-<hash>``;
   the hash covers the package
   list, the mirror, the dependency list and ``ROOTFS_RECIPE``. It is built in a temporary
   directory and renamed into place, so a half-built tree is never used.
2. ``SysBox.boot()`` creates a child cgroup under the caller's own cgroup2 cgroup, moves a
   launcher into it and runs ``unshare --pid --mount --uts --ipc --net --cgroup --fork``.
   Inside, PID 1 of the new PID namespace mounts a tmpfs, an overlay (the cached rootfs
   below, the tmpfs above) and a minimal /dev, /proc (``/proc/sys`` read-only), /sys
   (read-only) and cgroup2 (the delegated subtree, writable), calls ``pivot_root`` and
   execs ``/lib/systemd/systemd``. The box has its own network namespace: loopback only.
3. ``SysBox.run()`` enters every namespace with ``nsenter`` and runs a command with a
   clean environment; ``write_file()``/``read_file()`` go through ``/proc/PID/root``.
4. ``SysBox.close()`` kills every process of the box with ``cgroup.kill``, waits until the
   cgroup is empty and removes it. Every mount lived in the box's mount namespace, so
   none is left behind; the overlay's upper layer was a tmpfs in that namespace.

Never start a second systemd against the host's own cgroup tree: the box's systemd only
ever sees the cgroup it was given.

Step 1 (preconditions, the cached rootfs) lives in ``sysbox_rootfs``; the stage-2 script
of step 2 and the cgroup's removal in ``sysbox_launch``; both are importable from here.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.sysbox_launch import _STAGE2, _die_with_parent, _exists, _remove_cgroup
from tests.harness.sysbox_rootfs import (
    BOX_PATH,
    CACHE_DIR,
    MASKED_UNITS,
    REPO,
    SRC_IN_BOX,
    SysBoxUnavailable,
    cgroup2_parent,
    ensure_rootfs,
    unavailable_reason,
)
from tests.harness.wait import wait_for

# the host side (preconditions, the cached rootfs) moved to sysbox_rootfs; importable here
__all__ = [
    "BOX_PATH",
    "CACHE_DIR",
    "MASKED_UNITS",
    "REPO",
    "Result",
    "SysBox",
    "SysBoxUnavailable",
    "ensure_rootfs",
    "unavailable_reason",
]


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.returncode != 0:
            raise AssertionError(
                f"{shlex.join(self.argv)} exited {self.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )
        return self


# -- a booted box ---------------------------------------------------------------------------


@dataclass
class SysBox:
    rootfs: Path
    name: str = field(default_factory=lambda: f"ampd-sysbox-{secrets.token_hex(4)}")
    boot_timeout: float = 60.0
    cgroup: Path | None = None
    pid: int | None = None  # host PID of the box's systemd
    _launcher: subprocess.Popen[bytes] | None = None
    _mountpoint: Path | None = None
    _log_path: Path | None = None

    # -- lifecycle

    def boot(self) -> SysBox:
        self.cgroup = cgroup2_parent() / self.name
        self.cgroup.mkdir()
        self._mountpoint = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir="/run"))
        self._log_path = self._mountpoint.with_suffix(".log")
        stage2 = self._mountpoint.with_suffix(".sh")
        stage2.write_text(_STAGE2)
        env = {
            "PATH": BOX_PATH,
            "BOX": str(self._mountpoint),
            "LOWER": str(self.rootfs),
            "SRC": str(REPO),
            "SRC_IN_BOX": SRC_IN_BOX,
            "MACHINE_ID": secrets.token_hex(16),
            "HOSTNAME_IN_BOX": self.name,
            "BOX_PATH": BOX_PATH,
        }
        unshare = [
            "unshare",
            "--pid",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--cgroup",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "/bin/sh",
            str(stage2),
        ]
        launch = f"echo $$ > {shlex.quote(str(self.cgroup / 'cgroup.procs'))} && exec " + (
            shlex.join(unshare)
        )
        with self._log_path.open("wb") as log:
            self._launcher = subprocess.Popen(  # noqa: S602 - fixed script, quoted paths
                launch,
                shell=True,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
            )
        try:
            self.pid = self._wait_for_init()
            self._wait_until_booted()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_init(self) -> int:
        launcher = self._launcher
        assert launcher is not None
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")

        def init_pid() -> int | None:
            if launcher.poll() is not None:
                raise RuntimeError(f"box launcher exited {launcher.returncode}: {self.log()}")
            pids = children.read_text().split()
            return int(pids[0]) if pids else None

        return wait_for(init_pid, 10, 0.01, "the box's init", retry_on=(OSError,))

    def _wait_until_booted(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        private = Path(f"/proc/{self.pid}/root/run/systemd/private")

        def listening() -> bool:
            if self._launcher is None or self._launcher.poll() is not None:
                raise RuntimeError(f"box exited during boot: {self.log()}")
            return _exists(private)

        wait_for(listening, self.boot_timeout, 0.02, "systemd to come up", detail=self.log)
        left = max(1.0, deadline - time.monotonic())
        state = self.run("systemctl", "is-system-running", "--wait", timeout=left)
        if state.stdout.strip() not in ("running", "degraded"):
            raise RuntimeError(f"box did not boot: {state.stdout} {self.failed_units()}")

    def close(self) -> None:
        """Kill everything in the box and remove its cgroup. Safe to call twice."""
        if self.cgroup is not None and self.cgroup.exists():
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        if self._launcher is not None:
            if self._launcher.poll() is None:
                self._launcher.kill()
            self._launcher.wait(timeout=30)
        if self.cgroup is not None:
            _remove_cgroup(self.cgroup)
            self.cgroup = None
        if self._mountpoint is not None:
            for leftover in (
                self._mountpoint.with_suffix(".sh"),
                self._mountpoint.with_suffix(".log"),
            ):
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self._mountpoint.rmdir()
            self._mountpoint = None
        self.pid = None

    def __enter__(self) -> SysBox:
        return self.boot()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- talking to the box

    def run(
        self,
        *argv: str,
        user: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> Result:
        """Run argv inside the box (as root, or as ``user`` with its groups)."""
        assert self.pid is not None, "box is not running"
        box_env = [f"PATH={BOX_PATH}", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        box_env += [f"{k}={v}" for k, v in (env or {}).items()]
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        cmd = [
            "nsenter",
            f"--target={self.pid}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--cgroup",
            "--root",
            "--wd=/",
            "--",
            "/usr/bin/env",
            "-i",
            *box_env,
            *prefix,
            *argv,
        ]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": BOX_PATH},
        )
        return Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def sh(self, script: str, **kwargs: object) -> Result:
        return self.run("/bin/sh", "-c", script, **kwargs)  # type: ignore[arg-type]

    def path(self, inside: str) -> Path:
        """The host path of a file inside the box (through /proc/PID/root)."""
        assert self.pid is not None
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def write_file(self, inside: str, data: str | bytes, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        target.write_bytes(data)
        target.chmod(mode)

    def read_file(self, inside: str) -> str:
        return self.path(inside).read_text()

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).check()
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def wait_for(self, unit: str, timeout: float = 20.0, **want: str) -> dict[str, str]:
        """Poll ``systemctl show`` until every property equals its wanted value."""
        return wait_for(
            lambda: self.show(unit, *want),
            timeout,
            what=f"{unit} to have {want}",
            until=lambda props: (
                props is not None and all(props.get(k) == v for k, v in want.items())
            ),
            retry_on=(),
            detail=lambda: self.journal(unit),
        )

    def journal(self, unit: str | None = None, lines: int = 40) -> str:
        args = ["journalctl", "--no-pager", "-n", str(lines)]
        if unit:
            args += ["-u", unit]
        return self.run(*args).stdout

    def failed_units(self) -> str:
        return self.run("systemctl", "--failed", "--no-legend", "--plain").stdout

    def log(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-4000:]
