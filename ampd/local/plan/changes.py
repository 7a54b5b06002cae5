"""Plan the local side: generated files and managed processes. Pure.

Files: rendered bytes vs what is on disk vs what ampd last wrote. A difference from a new
desired state is a change; a file that no longer holds what ampd wrote is drift
(corrected under ``drift: correct``, only reported under ``drift: report``).

Processes: start what should run, stop what should not, restart when the command
changed, reload when only its configuration changed; a crashed process is started again
once its backoff has passed.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from ampd.core import (
    Action,
    Change,
    Command,
    FieldDiff,
    Kind,
    Plan,
    ProcessState,
    ResourceKey,
    Skipped,
)

# Which generated files each process reads, and what a change to them needs.
PROCESS_INPUTS: Mapping[str, Mapping[str, Action]] = {
    "prometheus": {"prometheus.cmd.json": Action.RESTART, "prometheus.yml": Action.RELOAD},
    "sigv4-proxy": {"sigv4-proxy.cmd.json": Action.RESTART, "proxy.json": Action.RESTART},
    "grafana": {
        "grafana.cmd.json": Action.RESTART,
        "grafana/grafana.ini": Action.RESTART,
        "grafana/provisioning/datasources/ampd.yaml": Action.RELOAD,
        "grafana/provisioning/dashboards/ampd.yaml": Action.RELOAD,
        "grafana/dashboards/ampd-host.json": Action.RELOAD,
        "grafana/dashboards/ampd.json": Action.RELOAD,
    },
}


UNFINISHED = "inputs written by a pass that did not finish"


def file_key(name: str) -> ResourceKey:
    return ResourceKey(Kind.FILE, name)


def process_key(name: str) -> ResourceKey:
    return ResourceKey(Kind.PROCESS, name)


@dataclass(frozen=True)
class DesiredFile:
    name: str
    sha256: str


def plan_files(
    desired: Sequence[DesiredFile],
    on_disk: Mapping[str, str | None],
    applied: Mapping[str, str],
    *,
    correct_drift: bool,
) -> Plan:
    changes: list[Change] = []
    drift: list[Change] = []
    wanted = {f.name for f in desired}
    for f in desired:
        key = file_key(f.name)
        live = on_disk.get(f.name)
        last = applied.get(str(key))
        if live == f.sha256:
            continue
        diffs = (FieldDiff("sha256", live, f.sha256),)
        if live is None:
            action, reason = Action.CREATE, "missing"
        else:
            action, reason = Action.UPDATE, "desired content changed"
        hand_edited = last is not None and live != last
        if hand_edited:
            reason = "deleted by hand" if live is None else "edited by hand"
            change = Change(key, action, {"sha256": live}, {"sha256": f.sha256}, diffs, reason)
            drift.append(change)
            if correct_drift:
                changes.append(change)
        else:
            changes.append(
                Change(key, action, {"sha256": live}, {"sha256": f.sha256}, diffs, reason)
            )
    for key_str in sorted(applied):
        kind, _, name = key_str.partition("/")
        if kind != Kind.FILE.value or name in wanted or on_disk.get(name) is None:
            continue
        changes.append(
            Change(
                file_key(name),
                Action.DELETE,
                {"sha256": on_disk[name]},
                None,
                reason="no longer generated",
            )
        )
    return Plan(tuple(changes), tuple(drift))


def unrecorded_files(
    desired: Sequence[DesiredFile], on_disk: Mapping[str, str | None], applied: Mapping[str, str]
) -> tuple[str, ...]:
    """Files that already hold their desired bytes while ampd.json records other bytes (or
    none): a pass wrote them and ended (kill -9, power loss) before it recorded them, and
    maybe before it reloaded or restarted the process that reads them. Not a file change,
    but their processes are reloaded or restarted once more, and the record completed."""
    return tuple(
        sorted(
            f.name
            for f in desired
            if on_disk.get(f.name) == f.sha256 and applied.get(str(file_key(f.name))) != f.sha256
        )
    )


def plan_processes(
    desired: Mapping[str, Command],
    observed: Mapping[str, ProcessState],
    file_changes: Sequence[Change],
    *,
    now: float,
    unrecorded: Collection[str] = (),
) -> tuple[Plan, float | None]:
    """Process changes, and the wall-clock time a backoff asks to be woken at (if any).
    ``unrecorded``: inputs written by a pass that did not finish (see unrecorded_files)."""
    # Long on purpose: the process decision table, per process, in one place.
    changes: list[Change] = []
    skipped: list[Skipped] = []
    wake: float | None = None
    touched = {c.key.name for c in file_changes}
    for name in sorted(set(desired) | set(observed)):
        key = process_key(name)
        want = desired.get(name)
        state = observed.get(name)
        running = state is not None and state.running
        if want is None:
            if running:
                changes.append(
                    Change(
                        key,
                        Action.DELETE,
                        {"running": True},
                        {"running": False},
                        reason="disabled in the state file",
                    )
                )
            continue
        if not running:
            if state is not None and state.backoff_until is not None and now < state.backoff_until:
                wake = state.backoff_until if wake is None else min(wake, state.backoff_until)
                skipped.append(
                    Skipped(
                        key,
                        f"crashed (exit {state.last_exit}); restart after "
                        f"backoff of {state.backoff_until - now:.1f}s",
                    )
                )
                continue
            reason = "not running"
            if state is not None and state.last_exit is not None:
                reason = f"exited with {state.last_exit}; starting again"
            changes.append(
                Change(key, Action.CREATE, {"running": False}, {"running": True}, reason=reason)
            )
            continue
        assert state is not None
        needed = {PROCESS_INPUTS.get(name, {}).get(f) for f in touched} - {None}
        unfinished = {PROCESS_INPUTS.get(name, {}).get(f) for f in unrecorded} - {None}
        if state.command is not None and tuple(state.command.argv) != tuple(want.argv):
            changes.append(
                Change(
                    key,
                    Action.RESTART,
                    {"argv": list(state.command.argv)},
                    {"argv": list(want.argv)},
                    (FieldDiff("argv", list(state.command.argv), list(want.argv)),),
                    "command changed",
                )
            )
        elif Action.RESTART in needed:
            changes.append(Change(key, Action.RESTART, reason="settings changed"))
        elif Action.RELOAD in needed:
            changes.append(Change(key, Action.RELOAD, reason="configuration changed"))
        elif unfinished:
            action = Action.RESTART if Action.RESTART in unfinished else Action.RELOAD
            changes.append(Change(key, action, reason=UNFINISHED))
    return Plan(tuple(changes), (), tuple(skipped)), wake


def external_labels(prometheus_yml: bytes | None) -> dict[str, str] | None:
    """``global.external_labels`` of a generated prometheus.yml (None: no file, or none
    there). These are the labels every sample this host ships carries (instance_id, ...)."""
    if prometheus_yml is None:
        return None
    labels = _labels(prometheus_yml)
    return dict(labels) if labels is not None else None


@functools.lru_cache(maxsize=8)  # a pass asks for the file on disk and the new one
def _labels(prometheus_yml: bytes) -> tuple[tuple[str, str], ...] | None:
    from ruamel.yaml import YAML  # noqa: PLC0415 (only plans that touch prometheus.yml)
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        doc = YAML(typ="safe", pure=True).load(_global_section(prometheus_yml))
    except YAMLError:
        return None
    labels = (doc.get("global") or {}).get("external_labels") if isinstance(doc, dict) else None
    return tuple((str(k), str(v)) for k, v in labels.items()) if isinstance(labels, dict) else None


def _global_section(data: bytes) -> bytes:
    """The top-level ``global:`` block in block style (how ampd writes it), so that a pass
    parses a few lines, not every scrape job; the whole text when there is no such block."""
    out: list[bytes] = []
    for line in data.splitlines(keepends=True):
        top = line[:1] not in (b" ", b"\t", b"#", b"\n", b"\r", b"")
        if top and out:
            break
        if out or (top and line.rstrip() == b"global:"):
            out.append(line)
    return b"".join(out) or data


def with_label_diff(plan: Plan, before: bytes | None, after: bytes | None) -> Plan:
    """prometheus.yml's change shows which instance labels change, beside its sha256: a
    host started from an image sees its own instance_id where the baking host's was."""
    if before == after:
        return plan
    old, new = external_labels(before) or {}, external_labels(after) or {}
    changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    if not changed:
        return plan
    key = file_key("prometheus.yml")
    extra = FieldDiff(
        "external_labels",
        {k: old.get(k) for k in changed},  # only the labels that change, so they show
        {k: new.get(k) for k in changed},
    )

    def add(changes: tuple[Change, ...]) -> tuple[Change, ...]:
        return tuple(replace(c, diffs=(*c.diffs, extra)) if c.key == key else c for c in changes)

    return Plan(add(plan.changes), add(plan.drift), plan.skipped)
