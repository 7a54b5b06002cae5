"""Apply local changes: write generated files (validated, atomically), drive processes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from ampd.core import Action, Change, Command, Kind, Outcome
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways import grafana, promtool
from ampd.gateways.files import atomic_write, remove
from ampd.gateways.http import request
from ampd.gateways.runtime import Runtime
from ampd.plan.local import PROCESS_INPUTS
from ampd.render.files import Rendered

log = structlog.get_logger()


def command_from_rendered(r: Rendered) -> Command:
    data = json.loads(r.data)
    name = r.name.removesuffix(".cmd.json")
    return Command(name, tuple(data["argv"]), dict(data.get("env", {})))


def write_file(
    generated: Path, r: Rendered, promtool_path: str | None, *, agent: bool = False
) -> None:
    target = generated / r.name
    if r.name == "prometheus.yml":
        candidate = generated / ".prometheus.yml.candidate"
        atomic_write(candidate, r.data, r.mode)
        try:
            res = promtool.check_config(candidate, promtool_path, agent=agent)
        finally:
            remove(candidate)
        if not res.ok:
            raise PermanentError(f"generated prometheus.yml rejected by promtool: {res.output}")
    if r.name == "grafana/grafana.ini":  # it reads the admin password through $__file{}
        grafana.ensure_admin_password(generated.parent)
    atomic_write(target, r.data, r.mode)


def reload_process(name: str, runtime: Runtime, listen: str | None, command: Command) -> None:
    """Reload and check that it took: Prometheus answers POST /-/reload with 200 or 500."""
    if name == "prometheus" and listen:
        res = request(f"http://{listen}/-/reload", method="POST", timeout=10.0)
        if res.status == 200:
            return
        if res.status == 0:
            raise TemporaryError(f"prometheus did not answer the reload: {res.body}", delay=2)
        raise PermanentError(f"prometheus refused the new configuration: {res.body.strip()}")
    if name == "grafana" and listen:
        # Provisioning reloads need Grafana's server admin: the one ampd provisioned.
        state_dir = grafana.state_dir_from_argv(command.argv)
        password = grafana.admin_password(state_dir) if state_dir is not None else None
        for what in ("datasources", "dashboards"):
            status = grafana.reload_provisioning(listen, what, password)
            if status in (401, 403):  # the admin password was changed by hand: restart instead
                log.warning("grafana.reload.unauthorized", status=status, fallback="restart")
                runtime.restart(command)
                return
            if status != 200:
                raise TemporaryError(f"grafana {what} reload answered {status}", delay=5)
        return
    runtime.reload(name)


def apply_local(
    changes: Sequence[Change],
    rendered: Mapping[str, Rendered],
    generated: Path,
    runtime: Runtime,
    commands: Mapping[str, Command],
    listens: Mapping[str, str],
    promtool_path: str | None,
) -> list[Outcome]:
    """Files first (so processes see their new inputs), then processes."""
    outcomes: list[Outcome] = []
    failed_files: set[str] = set()
    cmd = rendered.get("prometheus.cmd.json")
    agent = cmd is not None and b"--enable-feature=agent" in cmd.data
    ordered = sorted(changes, key=lambda c: 0 if c.key.kind == Kind.FILE else 1)
    for change in ordered:
        name = change.key.name
        try:
            if change.key.kind == Kind.FILE:
                if change.action == Action.DELETE:
                    remove(generated / name)
                else:
                    write_file(generated, rendered[name], promtool_path, agent=agent)
            elif change.key.kind == Kind.PROCESS:
                if _blocked_by(name, failed_files):
                    outcomes.append(Outcome(change, False, "inputs failed to write; not touched"))
                    continue
                if change.action == Action.CREATE:
                    runtime.start(commands[name])
                elif change.action == Action.DELETE:
                    runtime.stop(name)
                elif change.action == Action.RESTART:
                    runtime.restart(commands[name])
                elif change.action == Action.RELOAD:
                    reload_process(name, runtime, listens.get(name), commands[name])
            else:
                continue
        except TemporaryError as e:
            if change.key.kind == Kind.FILE:
                failed_files.add(name)
            outcomes.append(Outcome(change, False, str(e), retry_after=e.delay))
            log.warning(
                "change.failed", key=str(change.key), action=change.action.value, error=str(e)
            )
            continue
        except (AmpdError, OSError) as e:
            if change.key.kind == Kind.FILE:
                failed_files.add(name)
            outcomes.append(Outcome(change, False, str(e), permanent=True))
            log.error(
                "change.failed", key=str(change.key), action=change.action.value, error=str(e)
            )
            continue
        outcomes.append(Outcome(change, True))
        log.info(
            "change.applied", key=str(change.key), action=change.action.value, reason=change.reason
        )
    return outcomes


def _blocked_by(process: str, failed_files: set[str]) -> bool:
    return any(f in failed_files for f in PROCESS_INPUTS.get(process, {}))
