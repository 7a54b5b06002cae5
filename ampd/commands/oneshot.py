"""One-shot commands: ``render``, ``plan``, ``apply --once``.

``plan`` and ``render`` go through the same code as the daemon and write nothing but
what they are asked for: ``plan`` nothing at all (it builds no ``Writers``: mypy keeps
every write out of its reach),
``render`` only the generated files, into ``--out`` (or the generated directory). What
they could not know they say on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ampd.commands.progress import Progress
from ampd.core import ConditionStatus, Health, Outcome, Plan
from ampd.engine.factfinder import FactFinder
from ampd.engine.ingesttext import ingest_text
from ampd.engine.plantext import plan_json, plan_text
from ampd.engine.reconcile import Reconciler
from ampd.engine.source import SpecSource
from ampd.engine.status import PassSummary
from ampd.gateways.files import atomic_write
from ampd.gateways.paths import Paths
from ampd.gateways.store import StoreView
from ampd.gateways.users import user_names
from ampd.ingest.side import IngestSide
from ampd.local.render.effective import render_context, render_files
from ampd.wiring import (
    Writers,
    imds,
    make_ingest,
    make_runtime,
    reconciler,
    runtime_name,
    self_command,
)

WAIT = 600.0  # default apply --wait: a new AMP workspace is ACTIVE within minutes
POLL_MIN = 0.5
POLL_MAX = 5.0


def _reconciler(
    source: SpecSource, paths: Paths, *, writes: bool, ingest: IngestSide | None = None
) -> Reconciler[Writers]:
    """``writes`` False (``ampd plan``): no Writers is built, so nothing can be applied:
    not to AWS, not to a process, not to a file, not to ampd.json."""
    runtime = make_runtime(source, lambda _name: None)
    # Under the supervisor runtime a one-shot command cannot own long-lived processes:
    # it reconciles AWS and files, and leaves processes to the daemon.
    return reconciler(
        source,
        paths,
        runtime,
        writes=writes,
        aws=True,
        instance_facts=imds.instance_labels,
        self_command=self_command(),
        manage_processes=runtime.name != "supervisor",
        ingest=ingest if ingest is not None else True,
    )


def render_command(source: SpecSource, paths: Paths, out: Path | None) -> int:
    loaded = source.load()
    finder = FactFinder(StoreView(paths.store), imds.instance_labels)
    facts = finder.gather(loaded.spec)
    for note in facts.notes:
        print(f"ampd render: {note}; the parts that need it are left out", file=sys.stderr)
    runtime = runtime_name(source, loaded.spec.runtime)
    ctx = render_context(
        loaded.spec,
        facts,
        source=source.name,
        state_dir=paths.state_dir,
        python=self_command(),
        process_users=user_names(runtime),
    )
    _, rendered = render_files(loaded.spec, ctx)
    target = out or paths.generated
    for r in rendered.values():
        atomic_write(target / r.name, r.data, r.mode)
        print(target / r.name)
    return 0


def _notes(summary: PassSummary) -> None:
    """What the pass could not read, and a remote state's version not taken (stderr)."""
    for what in summary.unobserved:
        print(f"ampd: could not read {what}", file=sys.stderr)
    for ctype in ("StateSourceHeld", "StateSourceValid", "StateSourceCached"):
        c = summary.conditions.get(ctype)  # a remote state's version not taken, and why
        bad = ConditionStatus.TRUE if ctype == "StateSourceHeld" else ConditionStatus.FALSE
        if c is not None and c.status == bad:
            print(f"ampd: {ctype}: {c.message or c.reason}", file=sys.stderr)


def _print(
    plan: Plan,
    outcomes: Sequence[Outcome],
    *,
    as_json: bool,
    color: bool,
    ingest: Mapping[str, Any] | None = None,
) -> None:
    """The plan, and after its changes the ingest estimate (JSON: its ``ingest``)."""
    if as_json:
        doc = plan_json(plan, outcomes)
        if ingest is not None:
            doc["ingest"] = ingest["estimate"]
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    text = plan_text(plan, color=color, outcomes=outcomes)
    if ingest is not None:  # after the changes, before the closing "Plan: ..." line
        head, _, last = text.rstrip("\n").rpartition("\n")
        table = ingest_text(ingest["estimate"], list(ingest.get("notes", [])))
        text = f"{head}\n{table}\n{last}\n" if head else f"{last}\n{table}"
    sys.stdout.write(text)


def over_budget(ingest: Mapping[str, Any] | None) -> str | None:
    """The budget's reason when the estimate is over it."""
    budget = ingest["estimate"].get("budget") if ingest is not None else None
    return str(budget["reason"]) if budget is not None and budget["over"] else None


def ha_refused(ingest: Mapping[str, Any] | None) -> str | None:
    """The HA guard's reason when it refuses (ampd.ingest.ha)."""
    ha = ingest["estimate"].get("ha") if ingest is not None else None
    return str(ha["reason"]) if ha is not None and ha["refused"] else None


