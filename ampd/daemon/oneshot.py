"""One-shot commands: ``render``, ``plan``, ``apply --once``.

``plan`` and ``render`` go through the same code as the daemon and write nothing but
what they are asked for: ``plan`` nothing at all (its store is read-only by type),
``render`` only the generated files, into ``--out`` (or the generated directory). What
they could not know they say on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ampd.core import ConditionStatus
from ampd.daemon.reconcile import Reconciler
from ampd.daemon.wiring import imds, make_aws, make_runtime, runtime_name, self_command
from ampd.gateways.files import atomic_write
from ampd.gateways.paths import Paths
from ampd.gateways.store import StoreView
from ampd.gateways.users import user_names
from ampd.observe.specfile import load_and_check
from ampd.report.plantext import plan_json, plan_text
from ampd.report.status import PassSummary
from ampd.sides.facts import FactFinder, render_context
from ampd.sides.local import render_files


def _reconciler(state: Path, paths: Paths, *, apply: bool) -> Reconciler:
    runtime = make_runtime(state, lambda _name: None)
    # Under the supervisor runtime a one-shot command cannot own long-lived processes:
    # it reconciles AWS and files, and leaves processes to the daemon.
    rec = Reconciler(
        state,
        paths,
        runtime,
        instance_facts=imds.instance_labels,
        self_command=self_command(),
        manage_processes=runtime.name != "supervisor",
        read_only=not apply,
    )
    rec.aws = make_aws(rec.store, rec.book)
    return rec


def render_command(state: Path, paths: Paths, out: Path | None) -> int:
    loaded = load_and_check(state)
    finder = FactFinder(StoreView(paths.store), imds.instance_labels)
    facts = finder.gather(loaded.spec)
    for note in facts.notes:
        print(f"ampd render: {note}; the parts that need it are left out", file=sys.stderr)
    runtime = runtime_name(state, loaded.spec.runtime)
    ctx = render_context(
        loaded.spec,
        facts,
        source=state,
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


def _one_pass(
    state: Path, paths: Paths, *, apply: bool, as_json: bool, color: bool
) -> PassSummary | None:
    """One pass, its plan (and outcomes) printed; None when the state file is invalid."""
    rec = _reconciler(state, paths, apply=apply)
    try:
        summary = rec.run_pass(apply=apply)
    finally:
        rec.close()
    if summary.spec_error:
        print(summary.spec_error, file=sys.stderr)
        return None
    for what in summary.unobserved:
        print(f"ampd: could not read {what}", file=sys.stderr)
    for ctype in ("StateSourceHeld", "StateSourceValid", "StateSourceCached"):
        c = summary.conditions.get(ctype)  # a remote state's version not taken, and why
        bad = ConditionStatus.TRUE if ctype == "StateSourceHeld" else ConditionStatus.FALSE
        if c is not None and c.status == bad:
            print(f"ampd: {ctype}: {c.message or c.reason}", file=sys.stderr)
    outcomes = summary.outcomes if apply else ()
    if as_json:
        print(json.dumps(plan_json(summary.plan, outcomes), indent=2, sort_keys=True))
    else:
        sys.stdout.write(plan_text(summary.plan, color=color, outcomes=outcomes))
    return summary


def plan_command(state: Path, paths: Paths, *, as_json: bool, color: str) -> int:
    """0 in sync, 2 changes pending, 1 error: an invalid file, or something that could
    not be read (AWS unreachable, denied, throttled) — a plan that did not see
    everything is no plan."""
    use_color = color == "always" or (color == "auto" and sys.stdout.isatty())
    summary = _one_pass(state, paths, apply=False, as_json=as_json, color=use_color)
    if summary is None or summary.failed or summary.unobserved:
        return 1
    return 0 if summary.plan.in_sync else 2


def apply_command(state: Path, paths: Paths, *, as_json: bool) -> int:
    """0 converged, 2 partly, 1 nothing could be done."""
    summary = _one_pass(state, paths, apply=True, as_json=as_json, color=False)
    if summary is None:
        return 1
    if summary.failed or summary.unobserved:
        return 2 if summary.applied else 1
    return 0
