"""Write one benchmark's results into its own marked section of docs/benchmarks.md, and
say on what they were measured."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.harness import prombins

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is rewritten by the benchmark named in it (`bench/`).\n"


def write_section(name: str, markdown: str) -> None:
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{markdown.rstrip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else "?"


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def environment() -> str:
    """One line: when, on what machine, with which versions (beside every table)."""
    # the host's Prometheus, the one the benchmarks run: 2.42 on Debian 12, 2.53 on 13
    found = prombins.probe(prombins.HOST_BINARY, prombins.host_codename() or "?")
    prom = f"{found.build} (Debian {found.release})" if found else "not installed"
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"*Measured {now} on {os.cpu_count()} CPUs ({_cpu_model()}), "
        f"Linux {platform.release()}, Python {sys.version.split()[0]}, "
        f"Prometheus {prom}, ampd {commit}, load average "
        f"{os.getloadavg()[0]:.1f} at the end; the machine is shared, "
        f"so figures are ratios against a baseline measured in the same run where one "
        f"exists.*"
    )