def plan_command(
    state: SpecSource,
    paths: Paths,
    *,
    as_json: bool,
    color: str,
    fleet_size: int | None = None,
) -> int:
    """0 in sync, 2 changes pending, the estimate over the budget or the HA guard
    refusing (the reason on stderr), 1 error: an invalid file, or something that could
    not be read (AWS unreachable, denied, throttled) — a plan that did not see
    everything is no plan."""
    use_color = color == "always" or (color == "auto" and sys.stdout.isatty())
    runtime = runtime_name(state)
    ingest = make_ingest(paths, runtime, fleet_size)
    rec = _reconciler(state, paths, writes=False, ingest=ingest)
    try:
        summary = rec.run_pass()
    finally:
        rec.close()
    if summary.spec_error:
        print(summary.spec_error, file=sys.stderr)
        return 1
    _notes(summary)
    _print(summary.plan, (), as_json=as_json, color=use_color, ingest=summary.ingest)
    if summary.failed or summary.unobserved:
        return 1
    refused = ha_refused(summary.ingest)
    if refused is not None:
        print(f"ampd: refused: {refused}", file=sys.stderr)
    over = over_budget(summary.ingest)
    if over is not None:
        print(f"ampd: over budget: {over}", file=sys.stderr)
    if refused is not None or over is not None:
        return 2
    return 0 if summary.plan.in_sync else 2


def _estimate_first(
    state: SpecSource, paths: Paths, side: IngestSide
) -> tuple[str | None, str | None]:
    """Before anything is applied: the estimate against the budget and the HA guard (the
    reason of each that refuses). Reads only; the side keeps its dry scrapes for the
    pass that follows."""
    spec = state.load().spec
    if spec.prometheus is None:
        return None, None
    facts = FactFinder(StoreView(paths.store), imds.instance_labels).gather(spec)
    plan = side.plan(spec, facts, side.observe(spec, facts))
    over = plan.budget.reason if plan.budget is not None and plan.budget.over else None
    return over, plan.ha.reason if plan.ha is not None and plan.ha.refused else None


def in_progress(summary: PassSummary) -> list[tuple[str, str]]:
    """What AWS is still creating or updating for this pass (a workspace CREATING, a
    configuration UPDATING, children waiting for their workspace): key and message."""
    return [
        (str(s.key), s.message or s.health.value)
        for s in summary.statuses
        if s.key.kind.is_aws and s.health is Health.PROGRESSING
    ]


def apply_command(
    state: SpecSource,
    paths: Paths,
    *,
    as_json: bool,
    wait: float = WAIT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress_out: TextIO | None = None,
    allow_over_budget: bool = False,
) -> int:
    """0 converged, 2 partly, 1 nothing could be done.

    AWS finishes some changes after it answers (a new workspace is CREATING for a minute
    or more; its rule groups, alert manager and configuration can only be written once it
    is ACTIVE). ``apply`` passes again while AWS reports such work in progress, for up to
    ``wait`` seconds, showing what it waits for on stderr (``ampd.commands.progress``);
    what is still in progress then makes it exit 2, naming it: a converged exit is claimed
    only for what was seen converged.

    An estimate over the budget is refused (1, nothing applied, the reason named) unless
    ``allow_over_budget`` (``--over-budget``); so is a fleet the HA guard refuses (until
    the state says HA is intended: ``cost.ha_clusters``)."""
    ingest = make_ingest(paths, runtime_name(state))
    over, ha = _estimate_first(state, paths, ingest)
    if ha is not None:
        print(f"ampd: refused, nothing applied: {ha}", file=sys.stderr)
        return 1
    if over is not None and not allow_over_budget:
        print(
            f"ampd: over budget, nothing applied: {over} (--over-budget applies it)",
            file=sys.stderr,
        )
        return 1
    rec = _reconciler(state, paths, writes=True, ingest=ingest)
    out = progress_out if progress_out is not None else sys.stderr
    return _apply_passes(rec, as_json=as_json, wait=wait, clock=clock, sleep=sleep, out=out)


def _apply_passes(
    rec: Reconciler[Writers],
    *,
    as_json: bool,
    wait: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    out: TextIO,
) -> int:
    """The passes of ``apply``, while AWS reports work in progress (see apply_command)."""
    progress = Progress(out, live=out.isatty(), clock=clock)
    deadline = clock() + wait
    plan, outcomes = Plan(), list[Outcome]()
    ingest_doc: Mapping[str, Any] | None = None
    try:
        while True:
            summary = rec.run_pass()
            if summary.spec_error:
                print(summary.spec_error, file=sys.stderr)
                return 1
            _notes(summary)
            plan, outcomes = plan + summary.plan, [*outcomes, *summary.outcomes]
            ingest_doc = summary.ingest or ingest_doc
            if not as_json:
                _print(summary.plan, summary.outcomes, as_json=False, color=False)
            pending = in_progress(summary)
            failed = summary.failed or summary.unobserved
            left = deadline - clock()
            if failed or not pending or left <= 0:
                break
            progress.update(pending)
            sleep(min(left, max(POLL_MIN, _until(summary.next_pass_at) or POLL_MAX), POLL_MAX))
    finally:
        progress.done()
        rec.close()
    if as_json:
        _print(plan, outcomes, as_json=True, color=False, ingest=ingest_doc)
    applied = any(o.ok for o in outcomes)
    if failed:
        return 2 if applied else 1
    if pending:
        for key, message in pending:
            print(f"ampd: still in progress after {wait:g} s: {key}: {message}", file=sys.stderr)
        return 2
    return 0


def _until(at: float | None) -> float | None:
    return None if at is None else at - time.time()
