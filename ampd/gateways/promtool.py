"""promtool and the Prometheus binary: config/rules/metrics checks and version probing."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ampd.errors import PermanentError
from ampd.gateways.execcheck import untrusted

_VERSION_RE = re.compile(r"version (\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    output: str


def find_promtool(prometheus_binary: str | None = None) -> str | None:
    """The promtool beside ``prometheus_binary`` when there is one that ampd may run
    (ampd.gateways.execcheck), else the one on PATH."""
    if prometheus_binary:
        sibling = Path(prometheus_binary).parent / "promtool"  # (with_name fails on "/")
        if sibling.is_file() and untrusted(str(sibling)) is None:
            return str(sibling)
    return shutil.which("promtool")


def _run(argv: list[str], stdin: str | None = None, timeout: float = 30.0) -> CheckResult:
    try:
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as e:
        raise PermanentError(f"{argv[0]} not found: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise PermanentError(f"{argv[0]} took longer than {timeout}s") from e
    return CheckResult(proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def check_config(path: Path, promtool: str | None = None, *, agent: bool = False) -> CheckResult:
    tool = promtool or find_promtool()
    if tool is None:
        raise PermanentError("promtool not found (apt install prometheus)")
    return _run([tool, "check", "config", *(["--agent"] if agent else []), str(path)])


def check_rules(path: Path, promtool: str | None = None) -> CheckResult:
    tool = promtool or find_promtool()
    if tool is None:
        raise PermanentError("promtool not found (apt install prometheus)")
    return _run([tool, "check", "rules", str(path)])


def check_rules_text(text: str, promtool: str | None = None) -> CheckResult:
    """``promtool check rules`` of rules held in memory (the state's own ``content``),
    handed over on stdin; its messages name the rules ``content`` instead of a file."""
    tool = promtool or find_promtool()
    if tool is None:
        raise PermanentError("promtool not found (apt install prometheus)")
    res = _run([tool, "check", "rules", "/dev/stdin"], stdin=text)
    return CheckResult(res.ok, res.output.replace("/dev/stdin", "content"))


def check_metrics(text: str, promtool: str | None = None) -> CheckResult:
    tool = promtool or find_promtool()
    if tool is None:
        raise PermanentError("promtool not found (apt install prometheus)")
    return _run([tool, "check", "metrics"], stdin=text)


def binary_version(binary: str) -> tuple[int, int, int] | None:
    """``prometheus --version`` -> (2, 42, 0); None when it is missing or unreadable, or
    when ampd may not run it (not root's all the way down: ampd.gateways.execcheck)."""
    if not Path(binary).is_file() or untrusted(binary) is not None:
        return None
    try:
        res = _run([binary, "--version"], timeout=10)
    except PermanentError:
        return None
    m = _VERSION_RE.search(res.output)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
