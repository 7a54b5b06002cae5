"""The supervisor runtime: managed processes as ampd's own children.

Each child runs in its own session (process group) with PDEATHSIG set, so it dies with
ampd even on SIGKILL. A thread per child keeps its last stderr lines and notices its
exit; an exit ampd did not ask for counts as a crash and calls ``on_exit`` at once, so
the loop queues a pass that starts it again. The first crash is restarted without delay;
repeated crashes within ``crash_window`` set a capped exponential backoff. A child that
ran ``stable_after`` seconds before it died starts a fresh count: that is a crash, not a
crash loop.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from ampd.errors import PermanentError, TemporaryError
from ampd.gateways import childuser
from ampd.gateways.childuser import Credentials
from ampd.gateways.execcheck import untrusted
from ampd.gateways.files import remove_tree_checked
from ampd.gateways.paths import Paths, resolve_paths
from ampd.gateways.runtime import Command, ProcessState
from ampd.gateways.users import process_user

log = structlog.get_logger()

STOP_ORDER = ("grafana", "prometheus", "sigv4-proxy")  # writers before the proxy they use
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _credentials(name: str) -> Credentials | None:
    """Whom the child runs as: its own user when ampd is root and the package made that
    user (its files handed over first), else None (ampd's own user, as without the
    package). See ampd.gateways.users."""
    user = process_user(name, "supervisor")
    if not user.own:
        return None
    return childuser.prepare(name, user, resolve_paths().state_dir)


@dataclass
class _Child:
    command: Command
    proc: subprocess.Popen[bytes]
    started_at: float
    stderr: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    stopping: bool = False


@dataclass
class _History:
    crashes: list[float] = field(default_factory=list)  # wall-clock times of recent crashes
    restarts: int = 0
    last_exit: int | None = None
    backoff_until: float | None = None
    last_stderr: tuple[str, ...] = ()


class Supervisor:
    name = "supervisor"

    def __init__(
        self,
        on_exit: Callable[[str], None] | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        crash_window: float = 120.0,
        stable_after: float = 10.0,
        paths: Paths | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._paths = paths if paths is not None else resolve_paths()
        self._children: dict[str, _Child] = {}
        self._history: dict[str, _History] = collections.defaultdict(_History)
        self._lock = threading.RLock()
        self._on_exit = on_exit
        self._base = backoff_base
        self._cap = backoff_cap
        self._window = crash_window
        self._stable = stable_after  # a run this long ends a crash loop
        self._now = wall_clock  # epoch seconds: start times, crashes, backoff_until

    def observe(self, name: str) -> ProcessState:
        with self._lock:
            child = self._children.get(name)
            hist = self._history[name]
            recent = [t for t in hist.crashes if t > self._now() - self._window]
            looping = len(recent) >= 3
            if child is not None and child.proc.poll() is None:
                return ProcessState(
                    name,
                    True,
                    child.proc.pid,
                    child.started_at,
                    hist.restarts,
                    hist.last_exit,
                    looping,
                    tuple(child.stderr) or hist.last_stderr,
                    child.command,
                    hist.backoff_until,
                )
            return ProcessState(
                name,
                False,
                None,
                None,
                hist.restarts,
                hist.last_exit,
                looping,
                hist.last_stderr,
                child.command if child else None,
                hist.backoff_until,
            )

    def start(self, command: Command) -> None:
        with self._lock:
            current = self._children.get(command.name)
            if current is not None and current.proc.poll() is None:
                return
            why = untrusted(command.argv[0])  # validated with the state; checked again here
            if why is not None:
                raise PermanentError(f"{command.name}: refusing to run {command.argv[0]}: {why}")
            env = {**os.environ, **command.env}
            creds = _credentials(command.name)
            try:
                # user/group/extra_groups switch the child before preexec_fn runs, which
                # matters: a change of uid clears the parent-death signal.
                proc = subprocess.Popen(
                    list(command.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=command.cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe enough
                    close_fds=True,
                    user=creds.uid if creds else None,
                    group=creds.gid if creds else None,
                    extra_groups=list(creds.groups) if creds else None,
                )
            except FileNotFoundError as e:
                raise PermanentError(f"{command.name}: {command.argv[0]} not found") from e
            except PermissionError as e:
                raise PermanentError(f"{command.name}: {command.argv[0]}: permission denied") from e
            child = _Child(command, proc, self._now())
            self._children[command.name] = child
            log.info(
                "process.started",
                process=command.name,
                pid=proc.pid,
                uid=creds.uid if creds else os.geteuid(),
            )
            threading.Thread(
                target=self._watch, args=(child,), name=f"watch-{command.name}", daemon=True
            ).start()

    def _watch(self, child: _Child) -> None:
        assert child.proc.stderr is not None
        with child.proc.stderr:  # closed at EOF: a restarted child leaks no pipe
            for raw in child.proc.stderr:
                child.stderr.append(raw.decode("utf-8", "replace").rstrip())
        code = child.proc.wait()
        name = child.command.name
        with self._lock:
            hist = self._history[name]
            hist.last_exit = code
            hist.last_stderr = tuple(child.stderr)
            if child.stopping:
                return
            now = self._now()
            if now - child.started_at >= self._stable:  # it ran well: a fresh count
                hist.crashes = []
            hist.crashes = [t for t in hist.crashes if t > now - self._window] + [now]
            hist.restarts += 1
            delay = self.backoff(len(hist.crashes))
            hist.backoff_until = now + delay if delay > 0 else None
        log.warning(
            "process.exited",
            process=name,
            code=code,
            backoff=delay,
            stderr_tail=list(child.stderr)[-3:],
        )
        if self._on_exit is not None:
            self._on_exit(name)

    def backoff(self, crashes: int) -> float:
        """Seconds before the next start, after ``crashes`` crashes within the window.
        The first is restarted at once (a Prometheus that is down loses scrapes); only
        a repeated crash waits, exponentially, up to the cap."""
        if crashes <= 1:
            return 0.0
        return float(min(self._cap, self._base * 2 ** (crashes - 2)))

    def stop(self, name: str, timeout: float = 10.0) -> None:
        with self._lock:
            child = self._children.pop(name, None)
            if child is None:
                return
            child.stopping = True
        self._terminate(child, timeout)
        with self._lock:
            self._history.pop(name, None)  # a deliberate stop forgets crash history

    def _terminate(self, child: _Child, timeout: float) -> None:
        proc = child.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("process.kill", process=child.command.name, after=timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything the child left in its group
        log.info("process.stopped", process=child.command.name, code=proc.returncode)

    def restart(self, command: Command) -> None:
        self.stop(command.name)
        self.start(command)

    def reload(self, name: str) -> None:
        with self._lock:
            child = self._children.get(name)
        if child is None or child.proc.poll() is not None:
            raise TemporaryError(f"{name} is not running; cannot reload", delay=1)
        os.kill(child.proc.pid, signal.SIGHUP)

    def set_imds(self, name: str, allowed: bool) -> None:
        """Nothing: ampd's own children share its network access; there is no per-child
        packet filter to set here (docs/security.md: the host firewall does it)."""

    def forget_data(self, name: str) -> None:
        """Stop the child, then remove its data directory (``<state_dir>/data/NAME``).
        TemporaryError naming what is left when it cannot all be removed."""
        self.stop(name)
        data = self._paths.data_dir(name)
        try:
            remove_tree_checked(data)
        except OSError as e:
            raise TemporaryError(
                f"{name}: cannot remove its data: {e.filename or data}: {e.strerror}", delay=30
            ) from e
        log.info("process.data_removed", process=name, path=str(data))

    def shutdown(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        names = sorted(self._children, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else -1)
        for name in names:
            self.stop(name, timeout=max(1.0, deadline - time.monotonic()))
