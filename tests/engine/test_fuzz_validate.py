"""``ampd validate`` against generated state files and what can stand in their place.

Every case: no traceback, exit 0 or 1, and on 1 every line of stderr is a problem of the
form ``FILE:LINE:COL: message``. The documents come from the JSON Schema and are then
broken (tests/harness/fuzzgen.py). The run is derandomized, so CI sees the same cases
every time: 6,000 of them, about 50 s of CPU on this project's 2-core machine (~9 ms a
case, mostly ruamel's round-trip parser). ``AMPD_FUZZ_EXAMPLES=10000`` is the figure in
docs/reliability.md; ``AMPD_FUZZ_SEED=n`` draws other cases.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given

from ampd.cli import main
from ampd.errors import AmpdError, SpecError
from ampd.source.specfile import load_and_check
from tests.harness.fuzzgen import KINDS, fuzz_settings, make_fs_case, run_timed, state_files

EXAMPLES = int(os.environ.get("AMPD_FUZZ_EXAMPLES", "6000"))
FUZZ = fuzz_settings(EXAMPLES)
CLI_EVERY = 25  # every 25th case also goes through ampd.cli.main
AMPD = str(Path(sys.executable).parent / "ampd")


def check_output(path: Path, rc: int, out: str, err: str) -> None:
    assert rc in (0, 1), f"exit {rc}"
    assert "Traceback" not in out + err
    if rc == 0:
        assert out == f"{path}: valid\n"
        assert err == ""
        return
    lines = err.splitlines()
    assert lines, "exit 1 without a problem"
    where = re.compile(rf"^{re.escape(str(path))}:[1-9]\d*:[1-9]\d*: \S")
    for line in lines:
        assert where.match(line), f"not FILE:LINE:COL: {line[:300]!r}"


def validate(path: Path) -> tuple[int, str, str]:
    """What ``ampd validate --no-promtool FILE`` does, minus argparse (~15 ms a call):
    the function behind the command, and the command's own error handling."""
    try:
        load_and_check(path, run_promtool=False)
    except SpecError as e:
        return 1, "", f"{e}\n"
    except AmpdError as e:
        return 1, "", f"ampd: {e}\n"
    return 0, f"{path}: valid\n", ""


def test_generated_state_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.yml"
    seen: Counter[str] = Counter()
    exits: Counter[int] = Counter()

    @FUZZ
    @given(state_files())
    def one(case: tuple[str, bytes]) -> None:
        kind, data = case
        path.write_bytes(data)
        rc, out, err = validate(path)
        check_output(path, rc, out, err)
        if sum(seen.values()) % CLI_EVERY == 0:  # the command itself says the same
            capsys.readouterr()
            cli_rc = main(["--log-level", "error", "validate", "--no-promtool", str(path)])
            assert (cli_rc, *capsys.readouterr()) == (rc, out, err)
        seen[kind] += 1
        exits[rc] += 1

    wall, cpu = run_timed(one)
    with capsys.disabled():
        print(
            f"\nvalidate fuzz: {sum(seen.values())} cases, {wall:.1f} s wall, {cpu:.1f} s CPU;"
            f" exits {dict(exits)}; kinds {dict(seen)}"
        )
    assert sum(seen.values()) >= EXAMPLES
    assert set(seen) == set(KINDS), "every mutation kind was tried"
    assert exits[0] > 0 and exits[1] > 0, "both valid and invalid files were generated"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory other users can enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="ampd-fuzz-"))
    d.chmod(0o755)
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=True)


def run_validate(path: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, AMPD, "validate", "--no-promtool", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("kind", ["missing", "directory", "dangling_symlink"])
def test_what_stands_in_place_of_the_file(open_dir: Path, kind: str) -> None:
    path = make_fs_case(kind, open_dir / "state.yml")
    res = run_validate(path)
    check_output(path, res.returncode, res.stdout, res.stderr)
    assert res.returncode == 1


def test_unreadable_for_a_non_root_user(open_dir: Path) -> None:
    path = open_dir / "state.yml"
    path.write_text("version: 1\n")
    path.chmod(0o600)  # root's own file
    res = run_validate(path, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    check_output(path, res.returncode, res.stdout, res.stderr)
    assert res.returncode == 1
    assert res.stderr == f"{path}:1:1: permission denied\n"
    # the same file is fine for root: the refusal was the permission, not the content
    assert run_validate(path).returncode == 0


def test_a_1500_deep_document_is_refused_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "state.yml"
    path.write_text("version: 1\nstack: " + "[" * 1500 + "]" * 1500 + "\n")
    res = run_validate(path)
    check_output(path, res.returncode, res.stdout, res.stderr)
    assert res.returncode == 1
    assert "nested too deeply" in res.stderr


def test_a_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["version: 1", "a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = tmp_path / "state.yml"
    path.write_text("\n".join([*lines, "prometheus: *a9"]) + "\n")
    res = run_validate(path)
    check_output(path, res.returncode, res.stdout, res.stderr)
    assert "aliases are expanded" in res.stderr
