"""The AWS side's apply: carry out the plan value, wave 1 then wave 2, with the writers
it is handed, and read back what it wrote.

Every ampd.json write of the AWS side happens here, through ``writers.store``: the client
token before CreateWorkspace (a crash between request and answer retries with the same
token, and AWS answers with the same workspace), the workspace record, and the
fingerprints of what was applied or seen in sync. A wave 2 planned before the workspace
existed is planned again once wave 1 has made it (its id was ``(known after apply)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import structlog

from ampd.aws.act.rolecheck import RoleCheckSchedule
from ampd.aws.act.writes import Target, apply_change, create_workspace, update_workspace
from ampd.aws.gateway.client import AwsReader, AwsUnreachable
from ampd.aws.gateway.writer import AwsWriter
from ampd.aws.model import TRANSITIONAL, Desired, Live, Unreadable, fingerprint
from ampd.aws.observe import ObservedCache, read_children, workspace_live
from ampd.aws.plan.desired import client_token
from ampd.aws.report.conditions import in_sync_keys
from ampd.aws.side.observing import observe_children, read_retries, unreachable_delay
from ampd.aws.side.planning import AMP_CHILDREN, plan_wave2
from ampd.aws.side.reporting import snapshot
from ampd.aws.side.runner import ChangeRunner, Ran
from ampd.aws.side.sessions import Sessions
from ampd.aws.side.values import AwsDone, AwsPlan, AwsSeen, Wave
from ampd.aws.side.writers import AwsWriters
from ampd.core import Action, Change, Kind, Outcome, ResourceKey, WorkspaceRecord
from ampd.engine.retry import RetryBook
from ampd.gateways.store import Store, StoredState

__all__ = ["Applier", "persist"]

log = structlog.get_logger()


class _Ledger:
    """One apply's working state: made and changed in this module only, and returned
    as a frozen :class:`AwsDone`."""

    def __init__(self, seen: AwsSeen, plan: AwsPlan, writers: AwsWriters) -> None:
        assert seen.reader is not None and seen.identity is not None and seen.region is not None
        self.seen, self.plan, self.spec = seen, plan, seen.spec
        self.region, self.identity = seen.region, seen.identity
        self.reader: AwsReader = seen.reader
        self.writer: AwsWriter = writers.aws.writer(seen.reader)
        self.store: Store = writers.store
        self.stored = seen.stored.copy()
        self.outcomes: list[Outcome] = []
        self.read_back: dict[ResourceKey, Live | Unreadable | None] = {}
        self.workspace: Live | None = seen.live_workspace
        self.wave2: Wave | None = None
        self.retries: list[float] = []

    @property
    def manage(self) -> bool:
        return self.spec.aws_or_default.mode == "manage"

    def persist(self) -> None:
        persist(self.store, self.stored)

    def record(self, ran: Ran) -> bool:
        """Keep one change's outcome, and what ampd.json must remember of it."""
        self.outcomes.append(ran.outcome)
        key = ran.outcome.change.key
        if ran.gone:
            self.read_back[key] = None
        if not ran.outcome.ok:
            return False
        if ran.outcome.change.action is Action.DELETE:
            self.stored.applied.pop(str(key), None)
            self.read_back[key] = None
        elif ran.fingerprint is not None:
            self.stored.applied[str(key)] = ran.fingerprint
        self.persist()
        return True

    def remember_workspace(self, live: Live) -> None:
        ws_id = str(live.details["id"])
        record = WorkspaceRecord.at(
            ws_id,
            self.region,
            data_plane_url=self.spec.aws_or_default.data_plane_url,
            arn=str(live.details.get("arn") or "") or None,
            alias=live.fields.get("alias"),
        )
        if self.stored.workspace_id != ws_id or self.stored.workspace != record:
            self.stored.workspace_id = ws_id
            self.stored.workspace = record
            self.persist()

    def target(self) -> Target:
        ws = self.workspace
        return Target(
            str(ws.details["id"]) if ws is not None else "",
            str(ws.details.get("arn") or "") if ws is not None else "",
            self.spec.stack,
        )

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.stored.applied.pop(key, None)

    def done(self, **kw: Any) -> AwsDone:
        return AwsDone(
            outcomes=tuple(self.outcomes),
            workspace=self.workspace,
            wave2=self.wave2,
            read_back=dict(self.read_back),
            record=self.stored.workspace,
            stored=self.stored.copy(),
            read_retries=tuple(self.retries),
            **kw,
        )


