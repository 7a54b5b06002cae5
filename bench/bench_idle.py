"""Idle cost of ``ampd run``: CPU % and resident memory over a window with nothing to do,
against baselines measured in the same run, and where the memory and start time go.

Baselines: the Prometheus ampd supervises (CPU over the same window) and a bare Python
interpreter (RSS). Profile: every module the daemon imports (``-X importtime`` of a real
``ampd run``) grouped by top-level package, and the RSS each heavy package adds to a bare
interpreter on its own.

    python -m bench.bench_idle [--window 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.report import REPO, environment, write_section
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.local.test_daemon_local import base_state

TICK = os.sysconf("SC_CLK_TCK")
# In the dev virtualenv structlog finds rich (pulled in by import-linter) and imports it
# with pygments; the .deb's private virtualenv has neither. Hidden here, as installed.
DEV_ONLY = ("rich", "pygments")
PACKAGES = (
    "boto3",
    "pydantic",
    "jinja2",
    "watchfiles",
    "prometheus_client",
    "structlog",
    "ruamel.yaml",
    "sdnotify",
)


def hide_dev_only(root: Path) -> dict[str, str]:
    """An environment in which ``DEV_ONLY`` packages cannot be imported."""
    for name in DEV_ONLY:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('{name}: dev-only')\n")
    return {"PYTHONPATH": str(root)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def prometheus_pid(marker: str) -> int:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd and "--config.file" in cmd:
                return int(d.name)
    raise LookupError("no Prometheus")


def bare_python_rss(imports: str = "", env: dict[str, str] | None = None) -> float:
    """RSS of a bare interpreter (after ``imports``), in MiB."""
    code = f"{imports}\nimport time; print(flush=True); time.sleep(60)"
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    try:
        assert p.stdout is not None
        p.stdout.readline()
        return rss_mib(p.pid)
    finally:
        p.kill()
        p.wait()


WATCHER = """
import asyncio, sys, watchfiles
async def main():
    async for _ in watchfiles.awatch(sys.argv[1], debounce=50, step=20, recursive=True,
                                     yield_on_timeout=True, rust_timeout=2000):
        pass
asyncio.run(main())
"""


INOTIFY = """
import asyncio, sys
from pathlib import Path
from ampd.gateways.inotify import watch
async def main():
    async for _ in watch([Path(sys.argv[1])], asyncio.Event()):
        pass
