"""The Prometheus binaries the tests can run: the host's (Debian's package at
/usr/bin/prometheus) and each one ``scripts/fetch-prometheus`` unpacked under the test cache
(``${AMPD_TEST_CACHE:-/var/cache/ampd-test}/prometheus-<codename>/root``), which is the
other supported Debian release's.

Both releases are first-class: Debian 12 (bookworm) ships 2.42, whose ``sigv4``
remote_write block sends no Authorization header; Debian 13 (trixie) ships 2.53, which
signs. Upstream Prometheus has had the block since 2.26 (CHANGELOG, #8509), so the 2.42
failure is the Debian build of it, and no changelog entry names the first Debian version
that signs; the line drawn here is the one this project has evidence for: 2.53 signs.

``python -m tests.harness.prombins`` lists what it finds.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.releases import RELEASES, os_release

HOST_BINARY = Path("/usr/bin/prometheus")
OS_RELEASE = Path("/etc/os-release")
# The Debian releases ampd supports and the Prometheus (major, minor) each ships.
SUPPORTED = {r.codename: r.prometheus for r in RELEASES}
SIGNS_FROM = (2, 53, 0)  # the first version known to sign remote_write with ``sigv4``

_VERSION_RE = re.compile(r"\bversion (\d+)\.(\d+)\.(\d+)(\S*)")

Version = tuple[int, int, int]


def cache_dir() -> Path:
    return Path(os.environ.get("AMPD_TEST_CACHE") or "/var/cache/ampd-test")


def parse_version(text: str) -> tuple[Version, str] | None:
    """``prometheus --version`` output -> ((2, 42, 0), "2.42.0+ds"); None if it has none."""
    m = _VERSION_RE.search(text)
    if m is None:
        return None
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return (major, minor, patch), f"{major}.{minor}.{patch}{m.group(4)}"


@dataclass(frozen=True)
class PromBin:
    binary: Path
    promtool: Path
    version: Version
    release: str  # the Debian codename it came from, e.g. "bookworm"
    build: str = ""  # the version as the binary prints it, e.g. "2.42.0+ds"

    @property
    def can_sign(self) -> bool:
        """Whether its ``sigv4`` remote_write block signs (2.42 sends no signature)."""
        return self.version >= SIGNS_FROM

    @property
    def short(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def id(self) -> str:
        return f"prom{self.short}"

    def __str__(self) -> str:
        return f"Prometheus {self.build or self.short} ({self.release}, {self.binary})"


def host_codename(path: Path = OS_RELEASE) -> str:
    """VERSION_CODENAME of /etc/os-release, or "" when it does not say."""
    try:
        return os_release(path).get("VERSION_CODENAME", "")
    except OSError:
        return ""


def probe(binary: Path, release: str) -> PromBin | None:
    """The binary's version, asked of it; None when it is missing, does not run, or has no
    promtool beside it."""
    promtool = binary.with_name("promtool")
    if not (binary.is_file() and promtool.is_file()):
        return None
    try:
        res = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parsed = parse_version(res.stdout + res.stderr) if res.returncode == 0 else None
    if parsed is None:
        return None
    return PromBin(binary, promtool, parsed[0], release, parsed[1])


def candidates() -> list[tuple[Path, str]]:
    """(binary, release) of every place a Prometheus may be, the host's first."""
    found = [(HOST_BINARY, host_codename() or "host")]
    for root in sorted(cache_dir().glob("prometheus-*/root")):
        release = root.parent.name.removeprefix("prometheus-")
        found.append((root / "usr" / "bin" / "prometheus", release))
    return found


@functools.cache
def discover() -> tuple[PromBin, ...]:
    """The binaries that run, one per (major, minor) version (the host's wins a tie),
    oldest first."""
    by_version: dict[tuple[int, int], PromBin] = {}
    for binary, release in candidates():
        found = probe(binary, release)
        if found is not None:
            by_version.setdefault(found.version[:2], found)
    return tuple(sorted(by_version.values(), key=lambda b: b.version))


def host() -> PromBin | None:
    """The host's /usr/bin/prometheus, if it runs."""
    return next((b for b in discover() if b.binary == HOST_BINARY), None)


def missing_releases(found: tuple[PromBin, ...]) -> list[str]:
    """Supported releases none of ``found`` came from."""
    have = {b.release for b in found}
    return [r for r in SUPPORTED if r not in have]


def why_missing(release: str, found: tuple[PromBin, ...], host_release: str) -> str:
    major, minor = SUPPORTED[release]
    here = ", ".join(str(b) for b in found) or "none"
    how = (
        "apt-get install prometheus installs this machine's own"
        if release == host_release
        else f"scripts/fetch-prometheus fetches it into {cache_dir()}/prometheus-{release}"
    )
    return f"no Prometheus {major}.{minor} (Debian {release}'s) here (found: {here}); {how}"


def main() -> int:
    found = discover()
    for b in found:
        print(f"{b.id}  {b}  can_sign={b.can_sign}  promtool={b.promtool}")
    for release in missing_releases(found):
        print(why_missing(release, found, host_codename()))
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())