class Applier:
    """Carries out AWS plans; holds nothing of a pass (the side's memory is passed in)."""

    def __init__(
        self,
        book: RetryBook,
        cache: ObservedCache,
        sessions: Sessions,
        role_check: RoleCheckSchedule,
    ) -> None:
        self._book = book
        self._cache = cache
        self._sessions = sessions
        self._role_check = role_check
        self._runner = ChangeRunner(book, cache)

    def apply(self, plan: AwsPlan, seen: AwsSeen, writers: AwsWriters) -> AwsDone:
        if seen.failure is not None or seen.reader is None:
            return AwsDone(stored=seen.stored)
        a = _Ledger(seen, plan, writers)
        try:
            a.forget(plan.forget)
            lookup = seen.workspace.lookup
            if lookup is not None and isinstance(lookup.live, Live):
                a.remember_workspace(lookup.live)
            self._wave1(a)
            self._wave2(a)
            self._remember_in_sync(a)
        except AwsUnreachable as e:
            self._cache.clear()
            endpoint = seen.spec.aws_or_default.endpoint_url
            self._sessions.forget_credentials(a.region, endpoint, e)
            return a.done(failure=e, retry_after=unreachable_delay(self._book, e))
        role = None
        if not a.manage:
            # an observe host's role must not be able to write the control plane: checked
            # once per identity and workspace, not at boot, never from a plan
            ws_id = str(a.workspace.details["id"]) if a.workspace is not None else None
            who = a.identity.arn or a.identity.account
            role = self._role_check.condition(a.reader, who, ws_id)
        return a.done(role_check=role)

    # -- wave 1: the workspace ----------------------------------------------------------

    def _wave1(self, a: _Ledger) -> None:
        if not a.manage:
            return
        wave = a.plan.wave1
        for change in wave.plan.changes:
            if a.spec.workspace is None:  # the section was removed: delete ours
                effect = partial(apply_change, a.writer, change, a.target())
            else:
                effect = partial(self._workspace_change, a, change)
            a.record(self._runner.run(change, wave.desired.get(change.key), effect))

    def _workspace_change(self, a: _Ledger, change: Change) -> None:
        ws = a.spec.workspace
        lookup = a.seen.workspace.lookup
        assert ws is not None and lookup is not None
        if change.action is Action.CREATE:
            token = client_token(
                a.spec.stack, ws.alias or "", a.region, a.identity.account, lookup.deleted_id or ""
            )
            a.stored.client_token = token
            a.persist()  # before the call: see the module's docstring
            tags = dict(change.after["tags"]) if change.after else {}
            described = create_workspace(a.writer, a.reader, ws.alias, tags, token, ws.kms_key_arn)
            live = workspace_live(change.key, described)
            a.workspace = live
            a.read_back[change.key] = live
            a.remember_workspace(live)
            self._cache.workspace = live
            self._cache.workspace_read = live.status not in TRANSITIONAL
            return
        assert a.workspace is not None
        a.workspace = update_workspace(a.writer, a.workspace, change)
        self._cache.workspace = a.workspace

    # -- wave 2: what hangs off the workspace, and IAM ---------------------------------

    def _wave2(self, a: _Ledger) -> None:
        ws_live = a.workspace if a.spec.workspace is not None else None
        lookup = a.seen.workspace.lookup
        created = lookup is not None and lookup.live is None and ws_live is not None
        wave = a.plan.wave2
        if created:
            assert ws_live is not None
            seen = a.seen
            children = observe_children(
                a.reader,
                a.spec,
                a.region,
                a.identity,
                ws_live,
                seen.files,
                a.stored.applied,
                self._cache,
            )
            wave, forget = plan_wave2(
                a.spec, a.region, a.identity, ws_live, seen.files, children, a.stored
            )
            a.forget(forget)
            a.wave2 = wave
            a.retries += read_retries(self._book, children.observed)
        active = ws_live is not None and ws_live.status == "ACTIVE"
        if a.manage:
            self._run_wave2(a, wave, ws_live)
        self._confirm_writes(a, wave.desired, ws_live if active else None)

    def _run_wave2(self, a: _Ledger, wave: Wave, ws_live: Live | None) -> None:
        failed: set[ResourceKey] = {o.change.key for o in a.outcomes if not o.ok}
        for change in wave.plan.changes:
            blocker = blocked_by(a.spec.stack, change.key, failed, wave.desired)
            if blocker is not None:
                a.outcomes.append(Outcome(change, ok=False, message=f"waiting for {blocker}"))
                failed.add(change.key)
                continue
            if change.key.kind in AMP_CHILDREN and ws_live is None:
                continue
            effect = partial(apply_change, a.writer, change, a.target())
            if not a.record(self._runner.run(change, wave.desired.get(change.key), effect)):
                failed.add(change.key)

    def _confirm_writes(
        self, a: _Ledger, desired: Mapping[ResourceKey, Desired], ws_live: Live | None
    ) -> None:
        """AMP answers a configuration write before it validates it (CREATING, UPDATING,
        then ACTIVE or CREATION_FAILED/UPDATE_FAILED with a reason): read back what this
        pass wrote, so a rejected rule file is reported now, not at the next resync."""
        written = [
            desired[o.change.key]
            for o in a.outcomes
            if o.ok
            and o.change.action is not Action.DELETE
            and o.change.key.kind in AMP_CHILDREN
            and o.change.key in desired
        ]
        if not written or ws_live is None:
            return
        try:
            confirmed, _ = read_children(
                a.reader,
                stack=a.spec.stack,
                workspace=ws_live,
                desired=written,
                previously_applied=(),
                cache=self._cache,
            )
        except AwsUnreachable:
            return  # written; the next pass reads it
        a.read_back.update({k: v for k, v in confirmed.items() if isinstance(v, Live)})

    def _remember_in_sync(self, a: _Ledger) -> None:
        """Resources seen exactly as desired: their inputs are what ampd applied."""
        snap = snapshot(a.seen, a.plan, a.done())
        for key in in_sync_keys(snap):
            a.stored.applied[str(key)] = fingerprint(snap.desired[key])
        a.persist()


