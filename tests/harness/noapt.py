"""Shims that make package installs fail during the tests, naming the test that tried.

``python -m tests.harness.noapt DIR`` writes ``apt-get``, ``apt``, ``aptitude`` and a
``dpkg`` that refuses to install or remove (and passes everything else, such as
``--print-architecture``, to the real one) into DIR and prints DIR; scripts/test puts it
first on PATH for the pytest step. What the suite needs is installed before pytest
starts (scripts/test): a test that installs a package on this machine is a bug that a
bare machine shows (two workers race for the dpkg lock) and a warm one hides.
Commands run inside a chroot or a box use that tree's own PATH and are not affected.
"""

from __future__ import annotations

import sys
from pathlib import Path

REFUSED = ("apt-get", "apt", "aptitude")
MESSAGE = (
    "no test may install or remove packages on this machine (called by "
    "${PYTEST_CURRENT_TEST:-a process outside any test}): scripts/test installs what the "
    "suite needs before pytest starts"
)
APT_SHIM = f"""#!/bin/sh
echo "$(basename "$0") $*: {MESSAGE}" >&2
exit 100
"""
DPKG_SHIM = f"""#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    -i|--install|--unpack|--configure|-r|--remove|-P|--purge|--triggers-only|-a|--pending)
      echo "dpkg $*: {MESSAGE}" >&2
      exit 2 ;;
  esac
done
exec /usr/bin/dpkg "$@"
"""


def write_shims(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in REFUSED:
        _write(directory / name, APT_SHIM)
    _write(directory / "dpkg", DPKG_SHIM)
    return directory


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.replace(path)


if __name__ == "__main__":
    print(write_shims(Path(sys.argv[1]).resolve()))  # the caller reads the path
