"""Apply local changes: write generated files (validated, atomically), drive processes.

A new prometheus.yml is checked before it is swapped in: by ``promtool check config`` when
Prometheus will (re)start on it, and by the running Prometheus itself when it only reloads
-- a reload (SIGHUP) that fails applies nothing (Prometheus keeps the configuration it runs), and
ampd then puts the previous file back. That keeps a Go process per check off the path of
an edit. Either way a rejected file is reported and not retried until its content changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import assert_never

import structlog

from ampd.core import Action, Change, Command, Kind, Outcome, ProcessState, ResourceKey
from ampd.engine.actions import by_action
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways import grafana, progress, promreload, promtool
from ampd.gateways.files import FileWriter, read_bytes
from ampd.gateways.http import owned_get, request
from ampd.gateways.runtime import ProcessControl, RuntimeView
from ampd.gateways.users import process_user
from ampd.local.plan.changes import PROCESS_INPUTS
from ampd.local.render.encoding import Rendered

log = structlog.get_logger()


def write_file(
    files: FileWriter,
    generated: Path,
    r: Rendered,
    promtool_path: str | None,
    *,
    agent: bool = False,
    reload_checks: bool = False,
) -> None:
    """Write one generated file through ``files``. ``reload_checks``: a running Prometheus
    reloads this prometheus.yml next and is its check (see the module docstring)."""
    target = generated / r.name
    if r.name == "prometheus.yml" and not reload_checks:
        candidate = generated / ".prometheus.yml.candidate"
        files.write(candidate, r.data, r.mode)
        try:
            res = promtool.check_config(candidate, promtool_path, agent=agent)
        finally:
            files.remove(candidate)
        if not res.ok:
            raise PermanentError(f"generated prometheus.yml rejected by promtool: {res.output}")
    if r.name == "grafana/grafana.ini":  # it reads the admin password through $__file{}
        grafana.ensure_admin_password(generated.parent, files)
    files.write(target, r.data, r.mode)


def reload_process(
    name: str, runtime: ProcessControl, listen: str | None, command: Command
) -> None:
    """Reload and check that it took. Prometheus: SIGHUP through the runtime (no HTTP
    endpoint may stop or reload it), the verdict from its own /metrics (promreload)."""
    if name == "prometheus" and listen:
        owner = process_user("prometheus", runtime.name).uid  # believe only Prometheus' own
        promreload.confirm_reload(
            listen,
            lambda: runtime.reload(name),
            lambda: runtime.observe(name).last_stderr,
            fetch=owned_get(owner, promreload.READ_TIMEOUT),
        )
        return
    if name == "grafana" and listen:
        # Provisioning reloads need Grafana's server admin: the one ampd provisioned.
        state_dir = grafana.state_dir_from_argv(command.argv)
        password = grafana.admin_password(state_dir) if state_dir is not None else None
        grafana_uid = process_user("grafana", runtime.name).uid  # only it gets the password
        for what in ("datasources", "dashboards"):
            status = grafana.reload_provisioning(listen, what, password, owner=grafana_uid)
            if status in (401, 403):  # the admin password was changed by hand: restart instead
                log.warning("grafana.reload.unauthorized", status=status, fallback="restart")
                runtime.restart(command)
                return
            if status != 200:
                raise TemporaryError(f"grafana {what} reload answered {status}", delay=5)
        return
    runtime.reload(name)


START_WAIT = 5.0  # Prometheus is ready in ~0.1 s; a slower start is Progressing instead
READY_POLL = 0.005
EXITED_POLL = 0.1  # under systemd, a look at the process is a systemctl call


def _wait_ready(name: str, listen: str | None, runtime: RuntimeView) -> None:
    """After (re)starting Prometheus, wait (bounded) until it is ready, so that the same
    pass reports it Healthy: a restarted Prometheus is Healthy again as fast as it
    starts, not one recheck later. Not ready in time is no failure: the pass reports it
    Progressing and looks again."""
    if name != "prometheus" or not listen:
        return
    deadline = time.monotonic() + START_WAIT
    look_at = time.monotonic() + EXITED_POLL
    owner = process_user(name, runtime.name).uid  # a squatter on the port is asked nothing
    while time.monotonic() < deadline:
        if request(f"http://{listen}/-/ready", timeout=0.5, owner=owner).status == 200:
            return
        progress.mark()
        if time.monotonic() >= look_at:  # one that exited will not become ready
            if not runtime.observe(name).running:
                return
            look_at = time.monotonic() + EXITED_POLL
        time.sleep(READY_POLL)
    log.info("process.not_ready_yet", process=name, waited_s=START_WAIT)


def settle_restarted(
    observed: Mapping[str, ProcessState],
    listens: Mapping[str, str],
    runtime: RuntimeView,
    now: float,
) -> bool:
    """Under systemd the unit restarts a Prometheus that died (RestartSec=100ms), not the
    pass: the pass its exit queued waits for it as for one it restarted itself (bounded),
    so that it reports it Healthy, not Progressing until a recheck. True: it waited."""
    st = observed.get("prometheus")
    if runtime.name != "systemd" or st is None or not st.running or st.restarts == 0:
        return False
    if st.started_at is not None and now - st.started_at < START_WAIT:
        _wait_ready("prometheus", listens.get("prometheus"), runtime)
        return True
    return False


@dataclass(frozen=True)
class LocalTargets:
    """What local changes act on: the rendered files, where they go, and the writers they
    go through (the processes' control, the file writer): nothing else is written."""

    rendered: Mapping[str, Rendered]
    generated: Path
    processes: ProcessControl
    commands: Mapping[str, Command]
    listens: Mapping[str, str]
    promtool_path: str | None
    files: FileWriter
    # prometheus.yml as it was before this pass wrote it: put back if the reload rejects it
    previous: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def agent(self) -> bool:
        cmd = self.rendered.get("prometheus.cmd.json")
        return cmd is not None and b"--enable-feature=agent" in cmd.data


def _file_change(change: Change, t: LocalTargets, reload_checks: bool = False) -> None:
    name = change.key.name

    def write() -> None:
        if reload_checks and name == PROM_YML:
            t.previous[name] = read_bytes(t.generated / name)
        write_file(
            t.files,
            t.generated,
            t.rendered[name],
            t.promtool_path,
            agent=t.agent,
            reload_checks=reload_checks and name == PROM_YML,
        )

    by_action(change, create=write, update=write, delete=lambda: t.files.remove(t.generated / name))


def _process_change(change: Change, t: LocalTargets) -> None:
    # a process is started, stopped, restarted or reloaded; it is never "updated"
    name = change.key.name

    def start() -> None:
        t.processes.start(t.commands[name])
        _wait_ready(name, t.listens.get(name), t.processes)

    def restart() -> None:
        t.processes.restart(t.commands[name])
        _wait_ready(name, t.listens.get(name), t.processes)

    by_action(
        change,
        create=start,
        delete=lambda: t.processes.stop(name),
        restart=restart,
        reload=lambda: reload_process(name, t.processes, t.listens.get(name), t.commands[name]),
    )


PROM_YML = "prometheus.yml"
PROM = ResourceKey(Kind.PROCESS, "prometheus")


def reload_is_the_check(changes: Sequence[Change]) -> bool:
    """The running Prometheus is the check of a new prometheus.yml: it is updated, and
    Prometheus is only reloaded (not started, restarted or stopped) in the same pass."""
    prom = {c.action for c in changes if c.key == PROM}
    updated = any(
        c.key == ResourceKey(Kind.FILE, PROM_YML) and c.action is Action.UPDATE for c in changes
    )
    return updated and prom == {Action.RELOAD}


def apply_change(change: Change, t: LocalTargets, reload_checks: bool = False) -> None:
    """One local change, through the gateways; raises what the gateway raised."""
    kind = change.key.kind
    match kind:
        case Kind.FILE:
            _file_change(change, t, reload_checks)
        case Kind.PROCESS:
            _process_change(change, t)
        case (
            Kind.WORKSPACE
            | Kind.WORKSPACE_CONFIGURATION
            | Kind.LOGGING
            | Kind.QUERY_LOGGING
            | Kind.RESOURCE_POLICY
            | Kind.RULE_GROUP
            | Kind.ALERTMANAGER
            | Kind.IAM_ROLE
            | Kind.IAM_POLICY
            | Kind.INSTANCE_PROFILE
        ):
            raise PermanentError(f"{change.key} is not a local resource")
        case _ as never:
            assert_never(never)


def apply_local(
    changes: Sequence[Change], t: LocalTargets, not_written: Iterable[str] = ()
) -> list[Outcome]:
    """Files first (so processes see their new inputs), then processes. Every failure
    becomes an outcome, whatever was raised: one resource never stops the others."""
    outcomes: list[Outcome] = []
    failed_files: set[str] = set(not_written)  # a process never reloads on an unwritten input
    ordered = sorted(changes, key=lambda c: 0 if c.key.kind == Kind.FILE else 1)
    checked_by_reload = reload_is_the_check(changes)
    for change in ordered:
        progress.mark()  # the watchdog: each change is a step (ampd.gateways.progress)
        name = change.key.name
        if change.key.kind == Kind.PROCESS and _blocked_by(name, failed_files):
            outcomes.append(Outcome(change, False, "inputs failed to write; not touched"))
            continue
        try:
            apply_change(change, t, checked_by_reload)
        except TemporaryError as e:
            outcome = Outcome(change, False, str(e), retry_after=e.delay)
        except (AmpdError, OSError) as e:
            outcome = Outcome(change, False, str(e), permanent=True)
        except Exception as e:  # a gateway bug must not end the pass; it is reported
            log.exception("change.crashed", key=str(change.key), action=change.action.value)
            outcome = Outcome(change, False, f"unexpected error: {e!r}", retry_after=5.0)
        else:
            outcomes.append(Outcome(change, True))
            log.info(
                "change.applied",
                key=str(change.key),
                action=change.action.value,
                reason=change.reason,
            )
            continue
        if change.key.kind == Kind.FILE:
            failed_files.add(name)
        if checked_by_reload and change.key == PROM:  # the new file stays only if it took
            outcomes = _put_back(outcomes, t, outcome)
        outcomes.append(outcome)
        level = log.warning if outcome.retry_after is not None else log.error
        level(
            "change.failed", key=str(change.key), action=change.action.value, error=outcome.message
        )
    return outcomes


def _put_back(outcomes: list[Outcome], t: LocalTargets, failed: Outcome) -> list[Outcome]:
    """The reload of a new prometheus.yml failed, and Prometheus runs the old one: put the
    old file back (so a restart starts what runs now) and report the file as failed, for
    good if Prometheus rejected it, else to be tried again."""
    target = t.generated / PROM_YML
    old = t.previous.get(PROM_YML)
    if old is not None:
        t.files.write(target, old, t.rendered[PROM_YML].mode)
        with contextlib.suppress(AmpdError, OSError):  # clears "last reload failed"
            reload_process(
                "prometheus", t.processes, t.listens.get("prometheus"), t.commands["prometheus"]
            )
    log.warning("change.rolled_back", key=f"file/{PROM_YML}", restored=old is not None)
    what = "rejected by" if failed.permanent else "not loaded by"
    message = f"generated prometheus.yml {what} the running Prometheus: {failed.message}"
    return [
        replace(failed, change=o.change, message=message)
        if o.change.key == ResourceKey(Kind.FILE, PROM_YML)
        else o
        for o in outcomes
    ]


def _blocked_by(process: str, failed_files: set[str]) -> bool:
    return any(f in failed_files for f in PROCESS_INPUTS.get(process, {}))
