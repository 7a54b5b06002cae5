"""The Debian releases ampd supports, and which one this machine runs.

Both are first-class: the package is built and installed for each, in a clean tree of that
release, and booted under that release's systemd. The machine's own release is the one the
boxes of ``tests/harness/sysbox.py`` run (its Python matches the checkout's virtualenv).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Release:
    codename: str
    number: int
    python: str  # the interpreter its python3 is, e.g. "python3.11"
    systemd: int  # the systemd version it ships
    prometheus: tuple[int, int]  # the Prometheus (major, minor) it ships

    @property
    def deb_suffix(self) -> str:
        """What scripts/build-deb appends to the version for this release."""
        return f"~deb{self.number}u1"


BOOKWORM = Release("bookworm", 12, "python3.11", 252, (2, 42))
TRIXIE = Release("trixie", 13, "python3.13", 257, (2, 53))
RELEASES = (BOOKWORM, TRIXIE)


class UnknownRelease(RuntimeError):
    """This machine runs no release that ampd supports."""


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def release_named(codename: str) -> Release:
    for release in RELEASES:
        if release.codename == codename:
            return release
    raise UnknownRelease(f"{codename!r} is not a supported release ({', '.join(supported())})")


def supported() -> list[str]:
    return [f"Debian {r.number} ({r.codename})" for r in RELEASES]


@functools.cache
def host_release() -> Release:
    fields = os_release()
    if fields.get("ID") != "debian" or "VERSION_CODENAME" not in fields:
        raise UnknownRelease(f"this machine is {fields.get('PRETTY_NAME', 'unknown')}")
    return release_named(fields["VERSION_CODENAME"])


def _sources() -> list[tuple[list[str], list[str], list[str]]]:
    """(types, uris, suites) of every apt source of this machine (deb822 or one-line)."""
    found: list[tuple[list[str], list[str], list[str]]] = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
                    if not k.startswith("#") and v
                }
                found.append(
                    (
                        fields.get("types", "").split(),
                        fields.get("uris", "").split(),
                        fields.get("suites", "").split(),
                    )
                )
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in text.splitlines():
                parts = [p for p in line.split() if not p.startswith("[")]
                if len(parts) >= 3 and parts[0] == "deb":
                    found.append((["deb"], [parts[1]], [parts[2]]))
    return found


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses for its own release (not -security)."""
    host = host_release().codename
    for types, uris, suites in _sources():
        if "deb" in types and host in suites and uris:
            return uris[0]
    raise UnknownRelease(f"no {host} mirror in this machine's apt sources")
