"""``ampd status``: read status.json and show it (human or JSON) with DESIGN's exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ampd.engine.status import STATUS_SCHEMA, exit_code

NOT_RUNNING = 1


def render_human(doc: dict[str, Any]) -> str:
    lines = [f"ampd: {doc['sync']} · {doc['health']}   ({doc['line']})"]
    spec = doc["spec"]
    valid = "valid" if spec["valid"] else "INVALID (running the last good spec)"
    version = f", version {spec['version']}" if spec.get("version") else ""
    lines.append(f"state file: {spec['file']} (generation {spec['generation']}{version}, {valid})")
    if spec.get("error"):
        lines += [f"  {line}" for line in spec["error"].splitlines()]
    ws = doc.get("workspace")
    if ws:
        lines.append(f"workspace: {ws['id']} ({ws['region']})")
    lines.append("")
    lines.append(f"{'KIND':<28} {'NAME':<44} {'SYNC':<10} {'HEALTH':<12} MESSAGE")
    for r in doc["resources"]:
        lines.append(
            f"{r['kind']:<28} {r['name']:<44} {r['sync']:<10} {r['health']:<12} {r['message']}"
        )
    lines.append("")
    lines.append("conditions:")
    for c in doc["conditions"]:
        why = f"{c['reason']}: {c['message']}" if c["message"] else c["reason"]
        lines.append(f"  {c['type']:<20} {c['status']:<8} {why}  (since {c['last_transition']})")
    lp = doc["last_pass"]
    lines.append("")
    lines.append(
        f"last pass: {lp['started_at']} took {lp['duration_ms']} ms; applied {lp['applied']}, "
        f"failed {lp['failed']}, drift {lp['drift']}"
    )
    for ch in lp["changes"]:
        mark = "ok" if ch["ok"] else f"FAILED {ch['message']}"
        lines.append(f"  {ch['action']:<8} {ch['key']}: {ch['reason']} [{mark}]")
    lines.append(f"next pass: {doc['next_pass_at']}")
    lines += _ingest_lines(doc.get("ingest"))
    for x in doc.get("listeners_beyond_loopback", []):
        lines.append(f"listening beyond loopback: {x['section']} on {x['listen']} (opted in)")
    if doc["errors"]:
        lines.append("last errors:")
        for e in doc["errors"][-5:]:
            lines.append(f"  {e['key']}: {e['message']}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _figure(fig: dict[str, Any] | None) -> str:
    if fig is None:
        return "none"
    dollars = fig.get("dollars_per_month")
    price = f", ${dollars:,.2f}/month" if dollars is not None else ""
    return f"{fig['series']} series, {fig['samples_per_second']:.1f} samples/s{price}"


def _ingest_lines(ingest: dict[str, Any] | None) -> list[str]:
    """The estimate next to what Prometheus measured, and the budget."""
    if not ingest:
        return []
    est, measured = ingest["estimate"], ingest["measured"]
    rate, active = measured.get("samples_per_second"), measured.get("active_series")
    lines = [
        f"ingest: estimated {_figure(est['total']['after'])} "
        f"({est['region']}, fleet of {est['fleet_size']})",
        "  measured: "
        + (f"{rate:.1f} samples/s" if rate is not None else "samples/s not measured yet")
        + (f", {active} active series" if active is not None else "")
        + (f" ({measured['error']})" if measured.get("error") else ""),
    ]
    for j in est["jobs"]:
        lines.append(f"  {j['job']}: {_figure(j['after'])}")
    if est.get("budget") is not None:
        lines.append(f"  budget: {est['budget']['reason']}")
    lines += [f"  {n}" for n in ingest.get("notes", [])]
    return lines


def status_command(path: Path, *, as_json: bool) -> int:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        print(f"ampd is not running (no {path})", file=sys.stderr)
        return NOT_RUNNING
    except PermissionError:
        print(f"cannot read {path}: permission denied (join the ampd group)", file=sys.stderr)
        return NOT_RUNNING
    except ValueError as e:
        print(f"{path} is unreadable: {e}", file=sys.stderr)
        return NOT_RUNNING
    if not isinstance(doc, dict) or doc.get("schema") != STATUS_SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        print(f"{path}: unknown status schema {schema!r}", file=sys.stderr)
        return NOT_RUNNING
    pid = doc.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        print(f"ampd is not running (pid {doc.get('pid')} in {path} is gone)", file=sys.stderr)
        return NOT_RUNNING
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_human(doc))
    return exit_code(doc)


def _alive(pid: int) -> bool:
    return pid > 0 and Path(f"/proc/{pid}").exists()
