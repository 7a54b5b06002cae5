"""The AWS side: one level-based pass over the workspace, its children and IAM.

::

    workspace:  find (id, stored id, alias + this stack's tags) -> plan -> create/update
    children:   configuration, logging, rule groups, alert manager, IAM -> plan -> act

Every failure becomes an :class:`~ampd.core.Outcome`; one failing resource never stops
unrelated ones. A network failure ends the pass at once (``AwsReachable=False``) and the
last known workspace is still reported, so the local pipeline keeps running. When to
try again is the retry book's to say. With ``apply=False`` nothing is written: not AWS,
not ampd.json (the side holds only a :class:`StoreView` for reading then).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import structlog

from ampd.aws.act.rolecheck import DEFERRED_BY, RoleCheckSchedule
from ampd.aws.act.writes import Target, apply_change, create_workspace, update_workspace
from ampd.aws.gateway.client import AwsGateway, AwsUnreachable
from ampd.aws.gateway.client import configured_region as _configured_region
from ampd.aws.model import (
    TRANSITIONAL,
    Desired,
    Live,
    Unreadable,
    parse_key,
    policy_from_spec,
    workspace_key,
)
from ampd.aws.observe import (
    ObservedCache,
    WorkspaceLookup,
    find_workspace,
    read_children,
    read_spec_files,
    workspace_gone,
    workspace_live,
)
from ampd.aws.plan.desired import (
    client_token,
    desired_iam,
    desired_workspace,
    desired_workspace_children,
    workspace_arn,
)
from ampd.aws.plan.resources import plan_resources
from ampd.aws.side.run import (
    AMP_CHILDREN,
    REACHABILITY,
    WORKSPACE_POLL,
    AwsPass,
    ChangeRunner,
    confirm_writes,
    pass_result,
    persist,
    spec_fingerprint,
    unreachable_result,
)
from ampd.aws.side.sessions import GatewayFactory, Sessions
from ampd.core import (
    Action,
    Change,
    Condition,
    Kind,
    Outcome,
    ResourceKey,
    SideResult,
    WorkspaceRecord,
)
from ampd.engine.facts import Facts
from ampd.engine.retry import RetryBook
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways import imds
from ampd.gateways.store import Store, StoreView
from ampd.spec.models import StateSpec, duration_seconds

__all__ = ["WORKSPACE_POLL", "AwsSide", "GatewayFactory", "default_region"]

log = structlog.get_logger()


def default_region() -> str | None:
    """Region for ``aws.region: auto``: instance metadata first, then botocore's config."""
    return imds.region() or _configured_region()