asyncio.run(main())
"""


def start_watcher(directory: str, code: str = WATCHER) -> subprocess.Popen[bytes]:
    """A watcher alone on an idle directory: watchfiles with the daemon's settings, or
    ampd.gateways.inotify."""
    return subprocess.Popen([sys.executable, "-c", code, directory], cwd=REPO)


def idle_state() -> dict[str, object]:
    """A local-only state file with the default 15 s scrape interval (ampd's own /metrics
    is scraped at it: part of what ampd does when idle)."""
    state = base_state(free_port(), free_port())
    state["prometheus"]["scrape_interval"] = "15s"
    return state


def measure_idle(window: float, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        proc = AmpdProcess(Path(d), env=env)
        proc.write_state(idle_state())
        proc.start()
        try:
            proc.wait_healthy(60)
            time.sleep(5.0)  # let the first passes and the Prometheus start settle
            assert proc.proc is not None
            pid, prom = proc.proc.pid, prometheus_pid(d)
            watcher = start_watcher(str(proc.state_file.parent))
            inotify = start_watcher(str(proc.state_file.parent), INOTIFY)
            time.sleep(5.0)  # past their imports
            try:
                w0, a0, p0 = cpu_seconds(watcher.pid), cpu_seconds(pid), cpu_seconds(prom)
                i0, t0 = cpu_seconds(inotify.pid), time.monotonic()
                time.sleep(window)
                w1, a1, p1 = cpu_seconds(watcher.pid), cpu_seconds(pid), cpu_seconds(prom)
                i1, t1 = cpu_seconds(inotify.pid), time.monotonic()
            finally:
                for p in (watcher, inotify):
                    p.kill()
                    p.wait()
            passes = len(proc.events("reconcile.summary"))
            return {
                "cpu_pct": (a1 - a0) / (t1 - t0) * 100,
                "prom_cpu_pct": (p1 - p0) / (t1 - t0) * 100,
                "watch_cpu_pct": (w1 - w0) / (t1 - t0) * 100,
                "inotify_cpu_pct": (i1 - i0) / (t1 - t0) * 100,
                "rss": rss_mib(pid),
                "hwm": rss_mib(pid, "VmHWM"),
                "window": t1 - t0,
                "passes": passes,
            }
        finally:
            proc.stop()


def import_profile(env: dict[str, str]) -> tuple[list[tuple[str, float, int]], float]:
    """(package, self ms, modules) for every top-level package a real ``ampd run``
    imports, biggest first; and the total import time in ms."""
    with tempfile.TemporaryDirectory() as d:
        proc = AmpdProcess(Path(d), env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
        proc.write_state(idle_state())
        proc.start()
        try:
            proc.wait_healthy(60)
        finally:
            proc.stop()
        text = proc.log_path.read_text(errors="replace")
    per: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    total = 0.0
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.split(":", 1)[1].split("|")
        top = name.strip().split(".")[0]
        per[top] += int(self_us) / 1000
        count[top] += 1
        total += int(self_us) / 1000
    rows = sorted(((k, v, count[k]) for k, v in per.items()), key=lambda r: -r[1])
    return rows, total


LAZY = {
    "boto3 (+ botocore, urllib3, s3transfer, jmespath, dateutil)": (
        "boto3",
        "botocore",
        "urllib3",
        "s3transfer",
        "jmespath",
        "dateutil",
    ),
    "jinja2 (+ markupsafe)": ("jinja2", "markupsafe"),
    "pydantic (+ pydantic_core)": ("pydantic", "pydantic_core", "annotated_types"),
    "watchfiles (+ anyio)": ("watchfiles", "anyio"),
    "prometheus_client": ("prometheus_client",),
    "structlog": ("structlog",),
    "ruamel.yaml": ("ruamel",),
}
REIMPORT = """
import importlib, sys, time
drop = set(sys.argv[2].split(",")) - {""}
for name in open(sys.argv[1]).read().split():
    if name.split(".")[0] in drop or name.split(".")[0] == "ampd" or name.startswith("__"):
        continue
    try:
        importlib.import_module(name)
    except Exception:
        pass
