"""One-shot commands: ``render``, ``plan``, ``apply --once``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ampd.daemon.reconcile import Reconciler
from ampd.daemon.wiring import imds, make_aws, make_runtime, self_command
from ampd.gateways.files import atomic_write
from ampd.gateways.paths import Paths
from ampd.observe.specfile import load_and_check
from ampd.render.context import RenderContext
from ampd.render.files import render_all
from ampd.report.plantext import plan_json, plan_text
from ampd.report.status import PassSummary


def _reconciler(state: Path, paths: Paths) -> Reconciler:
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
    )
    rec.aws = make_aws(rec.store)
    return rec


def render_command(state: Path, paths: Paths, out: Path | None) -> int:
    loaded = load_and_check(state)
    rec = Reconciler(
        state,
        paths,
        make_runtime(state, lambda _n: None),
        instance_facts=None,
        self_command=self_command(),
        manage_processes=False,
    )
    target = out or paths.generated
    ctx = RenderContext(
        source=str(state),
        state_dir=str(paths.state_dir),
        workspace=rec.facts.workspace if loaded.spec.workspace is not None else None,
        prometheus_can_sign=rec._prometheus_can_sign(loaded.spec),
        python=self_command(),
    )
    spec = rec.effective_spec(loaded.spec, ctx)
    for r in render_all(spec, ctx):
        atomic_write(target / r.name, r.data, r.mode)
        print(target / r.name)
    return 0


def _one_pass(
    state: Path, paths: Paths, *, apply: bool, as_json: bool, color: bool
) -> PassSummary | None:
    """One pass, its plan (and outcomes) printed; None when the state file is invalid."""
    rec = _reconciler(state, paths)
    try:
        summary = rec.run_pass(apply=apply)
    finally:
        rec.close()
    if summary.spec_error:
        print(summary.spec_error, file=sys.stderr)
        return None
    outcomes = summary.outcomes if apply else ()
    if as_json:
        print(json.dumps(plan_json(summary.plan, outcomes), indent=2, sort_keys=True))
    else:
        sys.stdout.write(plan_text(summary.plan, color=color, outcomes=outcomes))
    return summary


def plan_command(state: Path, paths: Paths, *, as_json: bool, color: str) -> int:
    """0 in sync, 2 changes pending, 1 error (an invalid file, or AWS could not be read)."""
    use_color = color == "always" or (color == "auto" and sys.stdout.isatty())
    summary = _one_pass(state, paths, apply=False, as_json=as_json, color=use_color)
    if summary is None or summary.failed:
        return 1
    return 0 if summary.plan.in_sync else 2


def apply_command(state: Path, paths: Paths, *, as_json: bool) -> int:
    """0 converged, 2 partly, 1 nothing could be done."""
    summary = _one_pass(state, paths, apply=True, as_json=as_json, color=False)
    if summary is None:
        return 1
    if summary.failed:
        return 2 if summary.applied else 1
    return 0