class AwsSide:
    """One AWS pass at a time; synchronous (the daemon runs it in a worker thread)."""

    def __init__(
        self,
        gateway_factory: GatewayFactory,
        store: StoreView,
        book: RetryBook | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        region_resolver: Callable[[], str | None] = default_region,
        wall_clock: Callable[[], float] = time.time,
        role_check_delay: float = DEFERRED_BY,
    ) -> None:
        self._store = store
        self._book = book or RetryBook()
        self._clock = clock
        self._wall = wall_clock
        self._region_resolver = region_resolver
        self._auto_region: str | None = None
        self._sessions = Sessions(gateway_factory)
        self._cache = ObservedCache()
        self._runner = ChangeRunner(self._book, self._cache)
        self._role_check = RoleCheckSchedule(clock, role_check_delay)
        self._lock = threading.Lock()

    # -- the facade ---------------------------------------------------------------------

    def reconcile(
        self, spec: StateSpec, facts: Facts | None = None, *, apply: bool, force_read: bool = False
    ) -> SideResult:
        if spec.workspace is None and spec.iam is None:
            return SideResult()
        writer = self._store if apply and isinstance(self._store, Store) else None
        with self._lock:
            started = self._clock()
            result = self._reconcile(spec, facts, writer, force_read=force_read)
            log.debug(
                "aws.pass",
                apply=writer is not None,
                changes=len(result.plan.changes),
                drift=len(result.plan.drift),
                failed=sum(1 for o in result.outcomes if not o.ok),
                workspace=result.workspace.id if result.workspace else None,
                requeue_after=result.requeue_after,
                duration_ms=round((self._clock() - started) * 1000, 1),
            )
            return result

    # -- one pass -----------------------------------------------------------------------

    def _region(self, spec: StateSpec, facts: Facts | None) -> str | None:
        region = spec.aws_or_default.region
        if region != "auto":
            return region
        if facts is not None and facts.instance_labels.get("region"):
            return facts.instance_labels["region"]
        if self._auto_region is None:
            self._auto_region = self._region_resolver()
        return self._auto_region

    def _reconcile(
        self, spec: StateSpec, facts: Facts | None, writer: Store | None, *, force_read: bool
    ) -> SideResult:
        aws = spec.aws_or_default
        stored = self._store.load()
        region = self._region(spec, facts)
        if region is None:
            err = PermanentError(
                "aws.region is auto but there is no instance metadata and no AWS_REGION: "
                "set aws.region"
            )
            return unreachable_result(self._book, spec, stored, None, err)
        if facts is not None and facts.spec_files is not None:
            files = dict(facts.spec_files)
        else:
            files = read_spec_files(spec)
        fp = spec_fingerprint(spec, files)
        now = self._clock()
        taken = self._cache.taken_at
        expired = taken is None or now - taken >= duration_seconds(aws.resync)
        if force_read or expired or self._cache.fingerprint != fp:
            self._cache.clear()
            self._cache.fingerprint = fp
            self._cache.taken_at = now
        if force_read:
            self._book.forget_permanent()
        try:
            gw = self._sessions.gateway(region, aws.endpoint_url)
            identity = self._sessions.identity(gw, region, spec, facts)
        except AmpdError as e:
            self._sessions.forget_credentials(region, aws.endpoint_url, e)
            return unreachable_result(self._book, spec, stored, region, e)
        p = AwsPass(spec, region, identity, stored, writer)
        try:
            self._workspace_phase(gw, p)
            self._children_phase(gw, p, files)
        except AwsUnreachable as e:
            self._cache.clear()
            self._sessions.forget_credentials(region, aws.endpoint_url, e)
            return unreachable_result(self._book, spec, self._store.load(), region, e)
        self._book.succeeded(REACHABILITY)
        result = pass_result(p, self._book, self._wall())
        if spec.aws_or_default.mode == "observe" and writer is not None:
            result = replace(result, conditions=(*result.conditions, self._observe_check(gw, p)))
        return result

    def _observe_check(self, gw: AwsGateway, p: AwsPass) -> Condition:
        """An observe host's role must not be able to write the control plane: checked
        once per identity and workspace, not at boot (two calls), never from a plan."""
        ws_id = str(p.workspace.details["id"]) if p.workspace is not None else None
        return self._role_check.condition(gw, p.identity.arn or p.identity.account, ws_id)

    # -- phase 1: the workspace ---------------------------------------------------------

    def _workspace_phase(self, gw: AwsGateway, p: AwsPass) -> None:
        spec = p.spec
        key = workspace_key(spec)
        if spec.workspace is None:
            self._workspace_orphan(gw, p)
            return
        desired = desired_workspace(spec)
        assert desired is not None
        p.desired[key] = desired
        cached = self._cache.workspace
        if self._cache.workspace_read and (cached is None or cached.status not in TRANSITIONAL):
            lookup = WorkspaceLookup(cached)
        else:
            try:
                lookup = find_workspace(gw, spec, p.stored.workspace_id)
            except AwsUnreachable:
                raise
            except (PermanentError, TemporaryError) as e:
                lookup = WorkspaceLookup(Unreadable.of(key, e))
            if not isinstance(lookup.live, Unreadable):
                self._cache.workspace = lookup.live
                self._cache.workspace_read = lookup.live is None or (
                    lookup.live.status not in TRANSITIONAL
                )
        p.observed[key] = lookup.live
        plan = plan_resources([desired], p.observed, p.stored.applied, policy_from_spec(spec))
        p.plan = p.plan + plan
        p.workspace = lookup.live if isinstance(lookup.live, Live) else None
        if p.workspace is not None:
            self._remember_workspace(p, p.workspace)
        if p.apply:
            for change in plan.changes:
                self._runner.run(p, change, lambda c: self._apply_workspace(gw, p, c, lookup))

    def _workspace_orphan(self, gw: AwsGateway, p: AwsPass) -> None:
        """The workspace section was removed: report (retain) or delete what is ours."""
        key = workspace_key(p.spec)
        if str(key) not in p.stored.applied or not p.stored.workspace_id:
            return
        try:
            w = gw.describe_workspace(p.stored.workspace_id)
        except AwsUnreachable:
            raise
        except AmpdError:
            return
        if workspace_gone(w):  # gone, or AWS is deleting it: nothing left to do
            p.stored.applied.pop(str(key), None)
            return
        assert w is not None
        live = workspace_live(key, w)
        p.workspace = live
        plan = plan_resources([], {}, p.stored.applied, policy_from_spec(p.spec), [live])
        p.plan = p.plan + plan
        if p.apply:
            for change in plan.changes:
                self._runner.run(p, change, lambda c: apply_change(gw, c, self._target(p)))

    def _apply_workspace(
        self, gw: AwsGateway, p: AwsPass, change: Change, lookup: WorkspaceLookup
    ) -> None:
        ws = p.spec.workspace
        assert ws is not None and p.writer is not None
        if change.action is Action.CREATE:
            token = client_token(
                p.spec.stack, ws.alias or "", p.region, p.identity.account, lookup.deleted_id or ""
            )
            # Persisted before the call: a crash between request and response retries with
            # the same token, and AWS answers with the same workspace.
            p.stored.client_token = token
            persist(p)
            tags = dict(change.after["tags"]) if change.after else {}
            live = workspace_live(
                change.key, create_workspace(gw, ws.alias, tags, token, ws.kms_key_arn)
            )
            p.workspace = live
            p.observed[change.key] = live
            self._remember_workspace(p, live)
            self._cache.workspace = live
            self._cache.workspace_read = live.status not in TRANSITIONAL
            return
        assert p.workspace is not None
        p.workspace = update_workspace(gw, p.workspace, change)
        self._cache.workspace = p.workspace

    def _remember_workspace(self, p: AwsPass, live: Live) -> None:
        ws_id = str(live.details["id"])
        record = WorkspaceRecord.at(
            ws_id,
            p.region,
            data_plane_url=p.spec.aws_or_default.data_plane_url,
            arn=str(live.details.get("arn") or "") or None,
            alias=live.fields.get("alias"),
        )
        if p.stored.workspace_id != ws_id or p.stored.workspace != record:
            p.stored.workspace_id = ws_id
            p.stored.workspace = record
            persist(p)

    def _target(self, p: AwsPass) -> Target:
        ws = p.workspace
        return Target(
            str(ws.details["id"]) if ws is not None else "",
            str(ws.details.get("arn") or "") if ws is not None else "",
            p.spec.stack,
        )

    # -- phase 2: everything that hangs off the workspace, and IAM ---------------------

    def _children_phase(
        self, gw: AwsGateway, p: AwsPass, files: Mapping[str, bytes | None]
    ) -> None:
        spec = p.spec
        ws_live = p.workspace if p.spec.workspace is not None else None
        active = ws_live is not None and ws_live.status == "ACTIVE"
        ws_arn = (
            str(ws_live.details["arn"])
            if ws_live is not None
            else workspace_arn(p.region, p.identity.account, None)
        )
        children = desired_workspace_children(spec, files)
        iam = desired_iam(spec, account=p.identity.account, ws_arn=ws_arn)
        p.errors.update(children.errors)
        to_read: list[Desired] = list(iam.resources)
        ws_key = workspace_key(spec)
        ws_observed = p.observed.get(ws_key)
        for d in children.resources:
            p.desired[d.key] = d
            if ws_live is None:
                if isinstance(ws_observed, Unreadable) or spec.workspace is None:
                    p.waiting[d.key] = "the workspace could not be read"
                else:
                    p.observed[d.key] = None  # no workspace yet: everything is to be created
            elif not active:
                p.waiting[d.key] = f"waiting for the workspace ({ws_live.status})"
            else:
                to_read.append(d)
        for d in iam.resources:
            p.desired[d.key] = d
        applied_keys = [k for k in (parse_key(s) for s in p.stored.applied) if k is not None]
        if not active:
            applied_keys = [k for k in applied_keys if k.kind not in AMP_CHILDREN]
        observed, orphans = read_children(
            gw,
            stack=spec.stack,
            workspace=ws_live if active else None,
            desired=to_read,
            previously_applied=applied_keys,
            cache=self._cache,
        )
        p.observed.update(observed)
        for key, value in observed.items():
            if value is None and key not in p.desired:
                p.stored.applied.pop(str(key), None)  # gone: nothing left to remember
        planned = [d for d in p.desired.values() if d.key != ws_key and d.key not in p.waiting]
        plan = plan_resources(
            planned, p.observed, p.stored.applied, policy_from_spec(spec), orphans
        )
        p.plan = p.plan + plan
        if not p.apply:
            return
        failed: set[ResourceKey] = {o.change.key for o in p.outcomes if not o.ok}
        for change in plan.changes:
            blocker = self._blocked_by(change.key, failed, p)
            if blocker is not None:
                p.outcomes.append(Outcome(change, ok=False, message=f"waiting for {blocker}"))
                failed.add(change.key)
                continue
            if change.key.kind in AMP_CHILDREN and ws_live is None:
                continue
            if not self._runner.run(p, change, lambda c: apply_change(gw, c, self._target(p))):
                failed.add(change.key)
        confirm_writes(gw, p, ws_live if active else None, self._cache)

    def _blocked_by(self, key: ResourceKey, failed: set[ResourceKey], p: AwsPass) -> str | None:
        if key.kind in AMP_CHILDREN and workspace_key(p.spec) in failed:
            return str(workspace_key(p.spec))
        if key.kind is Kind.IAM_POLICY:
            role = ResourceKey(Kind.IAM_ROLE, key.name.partition("/")[0])
            if role in failed:
                return str(role)
        if key.kind is Kind.INSTANCE_PROFILE:
            d = p.desired.get(key)
            for name in (d.fields.get("roles") or []) if d else []:
                role = ResourceKey(Kind.IAM_ROLE, name)
                if role in failed:
                    return str(role)
        return None
