"""The systemd runtime: each managed process is a static child unit, ``ampd-NAME.service``.

The unit runs ``ampd exec NAME``, which execs the command ampd wrote to
``<state_dir>/generated/NAME.cmd.json`` (``{"argv": [...], "env": {...}}``, plus
``"cwd"`` when set). So ``start``/``restart`` write that file, then ask systemd through
``systemctl`` (D-Bus; as the unprivileged ``ampd`` user, polkit allows exactly these
units). ``forget_data`` stops a unit and has systemd remove its StateDirectory=
(``systemctl clean``); ``set_imds`` sets its IPAddressDeny=. ``observe`` reads
``systemctl show`` and, when something went wrong, the unit's last journal lines.

A child's exit is noticed when it happens, not at the next pass: ``observe`` watches the
MainPID it sees with a pidfd (ampd.gateways.pidwatch) and ``on_exit(name)`` is called the
moment it exits. The unit restarts it itself (RestartSec=100ms); a look at a unit that is
about to restart waits for it, bounded. A unit that hit its start limit is left alone
for START_LIMIT_BACKOFF after it failed: ampd does not drive a crash loop. ``shutdown``
leaves every unit alone: restarting ampd (upgrade, watchdog) must not restart a healthy
Prometheus.

Errors: a unit that is not installed or an action polkit refuses is a PermanentError;
a start that failed, a timeout or an unreachable systemd is a TemporaryError.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ampd.core import IMDS_ADDRESSES, imds_denied, is_imds
from ampd.errors import PermanentError, TemporaryError
from ampd.gateways import progress
from ampd.gateways.files import read_bytes
from ampd.gateways.paths import Paths, resolve_paths
from ampd.gateways.pidwatch import PidWatch
from ampd.gateways.runtime import PROCESS_NAMES, Command, ProcessState

__all__ = ["Completed", "SystemdRuntime", "running_under_systemd", "unit_name"]

SHOW_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "MainPID",
    "NRestarts",
    "ExecMainCode",
    "ExecMainStatus",
    "ExecMainStartTimestampMonotonic",
    "InactiveEnterTimestampMonotonic",
)
# systemd's ExecMainCode: how the main process last ended (CLD_* from waitid()).
_CLD_EXITED = 1
_STDERR_LINES = 10
_CRASH_LOOP_RESTARTS = 3
# Every systemctl call is bounded below ampd.service's WatchdogSec= (60 s): a call that
# waits longer (a stop job on a unit that takes its TimeoutStopSec=) ends as a
# TemporaryError and the job goes on in systemd; the pass goes on too.
CALL_TIMEOUT = 45.0
JOURNAL_TIMEOUT = 10.0
CLEAN_POLL = 0.1  # while systemd removes a unit's state directory (its maintenance state)
# A unit between its exit and its restart (RestartSec=100ms): observe waits this long for it.
RESTART_WAIT = 2.0
RESTART_POLL = 0.02
START_LIMIT_BACKOFF = 30.0  # a unit that hit its start limit is tried again after this


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


# The I/O seam: (argv, timeout) -> Completed. Tests pass their own.
Runner = Callable[[Sequence[str], float], Completed]


def run_command(argv: Sequence[str], timeout: float) -> Completed:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired as e:
        raise TemporaryError(f"{argv[0]} {argv[1]} timed out after {timeout:.0f} s") from e
    except OSError as e:
        raise PermanentError(f"cannot run {argv[0]}: {e}") from e
    progress.mark()  # a completed call is progress for the watchdog
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def running_under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when ampd itself is a systemd service on a systemd-booted host.

    ``runtime: auto`` picks systemd then. ``ampd run`` typed into a shell on such a host
    (no INVOCATION_ID, no NOTIFY_SOCKET) supervises its own children instead, and so does
    a container whose manager sets NOTIFY_SOCKET but is not systemd.
    """
    env = os.environ if environ is None else environ
    if not (env.get("INVOCATION_ID") or env.get("NOTIFY_SOCKET")):
        return False
    return Path("/run/systemd/system").is_dir()


def unit_name(name: str) -> str:
    if name not in PROCESS_NAMES:
        raise PermanentError(f"unknown process {name!r}; expected one of {PROCESS_NAMES}")
    return f"ampd-{name}.service"