print(flush=True)
time.sleep(60)
"""


STDLIB = set(sys.stdlib_module_names)


def rss_mib_bare() -> float:
    return bare_python_rss()


def lazy_savings(env: dict[str, str]) -> list[tuple[str, float]]:
    """MiB saved if the daemon did not import a package family at start: RSS of a bare
    interpreter importing every non-ampd module ``ampd run`` imports, with and without
    the family."""
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; b = set(sys.modules); import ampd.cli, ampd.daemon.loop; "
            "print(' '.join(sorted(set(sys.modules) - b)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
        cwd=REPO,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(listing)
        f.flush()

        def rss(drop: tuple[str, ...]) -> float:
            p = subprocess.Popen(
                [sys.executable, "-c", REIMPORT, f.name, ",".join(drop)],
                stdout=subprocess.PIPE,
                env={**os.environ, **env},
            )
            try:
                assert p.stdout is not None
                p.stdout.readline()
                return rss_mib(p.pid)
            finally:
                p.kill()
                p.wait()

        full = rss(())
        own = bare_python_rss("import ampd.cli, ampd.daemon.loop", env) - full
        stdlib_only = rss(tuple({m.split(".")[0] for m in listing.split()} - STDLIB))
        out = [(label, full - rss(family)) for label, family in LAZY.items()]
        out.append(("ampd's own modules", own))
        out.append(
            (
                "the standard library modules alone (ssl, asyncio, email, ...)",
                stdlib_only - rss_mib_bare(),
            )
        )
        return out


def package_rss(base: float, env: dict[str, str]) -> list[tuple[str, float]]:
    out = [
        ("everything `ampd run` imports", bare_python_rss("import ampd.daemon.loop", env) - base)
    ]
    for pkg in PACKAGES:
        imports = "import boto3.session" if pkg == "boto3" else f"import {pkg}"
        out.append((pkg, bare_python_rss(imports, env) - base))
    return sorted(out, key=lambda r: -r[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_idle")
    parser.add_argument("--window", type=float, default=60.0, help="idle seconds measured")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as hidden:
        env = hide_dev_only(Path(hidden))
        idle = measure_idle(args.window, env)
        base = bare_python_rss()
        imports, import_ms = import_profile(env)
        rss_by_pkg = package_rss(base, env)
        savings = lazy_savings(env)
    cpu_ratio = idle["cpu_pct"] / max(idle["prom_cpu_pct"], 1e-9)
    cpu_ok = "met" if idle["cpu_pct"] < 0.1 else "**missed**"
    rss_ok = "met" if idle["rss"] < 50 else "**missed**"
    top = imports[:10]
    md = "\n".join(
        [
            "## Idle (`bench/bench_idle.py`)",
            "",
            f"`ampd run` on a local-only state file (agent-mode Prometheus, no AWS, 15 s "
            f"scrape interval), Synced and Healthy, then {idle['window']:.0f} s with nothing "
            f"to do ({idle['passes']} passes logged in all). Packages only the dev "
            f"virtualenv has ({', '.join(DEV_ONLY)}) are hidden, as in the .deb.",
            "",
            environment(),
            "",
            "| measure | ampd | baseline (same run) | ratio | goal |",
            "|---|---:|---:|---:|---|",
            f"| CPU % of one core | {idle['cpu_pct']:.3f} % | Prometheus it supervises: "
            f"{idle['prom_cpu_pct']:.3f} % | {cpu_ratio:.2f}x "
            f"| < 0.1 %: {cpu_ok} |",
            f"| CPU %, against watchfiles alone with the daemon's settings (debounce=50, "
            f"step=20) | {idle['cpu_pct']:.3f} % | {idle['watch_cpu_pct']:.3f} % "
            f"| {idle['cpu_pct'] / max(idle['watch_cpu_pct'], 1e-9):.2f}x | - |",
            f"| CPU %, against ampd.gateways.inotify alone (asyncio reader, no thread) "
            f"| {idle['cpu_pct']:.3f} % | {idle['inotify_cpu_pct']:.3f} % | - | - |",
            f"| resident memory (RSS) | {idle['rss']:.1f} MiB (peak {idle['hwm']:.1f}) "
            f"| bare `python3`: {base:.1f} MiB | {idle['rss'] / base:.1f}x "
            f"| < 50 MiB: {rss_ok} |",
            "",
            f"Where the memory goes: RSS each package adds to a bare interpreter on its own "
            f"(overlapping: botocore is part of boto3). Imports of one `ampd run` start: "
            f"{import_ms:.0f} ms in all (`-X importtime`, self time summed per top-level "
            f"package, top 10).",
            "",
            "| package | + RSS alone |",
            "|---|---:|",
            *[f"| {p} | {mib:.1f} MiB |" for p, mib in rss_by_pkg],
            "",
            "What each package family weighs in the daemon -- the saving if it were not "
            "imported at start (RSS of every non-ampd module `ampd run` imports, with and "
            "without the family; boto3 and jinja2 are needed only by passes, not to reach "
            "READY=1): " + "; ".join(f"{label}: {mib:.1f} MiB" for label, mib in savings) + ".",
            "",
            "| package | import time | modules |",
            "|---|---:|---:|",
            *[f"| {p} | {ms:.0f} ms | {n} |" for p, ms, n in top],
        ]
    )
    print(md)
    if not args.no_doc:
        write_section("idle", md)


if __name__ == "__main__":
    main()
