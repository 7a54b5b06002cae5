"""``ampd bake``: prepare this host's ampd state for an image (a fleet AMI).

Drops what belongs to this instance, keeps what the whole fleet shares:

  dropped  instance id and last-applied hashes of generated files (in ampd.json),
           data/ (Prometheus WAL/TSDB, Grafana's database: samples carry this instance's
           labels), generated/ (prometheus.yml carries the instance labels), the local
           Grafana admin password, status.json; under source/, whatever is not the last
           good copy, and any session or token field of its index (an AppConfig Data API
           session belongs to one process on one host and must never be in an image)
  kept     workspace id, clientToken, the workspace's URLs, last-applied hashes of AWS
           resources, the cached last good copy of an ssm:/s3:///appconfig: state
           (source/: state.yml, source.json, files/, accepted.json)

It stops nothing: with ampd running (its own children would write again at once) it
refuses and says how to stop it. Idempotent: a second run finds nothing to drop.
An instance started from the image renders everything anew with its own labels, and an
appconfig: source starts its own configuration session.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ampd.core import Kind
from ampd.gateways.files import atomic_write, remove, remove_tree
from ampd.gateways.paths import Paths
from ampd.gateways.store import Store, StoredState

# what bake drops under the state directory, and why (for the report)
PER_INSTANCE = (
    ("data", "Prometheus WAL/TSDB and Grafana data (this instance's samples and labels)"),
    ("generated", "generated configuration (carries this instance's labels)"),
    ("grafana-secrets/admin-password", "this host's local Grafana admin password"),
    # where it was before Grafana ran as its own user (moved on the next start)
    ("secrets/grafana-admin-password", "this host's local Grafana admin password"),
)

# the last good copy of a remote state (ampd.source.docs): what bake keeps under source/
SOURCE_COPY = frozenset({"state.yml", "source.json", "files", "accepted.json"})
# a field of source.json that names a session or a token is this process's, never the image's
PER_SESSION_FIELD = re.compile(r"session|token", re.IGNORECASE)


@dataclass
class BakeReport:
    removed: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    kept: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "removed": [{"path": p, "why": why} for p, why in self.removed],
            "kept": self.kept,
        }


class DaemonRunning(Exception):
    def __init__(self, pid: int) -> None:
        self.pid = pid
        super().__init__(
            f"ampd is running (pid {pid}); stop it first (systemctl stop ampd), then bake"
        )


def running_pid(status_file: Path) -> int | None:
    """The pid status.json names, when that process is alive."""
    try:
        pid = int(json.loads(status_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
    return pid if pid != os.getpid() else None


def _count(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file()) if path.is_dir() else 1


def bake(paths: Paths, *, dry_run: bool = False) -> BakeReport:
    pid = running_pid(paths.status)
    if pid is not None:
        raise DaemonRunning(pid)
    report = BakeReport()
    for rel, why in PER_INSTANCE:
        target = paths.state_dir / rel
        if not target.exists():
            continue
        n = _count(target)
        shown = f"{target}/" if target.is_dir() else str(target)
        report.removed.append((shown, f"{why}; {n} file{'s' if n != 1 else ''}"))
        if not dry_run:
            if target.is_dir():
                remove_tree(target)
            else:
                remove(target)
    if paths.status.exists():
        report.removed.append((str(paths.status), "the last status of this host's daemon"))
        if not dry_run:
            remove(paths.status)
    _bake_store(Store(paths.store), report, dry_run=dry_run)
    _bake_source(paths.state_dir / "source", report, dry_run=dry_run)
    return report


def scratch_in_source(names: list[str]) -> list[str]:
    """The entries of source/ that are not the last good copy: a session file, a temporary
    file left by an interrupted write (``.name.tmp``), anything else."""
    return sorted(n for n in names if n not in SOURCE_COPY)


def without_session_fields(meta: object, at: str = "") -> tuple[object, list[str]]:
    """``meta`` (source.json, parsed) without any field whose name says session or token,
    at any depth, and the dotted names of the fields it dropped."""
    if isinstance(meta, dict):
        kept: dict[str, object] = {}
        dropped: list[str] = []
        for key, value in meta.items():
            name = f"{at}.{key}" if at else str(key)
            if PER_SESSION_FIELD.search(str(key)):
                dropped.append(name)
                continue
            kept[key], below = without_session_fields(value, name)
            dropped += below
        return kept, dropped
    if isinstance(meta, list):
        pairs = [without_session_fields(v, f"{at}[{i}]") for i, v in enumerate(meta)]
        return [v for v, _ in pairs], [d for _, ds in pairs for d in ds]
    return meta, []


def _bake_source(source: Path, report: BakeReport, *, dry_run: bool) -> None:
    """Keep the last good copy of a remote state; drop what is per session or scratch."""
    if not source.is_dir():
        return
    for name in scratch_in_source([p.name for p in source.iterdir()]):
        target = source / name
        report.removed.append((str(target), "not the last good copy (a session or scratch file)"))
        if dry_run:
            continue
        if target.is_dir():
            remove_tree(target)
        else:
            remove(target)
    files = source / "files"
    for tmp in sorted(files.glob(".*")) if files.is_dir() else []:
        report.removed.append((str(tmp), "a temporary file of an interrupted write"))
        if not dry_run:
            remove(tmp)
    meta_path = source / "source.json"
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError):
        meta = None
    if meta is not None:
        kept, dropped = without_session_fields(meta)
        if dropped:
            report.removed.append(
                (f"{meta_path}: {', '.join(dropped)}", "a state source session is per process")
            )
            if not dry_run:
                text = json.dumps(kept, indent=2, sort_keys=True) + "\n"
                atomic_write(meta_path, text.encode(), 0o600)
    if (source / "state.yml").exists():
        what = "the state"
        if isinstance(meta, dict) and "source" in meta:
            what = f"{meta['source']}, version {meta.get('version', '?')}"
        report.kept.append(f"{source}/ (last good copy of {what})")


def _bake_store(store: Store, report: BakeReport, *, dry_run: bool) -> None:
    if not store.path.exists():
        return
    state = store.load()
    files = sorted(k for k in state.applied if k.startswith(Kind.FILE.value + "/"))
    if state.instance_id is not None:
        report.removed.append(
            (f"{store.path}: instance_id {state.instance_id}", "this instance's identity")
        )
    if files:
        report.removed.append(
            (
                f"{store.path}: {len(files)} last-applied file hash(es)",
                "generated files are rendered anew with the new instance's labels",
            )
        )
    record = getattr(state, "workspace", None)  # the workspace's URLs (fleet-wide)
    ws = state.workspace_id or getattr(record, "id", None)
    if ws:
        report.kept.append(f"{store.path}: workspace {ws}")
    if state.client_token:
        report.kept.append(f"{store.path}: clientToken")
    aws = [k for k in state.applied if not k.startswith(Kind.FILE.value + "/")]
    if aws:
        report.kept.append(f"{store.path}: {len(aws)} AWS resource hash(es)")
    if dry_run or (state.instance_id is None and not files):
        return

    def upd(s: StoredState) -> None:
        s.instance_id = None
        s.applied = {k: v for k, v in s.applied.items() if not k.startswith(Kind.FILE.value + "/")}

    store.update(upd)


def bake_command(paths: Paths, *, as_json: bool, dry_run: bool) -> int:
    try:
        report = bake(paths, dry_run=dry_run)
    except DaemonRunning as e:
        sys.stderr.write(f"ampd: {e}\n")
        return 1
    if as_json:
        doc = {**report.as_json(), "dry_run": dry_run}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return 0
    verb = "would remove" if dry_run else "removed"
    if not report.removed:
        sys.stdout.write("nothing to remove: no per-instance state\n")
    for what, why in report.removed:
        sys.stdout.write(f"{verb} {what}  ({why})\n")
    for what in report.kept:
        sys.stdout.write(f"kept {what}\n")
    return 0
