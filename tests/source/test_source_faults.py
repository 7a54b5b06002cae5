"""Local faults while a remote state's files are copied to disk (issue 22): a name too
long, a full disk, a directory the daemon may not write, a cache left by root. None of
them escapes ``poll()`` (every pass used to end in ``reconcile.crashed``): the version is
reported (``StateSourceValid=False``, reason LocalCopyFailed, looked at again with
backoff) and the running version stays; a cache that cannot be read is a condition."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ampd import cli
from ampd.gateways import files as gw_files
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import SourceFetcher
from ampd.source.open import open_remote
from ampd.source.specfile import file_problems
from ampd.source.state import StateSource
from tests.harness.fixtures_aws import AwsEnv

REPO = Path(__file__).resolve().parents[2]
NAME = "/fleet/prod/ampd"
RULES = (REPO / "config/rules/node.yml").read_text()
NOBODY = 65534


def state(rule_file: str, stack: str = "fleet") -> str:
    return (
        f"version: 1\nstack: {stack}\nprometheus:\n  enabled: false\n"
        "workspace:\n  alias: fleet\n  rule_groups:\n    - name: node\n"
        f"      file: {rule_file}\n"
    )


def publish(ssm: Any, text: str, rules: str = RULES, rule_name: str = "rules/node.yml") -> None:
    ssm.put_parameter(Name=NAME, Value=text, Type="String", Overwrite=True)
    ssm.put_parameter(Name=f"/fleet/prod/{rule_name}", Value=rules, Type="String", Overwrite=True)


def source(cache: Path | None) -> StateSource:
    return StateSource(
        f"ssm:{NAME}",
        cache,
        SourceFetcher(),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        rng=random.Random(1),
        files=FileWriter(),
    )


def cond(src: StateSource, ctype: str) -> Any:
    return {c.type: c for c in src.conditions()}[ctype]


def look(src: StateSource) -> bool:
    src.look_now()
    return src.poll()


def test_a_long_remote_name_is_copied_under_a_bounded_local_name(
    aws_emulator_env: AwsEnv, tmp_path: Path
) -> None:
    long_name = "rules/" + "r" * 300 + ".yml"  # a local name of 317 bytes: ENAMETOOLONG
    ssm = boto3.client("ssm")
    publish(ssm, state(long_name), rule_name=long_name)
    src = source(tmp_path / "source")
    ws = src.current().spec.workspace
    assert ws is not None
    local = Path(ws.rule_groups[0].file)
    assert local.read_text() == RULES
    assert len(local.name) < 128
    assert cond(src, "StateSourceValid").status == "True"


def test_a_cache_dir_with_a_name_too_long_is_a_condition_not_a_crash(
    aws_emulator_env: AwsEnv, tmp_path: Path
) -> None:
    ssm = boto3.client("ssm")
    publish(ssm, state("rules/node.yml"))
    src = source(tmp_path / ("d" * 300) / "source")  # a real ENAMETOOLONG from the kernel
    assert look(src) is False  # no exception out of poll()
    valid = cond(src, "StateSourceValid")
    assert (valid.status, valid.reason) == ("False", "LocalCopyFailed")
    assert valid.message.startswith(
        f"ssm:{NAME}:9:13: workspace.rule_groups[0].file: rules/node.yml: cannot keep a"
        " local copy under "
    )
    assert "File name too long (ENAMETOOLONG); trying again" in valid.message
    cached = cond(src, "StateSourceCached")
    assert cached.status == "False" and "ENAMETOOLONG" in cached.message
    assert src.next_poll_in() <= 7.5  # backoff, not the 60 s interval


def good_then(tmp_path: Path) -> tuple[Any, StateSource]:
    ssm = boto3.client("ssm")
    publish(ssm, state("rules/node.yml"))
    src = source(tmp_path / "source")
    assert src.current().spec.stack == "fleet"
    publish(ssm, state("rules/node.yml", "fleet-b"), rules=RULES.replace("node", "host"))
    return ssm, src


@pytest.mark.parametrize(
    ("code", "text"),
    [(errno.ENOSPC, "No space left on device (ENOSPC)"), (errno.EACCES, "Permission denied")],
)
def test_a_write_fault_keeps_the_running_version_and_is_tried_again(
    aws_emulator_env: AwsEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    text: str,
) -> None:
    _, src = good_then(tmp_path)

    def failing(path: Path, data: bytes, mode: int = 0o640) -> None:
        # what the gateway raises for this errno (a tiny tmpfs needs a mount)
        e = OSError(code, os.strerror(code), str(path))
        raise gw_files._write_error(path, e) from e

    monkeypatch.setattr(gw_files, "atomic_write", failing)  # FileWriter.write's
    assert look(src) is False
    assert src.current().spec.stack == "fleet"  # still running the last good version
    valid = cond(src, "StateSourceValid")
    assert (valid.status, valid.reason) == ("False", "LocalCopyFailed")
    assert text in valid.message
    assert "running the last good version (1)" in valid.message
    assert src.next_poll_in() <= 7.5
    assert look(src) is False  # tried again (not skipped as a bad version), fails again
    monkeypatch.undo()
    assert look(src) is True  # the disk has room again: the same version is taken
    assert src.current().spec.stack == "fleet-b"
    assert cond(src, "StateSourceValid").status == "True"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (the mount needs root, which the suite runs as)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_really_full_disk(aws_emulator_env: AwsEnv, tiny_fs: Path) -> None:
    ssm = boto3.client("ssm")
    publish(ssm, state("rules/node.yml"))
    src = source(tiny_fs / "source")
    assert src.current().spec.stack == "fleet"
    filler = tiny_fs / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as fh:
        while True:  # fill the file system to the last block
            fh.write(b"x" * 4096)
            fh.flush()
    publish(ssm, state("rules/node.yml", "fleet-b"), rules=RULES.replace("node", "host") * 8)
    assert look(src) is False
    valid = cond(src, "StateSourceValid")
    assert (valid.status, valid.reason) == ("False", "LocalCopyFailed")
    assert "No space left on device (ENOSPC)" in valid.message
    assert src.current().spec.stack == "fleet"
    filler.unlink()
    assert look(src) is True
    assert src.current().spec.stack == "fleet-b"


def test_a_files_path_that_is_not_a_directory(aws_emulator_env: AwsEnv, tmp_path: Path) -> None:
    _, src = good_then(tmp_path)
    files = tmp_path / "source" / "files"
    for p in files.iterdir():
        p.unlink()
    files.rmdir()
    files.write_text("not a directory")  # a real ENOTDIR/EEXIST
    assert look(src) is False
    assert src.current().spec.stack == "fleet"
    assert cond(src, "StateSourceValid").reason == "LocalCopyFailed"


def owners(root: Path) -> set[int]:
    return {p.lstat().st_uid for p in [root, *root.rglob("*")]}


@pytest.mark.skipif(os.geteuid() != 0, reason="a root CLI run needs root")
def test_apply_as_root_leaves_files_the_state_dirs_owner_can_replace(
    aws_emulator_env: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(boto3.client("ssm"), state("rules/node.yml"))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.chown(state_dir, NOBODY, NOBODY)  # as the package makes it for the ampd user
    monkeypatch.setenv("STATE_DIRECTORY", str(state_dir))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    monkeypatch.setenv("AMPD_STATE", f"ssm:{NAME}")
    monkeypatch.setenv("AMPD_RUNTIME", "supervisor")
    assert cli.main(["apply"]) in (0, 2)
    source_dir = state_dir / "source"
    assert (source_dir / "files").is_dir()
    assert owners(source_dir) == {NOBODY}
    assert cli.main(["apply", "--accept", "1"]) in (0, 2)
    assert owners(source_dir) == {NOBODY}  # the acceptance record too


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the ampd user can reach (pytest's tmp_path lives under root's 0700)."""
    base = Path(tempfile.mkdtemp(prefix="ampd-faults-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def as_user(uid: int) -> Iterator[None]:
    """Run the block with ``uid`` as the effective user (the kernel's checks apply)."""
    os.setegid(uid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the ampd user needs root")
def test_a_daemon_that_finds_root_owned_cache_files_says_so_and_runs(
    aws_emulator_env: AwsEnv, open_dir: Path
) -> None:
    publish(boto3.client("ssm"), state("rules/node.yml"))
    state_dir = open_dir / "state"
    state_dir.mkdir()
    source(state_dir / "source").current()  # what an older `sudo ampd apply` left: root's
    os.chown(state_dir, NOBODY, NOBODY)
    assert owners(state_dir / "source") == {0}
    fetcher = SourceFetcher()
    fetcher._client("ssm")  # botocore's data files: readable by root only here
    with as_user(NOBODY):  # the daemon, as the unprivileged user it runs as
        daemon = StateSource(
            f"ssm:{NAME}",
            state_dir / "source",
            fetcher,
            validate=lambda loaded: file_problems(loaded, run_promtool=False),
            files=FileWriter(),
        )
        cached = cond(daemon, "StateSourceCached")  # at start: no crash, a condition
        assert (cached.status, cached.reason) == ("False", "CacheFailed")
        assert "Permission denied (EACCES)" in cached.message
        assert "chown it to the user ampd runs as" in cached.message
        assert daemon.poll() is False  # no exception out of poll()
        valid = cond(daemon, "StateSourceValid")
    assert (valid.status, valid.reason) == ("False", "LocalCopyFailed")
    assert "Permission denied (EACCES)" in valid.message


def test_a_read_only_remote_state_removes_its_scratch_copies(
    aws_emulator_env: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ampd plan``/``render``/``validate`` open a remote state without a file writer:
    the copies the checks need go to a private scratch directory, and close() removes
    it; the state directory's cache is not written."""
    publish(boto3.client("ssm"), state("rules/node.yml"))
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    src = open_remote(f"ssm:{NAME}", tmp_path / "source", run_promtool=False)
    loaded = src.load()
    [rules] = loaded.spec.workspace.rule_groups if loaded.spec.workspace else []
    copy = Path(rules.file)
    assert scratch_root in copy.parents and copy.read_text() == RULES
    assert src.pushed_files() == {rules.file: RULES.encode()}
    src.close()
    assert list(scratch_root.iterdir()) == []  # nothing left behind
    assert not (tmp_path / "source").exists()  # and no cache written