class SystemdRuntime:
    """Runtime over ``ampd-NAME.service`` units. See the module docstring."""

    name = "systemd"

    def __init__(
        self,
        paths: Paths | None = None,
        run: Runner = run_command,
        systemctl: str = "systemctl",
        journalctl: str = "journalctl",
        timeout: float = CALL_TIMEOUT,
        on_exit: Callable[[str], None] | None = None,
        restart_wait: float = RESTART_WAIT,
    ) -> None:
        self._paths = paths if paths is not None else resolve_paths()
        self._run = run
        self._systemctl = systemctl
        self._journalctl = journalctl
        self._timeout = timeout
        self._restart_wait = restart_wait
        self._pids = PidWatch(on_exit) if on_exit is not None else None

    # -- reading

    def observe(self, name: str) -> ProcessState:
        unit = unit_name(name)
        props = self._settled(unit)
        if props.get("LoadState") != "loaded":
            return ProcessState(name=name, running=False, command=None)
        active = props.get("ActiveState", "")
        pid = _int(props.get("MainPID")) or None
        running = active in ("active", "reloading") and pid is not None
        if running and pid is not None and self._pids is not None:
            self._pids.watch(name, pid)
        restarts = _int(props.get("NRestarts"))
        started_at = _wall_clock(_int(props.get("ExecMainStartTimestampMonotonic")))
        last_exit = _last_exit(props)
        # Restarting over and over, or given up on (the unit's start limit): either way
        # the process does not stay up. A unit that restarted before and now runs is not.
        crash_looping = props.get("Result") == "start-limit-hit" or (
            not running and restarts >= _CRASH_LOOP_RESTARTS
        )
        troubled = not running or restarts > 0 or crash_looping
        backoff_until = None
        # Restart=always: a unit is only left failed when systemd gave up restarting it
        # (its start limit; Result= stays the last exit's when that came mid-restart).
        if active == "failed" and crash_looping:
            failed_at = _wall_clock(_int(props.get("InactiveEnterTimestampMonotonic")))
            backoff_until = (failed_at or time.time()) + START_LIMIT_BACKOFF
        return ProcessState(
            name=name,
            running=running,
            pid=pid if running else None,
            started_at=started_at if running else None,
            restarts=restarts,
            last_exit=last_exit,
            crash_looping=crash_looping,
            last_stderr=self._last_lines(unit) if troubled else (),
            command=self._running_command(name, started_at if running else None),
            backoff_until=backoff_until,
        )

    def _settled(self, unit: str) -> dict[str, str]:
        """``systemctl show``; for a unit between an exit and its restart, once systemd
        has restarted it (or given up), waiting at most ``restart_wait``."""
        props = self._show(unit)
        deadline = time.monotonic() + self._restart_wait
        while _restarting(props) and time.monotonic() < deadline:
            time.sleep(RESTART_POLL)
            props = self._show(unit)
        return props

    def _show(self, unit: str) -> dict[str, str]:
        out = self._systemctl_call("show", unit, f"--property={','.join(SHOW_PROPERTIES)}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def _last_lines(self, unit: str) -> tuple[str, ...]:
        # Only what the unit's processes wrote (_SYSTEMD_UNIT=), not systemd's own lines
        # about it. Reading the system journal needs the systemd-journal group; without
        # it journalctl prints nothing and this stays empty.
        try:
            done = self._run(
                [
                    self._journalctl,
                    "--no-pager",
                    "--quiet",
                    "--output=cat",
                    f"--lines={_STDERR_LINES}",
                    f"_SYSTEMD_UNIT={unit}",
                ],
                JOURNAL_TIMEOUT,
            )
        except (TemporaryError, PermanentError):
            return ()
        if done.returncode != 0:
            return ()
        return tuple(line for line in done.stdout.splitlines() if line.strip())

    def _running_command(self, name: str, started_at: float | None) -> Command | None:
        """The command in cmd.json, if the running process can be running it.

        A cmd.json newer than the process (written, then ampd died before the restart)
        does not describe what runs: None, so the caller restarts it.
        """
        path = self._cmd_path(name)
        data = read_bytes(path)
        if data is None:
            return None
        try:
            raw = json.loads(data)
            command = Command(
                name=name,
                argv=tuple(str(a) for a in raw["argv"]),
                env={str(k): str(v) for k, v in raw.get("env", {}).items()},
                cwd=raw.get("cwd"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if started_at is not None:
            try:
                written = path.stat().st_mtime
            except FileNotFoundError:
                return None
            if written > started_at + 0.001:
                return None
        return command

    # -- acting

    def start(self, command: Command) -> None:
        # The unit runs ``ampd exec NAME``, which reads NAME.cmd.json: the local side wrote
        # it (files before processes); this runtime never writes it a second time.
        unit = unit_name(command.name)
        self._clear_failed(unit)
        self._systemctl_call("start", unit)

    def restart(self, command: Command) -> None:
        unit = unit_name(command.name)
        self._unwatch(command.name)  # an exit ampd asked for
        self._clear_failed(unit)
        self._systemctl_call("restart", unit)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        # The unit's TimeoutStopSec= decides when systemd escalates to SIGKILL; timeout
        # only bounds how long ampd waits for systemctl (the stop job goes on without it).
        wait = min(max(timeout, 1.0) + 30.0, CALL_TIMEOUT)
        self._unwatch(name)
        self._systemctl_call("stop", unit_name(name), timeout=wait)

    def reload(self, name: str) -> None:
        unit = unit_name(name)
        props = self._show(unit)
        if props.get("ActiveState") not in ("active", "reloading"):
            raise TemporaryError(f"{unit} is not running ({props.get('ActiveState')})", 2.0)
        self._systemctl_call("reload", unit)

    def forget_data(self, name: str) -> None:
        """Stop the unit, then have systemd remove its StateDirectory= (CleanUnit: the
        child's files are its own user's, 0750, out of ampd's reach).

        systemd cleans only a unit that is stopped and not failed, so a failed one is reset
        first. ``systemctl clean`` (systemd 252) exits 0 even when the removal failed: the
        unit's CleanResult, once it has left the ``maintenance`` state, says whether it did.
        """
        unit = unit_name(name)
        self.stop(name)
        self._clear_failed(unit)
        self._systemctl_call("clean", unit, "--what=state")
        props = self._after_cleaning(unit)
        result = props.get("CleanResult", "")
        if result != "success":
            why = self._last_lines(unit)[-1:]
            detail = f": {why[0]}" if why else f" (see journalctl -u {unit})"
            raise TemporaryError(
                f"systemd could not remove the state directory of {unit}, "
                f"CleanResult={result or 'unknown'}{detail}",
                30.0,
            )

    def set_imds(self, name: str, allowed: bool) -> None:
        """IPAddressDeny= holds the IMDS addresses when not ``allowed``; other entries stay.
        Set (``--runtime``: until reboot) only when it differs, in one call that resets
        the list then gives the new one; it applies to the running unit at once."""
        unit = unit_name(name)
        out = self._systemctl_call("show", unit, "--property=IPAddressDeny")
        lines = [ln for ln in out.splitlines() if ln.startswith("IPAddressDeny=")]
        current = lines[0].partition("=")[2].split() if lines else []
        others = [e for e in current if not is_imds(e)]
        want = others if allowed else [*others, *IMDS_ADDRESSES]
        if imds_denied(current) == (not allowed) and len(current) == len(want):
            return
        assignments = ["IPAddressDeny="] + ([f"IPAddressDeny={' '.join(want)}"] if want else [])
        self._systemctl_call("set-property", unit, "--runtime", *assignments)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Leave every child unit as it is: a new ampd picks them up."""
        if self._pids is not None:
            self._pids.close()

    # -- helpers

    def _unwatch(self, name: str) -> None:
        if self._pids is not None:
            self._pids.unwatch(name)

    def _cmd_path(self, name: str) -> Path:
        return self._paths.generated / f"{name}.cmd.json"

    def _after_cleaning(self, unit: str) -> dict[str, str]:
        """The unit's state once systemd has finished cleaning it (bounded wait)."""
        deadline = time.monotonic() + self._timeout
        while True:
            out = self._systemctl_call(
                "show", unit, "--property=ActiveState,SubState,Result,CleanResult"
            )
            props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            if props.get("ActiveState") != "maintenance":
                return props
            if time.monotonic() > deadline:
                raise TemporaryError(f"{unit}: still cleaning after {self._timeout:.0f} s", 5.0)
            time.sleep(CLEAN_POLL)

    def _clear_failed(self, unit: str) -> None:
        # A unit that hit its start limit refuses every start until this is done.
        props = self._show(unit)
        if props.get("ActiveState") == "failed":
            self._systemctl_call("reset-failed", unit)

    def _systemctl_call(
        self, verb: str, unit: str, *args: str, timeout: float | None = None
    ) -> str:
        done = self._run(
            [self._systemctl, "--no-ask-password", "--quiet", verb, unit, *args],
            timeout if timeout is not None else self._timeout,
        )
        if done.returncode == 0:
            return done.stdout
        message = done.stderr.strip() or f"exit status {done.returncode}"
        lowered = message.lower()
        if "not found" in lowered or "not loaded" in lowered:
            raise PermanentError(f"{unit} is not installed: {message}")
        if "access denied" in lowered or "interactive authentication required" in lowered:
            raise PermanentError(f"systemctl {verb} {unit}: not allowed ({message})")
        raise TemporaryError(f"systemctl {verb} {unit} failed: {message}", 5.0)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _restarting(props: Mapping[str, str]) -> bool:
    # Type=exec: "activating" from the fork until the exec; "auto-restart" for RestartSec=.
    return props.get("LoadState") == "loaded" and (
        props.get("SubState") == "auto-restart" or props.get("ActiveState") == "activating"
    )


def _wall_clock(monotonic_usec: int) -> float | None:
    # systemd's realtime stamps print with one-second precision; its monotonic one has
    # microseconds, and comparing it with a file's mtime needs better than a second.
    if monotonic_usec <= 0:
        return None
    return time.time() - (time.monotonic() - monotonic_usec / 1_000_000)


def _last_exit(props: Mapping[str, str]) -> int | None:
    code = _int(props.get("ExecMainCode"))
    if code == 0:
        return None
    status = _int(props.get("ExecMainStatus"))
    return status if code == _CLD_EXITED else -status