def blocked_by(
    stack: str, key: ResourceKey, failed: set[ResourceKey], desired: Mapping[ResourceKey, Desired]
) -> str | None:
    """The failed change this one waits for: a child for its workspace, a policy for its
    role, an instance profile for the roles it holds."""
    ws_key = ResourceKey(Kind.WORKSPACE, stack)
    if key.kind in AMP_CHILDREN and ws_key in failed:
        return str(ws_key)
    if key.kind is Kind.IAM_POLICY:
        role = ResourceKey(Kind.IAM_ROLE, key.name.partition("/")[0])
        if role in failed:
            return str(role)
    if key.kind is Kind.INSTANCE_PROFILE:
        d = desired.get(key)
        for name in (d.fields.get("roles") or []) if d else []:
            role = ResourceKey(Kind.IAM_ROLE, name)
            if role in failed:
                return str(role)
    return None


def persist(store: Store, mine: StoredState) -> None:
    """Write the AWS side's part of ampd.json, leaving the local side's part alone."""

    def aws_part(s: StoredState) -> tuple[Any, ...]:
        applied = {k: v for k, v in s.applied.items() if k.startswith("aws.")}
        return (s.workspace_id, s.client_token, applied, s.workspace)

    def merge(s: StoredState) -> None:
        s.workspace_id = mine.workspace_id
        s.client_token = mine.client_token
        s.workspace = mine.workspace
        for k in [k for k in s.applied if k.startswith("aws.")]:
            del s.applied[k]
        s.applied.update({k: v for k, v in mine.applied.items() if k.startswith("aws.")})

    with store.lock:
        if aws_part(store.load()) != aws_part(mine):
            store.update(merge)
