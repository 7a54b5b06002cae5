"""The state chooses executables; ampd runs only those that are root's all the way down.

``prometheus.binary`` (and the promtool beside it), ``grafana.binary``, ``grafana.homepath``
and ``proxy.binary`` must be owned by root and not writable by group or others, and so must
every directory on the way, symlinks followed (ampd.gateways.execcheck). ``ampd validate``
refuses anything else with FILE:LINE:COL; ``ampd plan|apply|render`` never run such a
binary, and the version probes refuse it even when validation is bypassed.

Real files: the suite runs as root (chown, chmod); the good directories come from
tests/harness/execdir.py (under /var/cache, 0755), the bad ones from tmp_path (under /tmp,
mode 1777).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ampd.cli import main
from ampd.core import Command
from ampd.engine.factfinder import untrusted_notes
from ampd.errors import PermanentError
from ampd.gateways import grafana as grafana_gw
from ampd.gateways import promtool
from ampd.gateways.execcheck import untrusted
from ampd.gateways.supervisor import Supervisor
from ampd.spec.models import StateSpec
from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_local import AmpdProcess

# a Prometheus that leaves a mark whenever anything runs it
MARKING = '#!/bin/sh\necho ran >> "{mark}"\necho "prometheus, version 2.53.0 (branch: x)"\n'


def executable(path: Path, mark: Path, mode: int = 0o755) -> Path:
    path.write_text(MARKING.format(mark=mark))
    path.chmod(mode)
    return path


def test_a_root_owned_binary_in_root_owned_directories_passes(tmp_path: Path) -> None:
    binary = executable(trusted_dir() / "prometheus", tmp_path / "mark")
    assert untrusted(str(binary)) is None
    assert untrusted("/usr/bin/prometheus") is None
    # missing, below directories only root can write: only root can create it
    assert untrusted(str(trusted_dir() / "not-yet" / "prometheus")) is None


def test_a_binary_owned_by_another_user_fails(tmp_path: Path) -> None:
    binary = executable(trusted_dir() / "prometheus", tmp_path / "mark")
    os.chown(binary, 1000, 1000)
    why = untrusted(str(binary))
    assert why is not None
    assert why.startswith(f"{binary} is owned by ")
    assert "uid 1000" in why
    assert "mode 0755" in why


def test_a_group_writable_directory_on_the_path_fails(tmp_path: Path) -> None:
    d = trusted_dir() / "opt"
    d.mkdir()
    d.chmod(0o775)
    binary = executable(d / "prometheus", tmp_path / "mark")
    assert untrusted(str(binary)) == f"{d} is writable by its group (mode 0775, owned by root)"
    d.chmod(0o755)
    assert untrusted(str(binary)) is None


def test_a_world_writable_binary_fails(tmp_path: Path) -> None:
    binary = executable(trusted_dir() / "prometheus", tmp_path / "mark", mode=0o757)
    assert untrusted(str(binary)) == f"{binary} is writable by others (mode 0757, owned by root)"


def test_tmp_is_world_writable_even_with_its_sticky_bit(tmp_path: Path) -> None:
    assert stat.S_IMODE(Path("/tmp").stat().st_mode) == 0o1777
    binary = executable(tmp_path / "prometheus", tmp_path / "mark")
    why = untrusted(str(binary))
    assert why == "/tmp is writable by its group and others (mode 1777, owned by root)"
    # not there yet: anyone may create it in /tmp
    assert untrusted("/tmp/ampd-nothing-here/prometheus") == why
    assert stat.S_IMODE(Path("/run/lock").stat().st_mode) == 0o1777  # as on a booted machine
    assert untrusted("/run/lock/prometheus") is not None  # the example


def test_a_symlink_is_followed_and_its_own_directory_checked(tmp_path: Path) -> None:
    good = trusted_dir()
    # a link in a good directory to a binary under /tmp: the target's path fails
    in_tmp = executable(tmp_path / "prometheus", tmp_path / "mark")
    (good / "to-tmp").symlink_to(in_tmp)
    assert "/tmp is writable" in (untrusted(str(good / "to-tmp")) or "")
    # a link under /tmp to a good binary: whoever owns /tmp's names chooses the target
    (tmp_path / "to-usr").symlink_to("/usr/bin/prometheus")
    assert "/tmp is writable" in (untrusted(str(tmp_path / "to-usr")) or "")
    # a relative link inside good directories to a good binary passes
    real = executable(good / "real", tmp_path / "mark")
    (good / "sub").mkdir()
    (good / "sub" / "rel").symlink_to("../real")
    assert untrusted(str(good / "sub" / "rel")) is None
    assert real.exists()
    # ... and one that climbs through a link into /tmp does not
    (good / "up").symlink_to(tmp_path)
    assert "/tmp is writable" in (untrusted(str(good / "up" / "prometheus")) or "")
    # a loop
    (good / "a").symlink_to(good / "b")
    (good / "b").symlink_to(good / "a")
    assert "too many levels of symbolic links" in (untrusted(str(good / "a")) or "")


# -- ampd validate -------------------------------------------------------------------------


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str) -> tuple[Path, str]:
    path = tmp_path / "state.yml"
    path.write_text("version: 1\n" + body)
    rc = main(["validate", "--no-promtool", str(path)])
    out = capsys.readouterr()
    assert rc == 1, out.out
    return path, out.err


@pytest.mark.parametrize(
    ("section", "where", "field"),
    [
        ("prometheus: {{remote_write: null, binary: {p}}}\n", "2:42", "prometheus.binary"),
        ("grafana: {{binary: {p}}}\n", "2:19", "grafana.binary"),
        ("grafana: {{homepath: {p}}}\n", "2:21", "grafana.homepath"),
        (
            "proxy: {{implementation: aws-sigv4-proxy, binary: {p}}}\n",
            "2:50",
            "proxy.binary",
        ),
    ],
)
def test_validate_refuses_a_binary_under_tmp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, where: str, field: str
) -> None:
    binary = executable(tmp_path / "prog", tmp_path / "mark")
    path, err = validate(tmp_path, capsys, section.format(p=binary))
    assert err.startswith(f"{path}:{where}: {field}: {binary} is not "), err
    assert "/tmp is writable by its group and others (mode 1777, owned by root)" in err
    assert "must be owned by root and writable by no one else" in err
    assert not (tmp_path / "mark").exists()


def test_validate_names_the_owner_and_the_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = executable(trusted_dir() / "prometheus", tmp_path / "mark")
    os.chown(binary, 1000, 1000)
    path, err = validate(
        tmp_path, capsys, f"prometheus: {{remote_write: null, binary: {binary}}}\n"
    )
    assert (
        f"{path}:2:42: prometheus.binary: {binary} is not run by ampd: {binary} is owned by" in err
    )
    assert "uid 1000" in err and "mode 0755" in err


def test_validate_refuses_an_untrusted_promtool_beside_a_good_binary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = trusted_dir()
    binary = executable(d / "prometheus", tmp_path / "mark")
    executable(d / "promtool", tmp_path / "mark", mode=0o775)
    path, err = validate(
        tmp_path, capsys, f"prometheus: {{remote_write: null, binary: {binary}}}\n"
    )
    assert f"{path}:2:42: prometheus.binary: {d / 'promtool'} is not run by ampd" in err
    assert "writable by its group (mode 0775" in err


def test_validate_accepts_root_owned_binaries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = trusted_dir()
    prom = executable(d / "prometheus", tmp_path / "mark")
    graf = executable(d / "grafana-server", tmp_path / "mark")
    path = tmp_path / "state.yml"
    path.write_text(
        f"version: 1\nprometheus: {{remote_write: null, binary: {prom}}}\n"
        f"grafana: {{binary: {graf}, homepath: {d}}}\n"
    )
    assert main(["validate", "--no-promtool", str(path)]) == 0, capsys.readouterr().err


# -- the root CLI and the probes -----------------------------------------------------------


@pytest.mark.parametrize("command", [("plan",), ("render",), ("apply", "--once")])
def test_the_root_cli_never_runs_an_untrusted_binary(tmp_path: Path, command: tuple[str]) -> None:
    mark = tmp_path / "mark"
    binary = executable(tmp_path / "bin-prometheus", mark)
    executable(tmp_path / "promtool", mark)  # the sibling ampd would ask to check configs
    proc = AmpdProcess(tmp_path)
    state: dict[str, Any] = {
        "version": 1,
        "prometheus": {"binary": str(binary), "remote_write": None},
        "grafana": {"binary": str(binary)},
        "metrics": {"enabled": False},
        "runtime": "supervisor",
    }
    proc.write_state(state)
    res = proc.ampd(*command)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"prometheus.binary: {binary} is not run by ampd" in res.stderr
    assert not mark.exists(), "an untrusted binary was run"


def test_the_version_probes_refuse_an_untrusted_binary_even_past_validation(
    tmp_path: Path,
) -> None:
    mark = tmp_path / "mark"
    bad = executable(tmp_path / "prometheus", mark)
    executable(tmp_path / "promtool", mark)
    assert promtool.binary_version(str(bad)) is None
    assert grafana_gw.grafana_version(str(bad)) is None
    assert promtool.find_promtool(str(bad)) != str(tmp_path / "promtool")
    assert not mark.exists(), "an untrusted binary was run"
    good = executable(trusted_dir() / "prometheus", mark)
    assert promtool.binary_version(str(good)) == (2, 53, 0)
    assert mark.read_text() == "ran\n"
    spec = StateSpec.model_validate({"version": 1, "prometheus": {"binary": str(bad)}})
    (note,) = untrusted_notes(spec)
    assert note.startswith(f"prometheus.binary: {bad} is not run by ampd: /tmp is writable")


# -- the runtimes check again when they start a process ------------------------------------


def test_the_supervisor_refuses_to_start_an_untrusted_binary(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    binary = executable(tmp_path / "prometheus", mark)  # under /tmp: anyone may replace it
    sup = Supervisor()
    with pytest.raises(PermanentError, match="refusing to run"):
        sup.start(Command("prometheus", (str(binary),)))
    assert not mark.exists()
    assert not sup.observe("prometheus").running


def test_ampd_exec_refuses_an_untrusted_binary(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    binary = executable(tmp_path / "prometheus", mark)
    state_dir = tmp_path / "state"
    (state_dir / "generated").mkdir(parents=True)
    (state_dir / "generated" / "prometheus.cmd.json").write_text(
        json.dumps({"argv": [str(binary)], "env": {}})
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ampd"), "exec", "prometheus"],
        env={**os.environ, "STATE_DIRECTORY": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "refusing to run" in done.stderr
    assert not mark.exists()
