"""tests/harness/prombins.py and the ``prometheus_bin`` parameters: what ``prometheus
--version`` says, which versions sign, which supported release is missing and what the
tests then run on. Pure: no binary is run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import fixtures_prombin
from tests.harness.prombins import PromBin, host_codename, missing_releases, parse_version

BOOKWORM_242 = """\
prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)
  build user:       team+pkg-go@tracker.debian.org
  go version:       go1.19.8
"""
TRIXIE_253 = """\
prometheus, version 2.53.3+ds1 (branch: debian/sid, revision: 2.53.3+ds1-2)
  go version:       go1.24.4
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOOKWORM_242, ((2, 42, 0), "2.42.0+ds")),
        (TRIXIE_253, ((2, 53, 3), "2.53.3+ds1")),
        ("prometheus, version 3.0.1 (branch: HEAD, revision: 1f56e8)", ((3, 0, 1), "3.0.1")),
        ("promtool, version 2.45.0 (branch: x)", ((2, 45, 0), "2.45.0")),
        ("prometheus, version 2.42 (branch: x)", None),
        ("prometheus: command not found", None),
        ("", None),
    ],
)
def test_parse_version(text: str, expected: tuple[tuple[int, int, int], str] | None) -> None:
    assert parse_version(text) == expected


def _bin(version: tuple[int, int, int], release: str = "bookworm") -> PromBin:
    return PromBin(Path("/p/prometheus"), Path("/p/promtool"), version, release)


@pytest.mark.parametrize(
    ("version", "can_sign", "ident"),
    [
        ((2, 42, 0), False, "prom2.42"),
        ((2, 52, 9), False, "prom2.52"),
        ((2, 53, 0), True, "prom2.53"),
        ((2, 53, 3), True, "prom2.53"),
        ((3, 0, 0), True, "prom3.0"),
    ],
)
def test_can_sign_and_id(version: tuple[int, int, int], can_sign: bool, ident: str) -> None:
    b = _bin(version)
    assert (b.can_sign, b.id) == (can_sign, ident)


@pytest.mark.parametrize(
    ("releases", "missing"),
    [
        ((), ["bookworm", "trixie"]),
        (("bookworm",), ["trixie"]),
        (("trixie",), ["bookworm"]),
        (("bookworm", "trixie"), []),
        (("noble",), ["bookworm", "trixie"]),
    ],
)
def test_missing_releases(releases: tuple[str, ...], missing: list[str]) -> None:
    found = tuple(_bin((2, 40 + i, 0), r) for i, r in enumerate(releases))
    assert missing_releases(found) == missing


@pytest.mark.parametrize(
    ("text", "codename"),
    [
        ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n', "bookworm"),
        ('VERSION_CODENAME="trixie"\nID=debian\n', "trixie"),
        ("ID=debian\n", ""),
    ],
)
def test_host_codename(tmp_path: Path, text: str, codename: str) -> None:
    path = tmp_path / "os-release"
    path.write_text(text)
    assert host_codename(path) == codename
    assert host_codename(tmp_path / "absent") == ""


OLD = _bin((2, 42, 0), "bookworm")
NEW = _bin((2, 53, 3), "trixie")


@pytest.mark.parametrize(
    ("found", "host", "slots"),
    [
        ((OLD, NEW), "bookworm", [("prom2.42", ""), ("prom2.53", "")]),
        ((OLD, NEW), "trixie", [("prom2.42", ""), ("prom2.53", "")]),
        ((OLD,), "bookworm", [("prom2.42", ""), ("prom2.53", "scripts/fetch-prometheus")]),
        ((NEW,), "trixie", [("prom2.42", "scripts/fetch-prometheus"), ("prom2.53", "")]),
        ((NEW,), "bookworm", [("prom2.42", "apt-get install"), ("prom2.53", "")]),
        ((), "", [("prom2.42", "fetch"), ("prom2.53", "fetch")]),
    ],
    ids=["bookworm-host", "trixie-host", "no-2.53", "no-2.42", "no-host-binary", "none"],
)
def test_one_slot_per_version_and_per_missing_release(
    found: tuple[PromBin, ...], host: str, slots: list[tuple[str, str]]
) -> None:
    got = fixtures_prombin.slots(found, host)
    assert [s.id for s in got] == [ident for ident, _ in slots]
    for slot, (_, hint) in zip(got, slots, strict=True):
        assert (slot.found is None) == bool(hint)
        assert hint in slot.missing
