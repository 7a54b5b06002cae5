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


def plan_command(state: Path, paths: Paths, *, as_json: bool, color: str) -> int:
    rec = _reconciler(state, paths)
    summary = rec.run_pass(apply=False)
    rec.close()
    if summary.spec_error:
        print(summary.spec_error, file=sys.stderr)
        return 1
    use_color = color == "always" or (color == "auto" and sys.stdout.isatty())
    if as_json:
        print(json.dumps(plan_json(summary.plan), indent=2, sort_keys=True))
    else:
        sys.stdout.write(plan_text(summary.plan, color=use_color))
    aws_errors = [o for o in summary.outcomes if not o.ok]
    if aws_errors:
        return 1
    return 0 if summary.plan.in_sync else 2


def apply_command(state: Path, paths: Paths, *, as_json: bool) -> int:
    rec = _reconciler(state, paths)
    summary = rec.run_pass(apply=True)
    rec.close()
    if summary.spec_error:
        print(summary.spec_error, file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(plan_json(summary.plan, summary.outcomes), indent=2, sort_keys=True))
    else:
        sys.stdout.write(plan_text(summary.plan, color=False, outcomes=summary.outcomes))
    if summary.failed:
        return 2 if summary.applied else 1
    return 0
