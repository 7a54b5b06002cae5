"""One writer at a time in the state directory (``flock`` on ``<state_dir>/.lock``).

Real processes only: a holder process that takes the lock through
ampd.gateways.statelock, the real ``ampd`` CLI, and the real daemon.

- ``apply``/``render`` beside a holder wait ``--wait`` seconds, then refuse naming the
  holder's pid and command, having written nothing; ``plan`` needs no lock;
- a waiting ``apply`` runs once the holder lets go, and only then writes;
- a daemon's pass waits for a holder too, and writes nothing meanwhile;
- beside a real daemon in the middle of a (long) pass, ``apply`` refuses naming the
  daemon's pid.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ampd.gateways.statelock import hold
from tests.harness.fixtures_local import REPO, AmpdProcess, free_port
from tests.harness.wait import wait_for

HOLD = """
import sys
from pathlib import Path
from ampd.gateways.statelock import hold
wait = float(sys.argv[2]) if len(sys.argv) > 2 else 10
with hold(Path(sys.argv[1]), wait=wait, who="test holder"):
    print("held", flush=True)
    sys.stdin.read()
"""


class Holder:
    def __init__(self, state_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "held\n"
        self.pid = self.proc.pid

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                f.close()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    (tmp_path / "state").mkdir()
    h = Holder(tmp_path / "state")
    yield h
    h.close()


def _state(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "stack": "lock",
        "prometheus": {
            "listen": f"127.0.0.1:{free_port()}",
            "scrape_configs": [{"job": "app", "targets": ["127.0.0.1:1"]}],
        },
        "metrics": {"enabled": False},
        "runtime": "supervisor",
        **extra,
    }


def _written(state_dir: Path) -> list[str]:
    """The files in the state directory but the lock (an empty directory is no write)."""
    return sorted(
        str(p.relative_to(state_dir))
        for p in state_dir.rglob("*")
        if p.is_file() and p.name != ".lock"
    )


def test_apply_and_render_beside_a_holder_refuse_naming_it(tmp_path: Path, holder: Holder) -> None:
    p = AmpdProcess(tmp_path)
    p.write_state(_state(tmp_path))
    for args in (("apply", "--once"), ("render",), ("render", "--out", str(tmp_path / "out"))):
        res = p.ampd(*args, "--lock-wait", "0.3")
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert f"is in use by pid {holder.pid} (test holder); waited 0.3 s" in res.stderr, res
    assert _written(p.state_dir) == []
    assert not (tmp_path / "out").exists()
    plan = p.ampd("plan")  # reads only: no lock
    assert plan.returncode == 2, plan.stderr


def test_a_waiting_apply_runs_once_the_holder_lets_go(tmp_path: Path, holder: Holder) -> None:
    p = AmpdProcess(tmp_path)
    p.write_state(_state(tmp_path))
    argv = [str(Path(sys.executable).parent / "ampd"), "--state", str(p.state_file)]
    cli = subprocess.Popen(
        [*argv, "apply", "--once", "--lock-wait", "60"],
        env=p.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert cli.stderr is not None
    stderr = cli.stderr
    reader = threading.Thread(target=lambda: lines.extend(stderr), daemon=True)
    reader.start()
    try:
        want = f"ampd: waiting for the state directory (pid {holder.pid} (test holder))\n"
        wait_for(lambda: want in lines, 30, what="the CLI waiting for the holder")
        assert _written(p.state_dir) == []  # waiting: nothing written yet
        holder.release()
        assert cli.wait(60) == 0, "".join(lines)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        reader.join(5)
        stderr.close()
    assert (p.state_dir / "ampd.json").exists()
    assert (p.state_dir / "generated" / "prometheus.yml").exists()
    assert (p.state_dir / ".lock").read_text() == ""  # let go


def test_a_daemon_pass_waits_for_the_holder(
    tmp_path: Path, holder: Holder, ampd_proc: AmpdProcess
) -> None:
    ampd_proc.write_state(_state(tmp_path))
    ampd_proc.start()
    wait_for(
        lambda: any(
            e.get("holder") == f"pid {holder.pid} (test holder)"
            for e in ampd_proc.events("state_lock.waiting")
        ),
        30,
        what="the daemon waiting for the state directory",
    )
    assert _written(ampd_proc.state_dir) == []
    holder.release()
    wait_for(
        (ampd_proc.state_dir / "generated/prometheus.yml").exists, what="generated/prometheus.yml"
    )
    wait_for(ampd_proc.status, 30, what="status.json")


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (an AWS that hangs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_apply_beside_a_daemon_in_a_pass_refuses_naming_the_daemon(
    tmp_path: Path, black_hole: str
) -> None:
    """The daemon's pass waits for AWS (up to its bound, 20 s): the lock is its all that
    time, and an ``apply`` that will not wait says whose it is."""
    env = {
        "AWS_ENDPOINT_URL": black_hole,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    ampd = AmpdProcess(tmp_path, env=env)
    ampd.write_state(_state(tmp_path, aws={"region": "eu-west-1"}, workspace={"alias": "lk"}))
    ampd.start()
    try:
        assert ampd.proc is not None
        daemon = ampd.proc.pid
        lock = ampd.state_dir / ".lock"

        def daemon_holds() -> bool:
            if not lock.exists() or lock.read_text() != f"{daemon} ampd run\n":
                return False
            fd = os.open(lock, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
            return False

        wait_for(daemon_holds, 30, what="the daemon in a pass, holding the lock")
        res = ampd.ampd("apply", "--once", "--lock-wait", "0.5")
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert f"is in use by pid {daemon} (ampd run)" in res.stderr, res.stderr
        assert not (ampd.state_dir / "ampd.json").exists()  # the CLI wrote nothing
    finally:
        ampd.stop()
        ampd.print_log_tail()


def test_a_symlink_in_place_of_the_lock_is_refused(tmp_path: Path) -> None:
    p = AmpdProcess(tmp_path)
    p.write_state(_state(tmp_path))
    p.state_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (p.state_dir / ".lock").symlink_to(victim)
    res = p.ampd("apply", "--once", "--lock-wait", "0.3")
    assert res.returncode == 1
    assert ".lock is a symlink: refusing to lock through it" in res.stderr, res.stderr
    assert victim.read_text() == "keep me\n"
    assert _written(p.state_dir) == []


def test_a_lock_file_root_makes_is_the_state_directory_owners(tmp_path: Path) -> None:
    """``sudo ampd apply`` first: the daemon (its own user) can still open the lock."""
    p = AmpdProcess(tmp_path)
    p.write_state(_state(tmp_path))
    p.state_dir.mkdir()
    os.chown(p.state_dir, 65534, 65534)
    res = p.ampd("render", "--lock-wait", "5")
    assert res.returncode == 0, res.stderr
    st = (p.state_dir / ".lock").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert st.st_mode & 0o777 == 0o640


def test_bake_beside_a_holder_refuses_and_removes_nothing(tmp_path: Path, holder: Holder) -> None:
    p = AmpdProcess(tmp_path)
    generated = p.state_dir / "generated" / "prometheus.yml"
    generated.parent.mkdir(parents=True)
    generated.write_text("per-instance\n")
    res = p.ampd("bake", "--lock-wait", "0.3")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"is in use by pid {holder.pid} (test holder)" in res.stderr
    assert generated.read_text() == "per-instance\n"
    assert p.ampd("bake", "--dry-run").returncode == 0  # removes nothing: no lock


def test_holds_nest_in_one_process_however_the_directory_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI ``apply`` holds the lock and its pass takes it again: one hold, no wait."""
    state = tmp_path / "state"
    monkeypatch.chdir(tmp_path)
    with hold(state, wait=0, who="outer"), hold(Path("state"), wait=0, who="inner"):
        assert (state / ".lock").read_text() == f"{os.getpid()} outer\n"
        probe = subprocess.run(
            [sys.executable, "-c", HOLD, str(state), "0.2"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode == 1  # another process still cannot have it
        assert f"in use by pid {os.getpid()} (outer)" in probe.stderr
    assert (state / ".lock").read_text() == ""
