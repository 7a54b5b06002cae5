"""AWS act: execute ``Plan.changes`` through the gateway, and the reconciler facade.

:class:`AwsReconciler` runs one level-based pass for the AWS side::

    workspace:  find (id, stored id, alias + this stack's tags) -> plan -> create/update
    children:   configuration, logging, rule groups, alert manager, IAM -> plan -> act

Every failure becomes an :class:`~ampd.core.Outcome`; one failing resource never stops
unrelated ones. A network failure ends the pass at once (``AwsReachable=False``) and the
last known workspace is still reported, so the local pipeline keeps running. Backoff for
temporary errors (capped, jittered) and the "not retried until the desired state
changes" rule for permanent ones are decided here, in one place.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from ampd.core import (
    Action,
    Change,
    Condition,
    ConditionStatus,
    Health,
    Kind,
    Outcome,
    Plan,
    ResourceKey,
    ResourceStatus,
    SyncStatus,
)
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways import imds
from ampd.gateways.aws import AwsGateway, AwsUnreachable, Identity
from ampd.gateways.aws import configured_region as _configured_region
from ampd.gateways.store import Store, StoredState
from ampd.observe.aws import (
    ObservedCache,
    WorkspaceLookup,
    find_workspace,
    read_children,
    read_spec_files,
    workspace_live,
)
from ampd.plan.aws import (
    FAILED,
    TRANSITIONAL,
    Desired,
    Live,
    Unreadable,
    client_token,
    desired_iam,
    desired_workspace,
    desired_workspace_children,
    fingerprint,
    parse_key,
    plan_resources,
    policy_from_spec,
    workspace_arn,
    workspace_key,
)
from ampd.spec.models import StateSpec, duration_seconds

__all__ = [
    "AwsReconciler",
    "AwsResult",
    "GatewayFactory",
    "WorkspaceInfo",
    "backoff",
    "default_region",
]

log = structlog.get_logger()

GatewayFactory = Callable[[str, str | None], AwsGateway]

WORKSPACE_POLL = 5.0  # CREATING/UPDATING: look again soon
BACKOFF_CAP = 300.0
_AMP_CHILDREN = frozenset(
    {Kind.WORKSPACE_CONFIGURATION, Kind.LOGGING, Kind.RULE_GROUP, Kind.ALERTMANAGER}
)


def backoff(
    base: float, attempt: int, *, cap: float = BACKOFF_CAP, rng: random.Random | None = None
) -> float:
    """``base * 2**attempt`` capped at ``cap``, with jitter in [50 %, 100 %]."""
    r = rng or random
    delay = min(cap, base * (2 ** min(attempt, 16)))
    return float(delay * (0.5 + r.random() / 2))


def default_region() -> str | None:
    """Region for ``aws.region: auto``: instance metadata first, then botocore's config."""
    return imds.region() or _configured_region()


@dataclass(frozen=True)
class WorkspaceInfo:
    id: str
    arn: str
    alias: str | None
    region: str
    status: str
    prometheus_endpoint: str | None
    remote_write_url: str
    query_url: str


@dataclass(frozen=True)
class AwsResult:
    plan: Plan = field(default_factory=Plan)
    outcomes: list[Outcome] = field(default_factory=list)
    statuses: list[ResourceStatus] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    workspace: WorkspaceInfo | None = None
    retry_after: float | None = None
    drift_events: list[Change] = field(default_factory=list)  # drift first seen this pass

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


def _workspace_info(
    ws_id: str,
    *,
    arn: str,
    alias: str | None,
    region: str,
    status: str,
    endpoint: str | None,
    data_plane_url: str | None,
) -> WorkspaceInfo:
    base = (data_plane_url or f"https://aps-workspaces.{region}.amazonaws.com").rstrip("/")
    api = f"{base}/workspaces/{ws_id}/api/v1"
    return WorkspaceInfo(
        id=ws_id,
        arn=arn,
        alias=alias,
        region=region,
        status=status,
        prometheus_endpoint=endpoint,
        remote_write_url=f"{api}/remote_write",
        query_url=f"{api}/query",
    )


def _spec_fingerprint(spec: StateSpec, files: Mapping[str, bytes | None]) -> str:
    h = hashlib.sha256()
    h.update(spec.stack.encode())
    for part in (spec.aws, spec.workspace, spec.iam):
        h.update(b"\x1f" + (part.model_dump_json().encode() if part is not None else b"-"))
    for path, data in sorted(files.items()):
        h.update(b"\x1f" + path.encode() + b"\x1e" + (data if data is not None else b"-"))
    return h.hexdigest()


@dataclass
class _Pass:
    """Working state of one pass."""

    spec: StateSpec
    region: str
    identity: Identity
    stored: StoredState
    apply: bool
    desired: dict[ResourceKey, Desired] = field(default_factory=dict)
    observed: dict[ResourceKey, Live | Unreadable | None] = field(default_factory=dict)
    errors: dict[ResourceKey, str] = field(default_factory=dict)
    waiting: dict[ResourceKey, str] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)
    outcomes: list[Outcome] = field(default_factory=list)
    workspace: Live | None = None


class AwsReconciler:
    """One AWS pass at a time; sync (the daemon runs it in a worker thread)."""

    def __init__(
        self,
        gateway_factory: GatewayFactory,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        *,
        region_resolver: Callable[[], str | None] = default_region,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._factory = gateway_factory
        self._store = store
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._region_resolver = region_resolver
        self._auto_region: str | None = None
        self._gateways: dict[tuple[str, str | None], AwsGateway] = {}
        self._identities: dict[tuple[str, str | None], Identity] = {}
        self._cache = ObservedCache()
        self._failures: dict[ResourceKey | str, int] = {}
        self._permanent: dict[ResourceKey, tuple[str, str]] = {}  # key -> (desired fp, message)
        self._conditions: dict[str, Condition] = {}
        self._drift_seen: set[ResourceKey] = set()
        self._lock = threading.Lock()

    # -- the facade ---------------------------------------------------------------------

    def reconcile(self, spec: StateSpec, *, apply: bool, force_read: bool = False) -> AwsResult:
        if spec.workspace is None and spec.iam is None:
            return AwsResult()
        with self._lock:
            started = self._clock()
            result = self._reconcile(spec, apply=apply, force_read=force_read)
            log.info(
                "aws.pass",
                apply=apply,
                changes=len(result.plan.changes),
                drift=len(result.plan.drift),
                skipped=len(result.plan.skipped),
                failed=sum(1 for o in result.outcomes if not o.ok),
                workspace=result.workspace.id if result.workspace else None,
                retry_after=result.retry_after,
                duration_ms=round((self._clock() - started) * 1000, 1),
            )
            return result

    # -- one pass -----------------------------------------------------------------------

    def _region(self, spec: StateSpec) -> str | None:
        region = spec.aws_or_default.region
        if region != "auto":
            return region
        if self._auto_region is None:
            self._auto_region = self._region_resolver()
        return self._auto_region

    def _gateway(self, region: str, endpoint: str | None) -> AwsGateway:
        key = (region, endpoint)
        if key not in self._gateways:
            self._gateways[key] = self._factory(region, endpoint)
        return self._gateways[key]

    def _identity(self, gw: AwsGateway, region: str, endpoint: str | None) -> Identity:
        key = (region, endpoint)
        if key not in self._identities:
            self._identities[key] = gw.identity()
        return self._identities[key]

    def _reconcile(self, spec: StateSpec, *, apply: bool, force_read: bool) -> AwsResult:
        aws = spec.aws_or_default
        stored = self._store.load()
        region = self._region(spec)
        if region is None:
            return self._unreachable(
                spec,
                stored,
                None,
                PermanentError(
                    "aws.region is auto but there is no instance metadata and no "
                    "AWS_REGION: set aws.region"
                ),
            )
        files = read_spec_files(spec)
        fp = _spec_fingerprint(spec, files)
        now = self._clock()
        expired = self._cache.taken_at is None or now - self._cache.taken_at >= duration_seconds(
            aws.resync
        )
        if force_read or expired or self._cache.fingerprint != fp:
            self._cache.clear()
            self._cache.fingerprint = fp
            self._cache.taken_at = now
        if force_read:
            self._permanent.clear()
        try:
            gw = self._gateway(region, aws.endpoint_url)
            identity = self._identity(gw, region, aws.endpoint_url)
        except AmpdError as e:
            return self._unreachable(spec, stored, region, e)
        p = _Pass(spec, region, identity, stored, apply and aws.mode == "manage")
        try:
            self._workspace_phase(gw, p)
            self._children_phase(gw, p, files)
        except AwsUnreachable as e:
            self._cache.clear()
            return self._unreachable(spec, self._store.load(), region, e)
        self._failures.pop("reachability", None)
        return self._result(p)

    # -- phase 1: the workspace ---------------------------------------------------------

    def _workspace_phase(self, gw: AwsGateway, p: _Pass) -> None:
        spec, policy = p.spec, policy_from_spec(p.spec)
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
                lookup = WorkspaceLookup(Unreadable(key, str(e), isinstance(e, PermanentError)))
                self._note_failure(key, e)
            if not isinstance(lookup.live, Unreadable):
                self._cache.workspace = lookup.live
                self._cache.workspace_read = lookup.live is None or (
                    lookup.live.status not in TRANSITIONAL
                )
        p.observed[key] = lookup.live
        plan = plan_resources([desired], p.observed, p.stored.applied, policy)
        p.plan = p.plan + plan
        p.workspace = lookup.live if isinstance(lookup.live, Live) else None
        if p.workspace is not None:
            self._remember_workspace(p, p.workspace)
        for change in plan.changes:
            if p.apply:
                self._run(gw, p, change, lambda c: self._apply_workspace(gw, p, c, lookup))

    def _workspace_orphan(self, gw: AwsGateway, p: _Pass) -> None:
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
        if w is None:
            p.stored.applied.pop(str(key), None)
            return
        live = workspace_live(key, w)
        plan = plan_resources([], {}, p.stored.applied, policy_from_spec(p.spec), [live])
        p.plan = p.plan + plan
        for change in plan.changes:
            if p.apply:
                self._run(gw, p, change, lambda _c: gw.delete_workspace(str(live.details["id"])))

    def _apply_workspace(
        self, gw: AwsGateway, p: _Pass, change: Change, lookup: WorkspaceLookup
    ) -> None:
        ws = p.spec.workspace
        assert ws is not None
        key = change.key
        if change.action is Action.CREATE:
            token = client_token(
                p.spec.stack, ws.alias or "", p.region, p.identity.account, lookup.deleted_id or ""
            )
            # Persisted before the call: a crash between request and response retries with
            # the same token, and AWS answers with the same workspace.
            p.stored.client_token = token
            self._persist(p.stored)
            tags = dict(change.after["tags"]) if change.after else {}
            created = gw.create_workspace(ws.alias, tags, token, ws.kms_key_arn)
            ws_id = str(created["workspaceId"])
            described = gw.describe_workspace(ws_id) or {**created, "alias": ws.alias}
            live = workspace_live(key, described)
            p.workspace = live
            p.observed[key] = live
            self._remember_workspace(p, live)
            self._cache.workspace = live
            self._cache.workspace_read = live.status not in TRANSITIONAL
            return
        current = p.workspace
        assert current is not None
        ws_id, arn = str(current.details["id"]), str(current.details["arn"])
        for diff in change.diffs:
            if diff.field == "alias":
                gw.update_workspace_alias(ws_id, str(diff.after))
            elif diff.field == "tags":
                _retag(
                    diff.before or {},
                    diff.after or {},
                    lambda tags: gw.tag_resource(arn, tags),
                    lambda keys: gw.untag_resource(arn, keys),
                )
        fields = {**current.fields, **(change.after or {})}
        updated = replace(current, fields=fields, tags=dict(fields.get("tags") or {}))
        p.workspace = updated
        self._cache.workspace = updated

    def _remember_workspace(self, p: _Pass, live: Live) -> None:
        ws_id = str(live.details["id"])
        info = {
            "arn": live.details.get("arn"),
            "alias": live.fields.get("alias"),
            "region": p.region,
        }
        if p.stored.workspace_id != ws_id or p.stored.extra.get("aws_workspace") != info:
            p.stored.workspace_id = ws_id
            p.stored.extra["aws_workspace"] = info
            self._persist(p.stored)

    # -- phase 2: everything that hangs off the workspace, and IAM ---------------------

    def _children_phase(self, gw: AwsGateway, p: _Pass, files: Mapping[str, bytes | None]) -> None:
        spec, policy = p.spec, policy_from_spec(p.spec)
        ws_live = p.workspace
        ws_id = str(ws_live.details["id"]) if ws_live is not None else None
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
            elif ws_live.status != "ACTIVE":
                p.waiting[d.key] = f"waiting for the workspace ({ws_live.status})"
            else:
                to_read.append(d)
        for d in iam.resources:
            p.desired[d.key] = d
        applied_keys = [k for k in (parse_key(s) for s in p.stored.applied) if k is not None]
        if ws_live is None or ws_live.status != "ACTIVE":
            applied_keys = [k for k in applied_keys if k.kind not in _AMP_CHILDREN]
        observed, orphans = read_children(
            gw,
            stack=spec.stack,
            workspace=ws_live if ws_live is not None and ws_live.status == "ACTIVE" else None,
            desired=to_read,
            previously_applied=applied_keys,
            cache=self._cache,
        )
        p.observed.update(observed)
        for key, value in observed.items():
            if value is None and key not in p.desired:
                p.stored.applied.pop(str(key), None)  # gone: nothing left to remember
        planned = [d for d in p.desired.values() if d.key != ws_key and d.key not in p.waiting]
        plan = plan_resources(planned, p.observed, p.stored.applied, policy, orphans)
        p.plan = p.plan + plan
        if not p.apply:
            return
        failed: set[ResourceKey] = {o.change.key for o in p.outcomes if not o.ok}
        for change in plan.changes:
            blocker = self._blocked_by(change.key, failed, p)
            if blocker is not None:
                p.outcomes.append(
                    Outcome(change, ok=False, message=f"waiting for {blocker}", retry_after=None)
                )
                failed.add(change.key)
                continue
            if change.key.kind in _AMP_CHILDREN and ws_id is None:
                continue
            ok = self._run(gw, p, change, lambda c: self._apply_child(gw, p, c))
            if not ok:
                failed.add(change.key)

    def _blocked_by(self, key: ResourceKey, failed: set[ResourceKey], p: _Pass) -> str | None:
        if key.kind in _AMP_CHILDREN and workspace_key(p.spec) in failed:
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

    def _apply_child(self, gw: AwsGateway, p: _Pass, change: Change) -> None:  # noqa: PLR0915 (one branch per kind)
        key, action = change.key, change.action
        after = change.after or {}
        ws_id = str(p.workspace.details["id"]) if p.workspace is not None else ""
        ws_arn = str(p.workspace.details["arn"]) if p.workspace is not None else ""
        diffs = {d.field: d for d in change.diffs}
        if key.kind is Kind.WORKSPACE_CONFIGURATION:
            gw.update_workspace_configuration(ws_id, int(after["retention_days"]))
        elif key.kind is Kind.LOGGING:
            if action is Action.CREATE:
                gw.create_logging(ws_id, str(after["log_group_arn"]))
            elif action is Action.UPDATE:
                gw.update_logging(ws_id, str(after["log_group_arn"]))
            else:
                gw.delete_logging(ws_id)
        elif key.kind is Kind.ALERTMANAGER:
            if action is Action.CREATE:
                gw.create_alertmanager(ws_id, str(after["data"]).encode())
            elif action is Action.UPDATE:
                gw.put_alertmanager(ws_id, str(after["data"]).encode())
            else:
                gw.delete_alertmanager(ws_id)
        elif key.kind is Kind.RULE_GROUP:
            if action is Action.CREATE:
                gw.create_rule_group(ws_id, key.name, str(after["data"]).encode(), after["tags"])
            elif action is Action.UPDATE:
                if "data" in diffs:
                    gw.put_rule_group(ws_id, key.name, str(after["data"]).encode())
                if "tags" in diffs:
                    arn = ws_arn.replace(":workspace/", ":rulegroupsnamespace/") + "/" + key.name
                    _retag(
                        diffs["tags"].before or {},
                        diffs["tags"].after or {},
                        lambda tags: gw.tag_resource(arn, tags),
                        lambda keys: gw.untag_resource(arn, keys),
                    )
            else:
                gw.delete_rule_group(ws_id, key.name)
        elif key.kind is Kind.IAM_ROLE:
            if action is Action.CREATE:
                description = f"Managed by ampd (stack {p.spec.stack})"
                gw.create_role(key.name, after["trust"], after["tags"], description)
            elif action is Action.UPDATE:
                if "trust" in diffs:
                    gw.update_trust_policy(key.name, after["trust"])
                if "tags" in diffs:
                    _retag(
                        diffs["tags"].before or {},
                        diffs["tags"].after or {},
                        lambda tags: gw.tag_role(key.name, tags),
                        lambda keys: gw.untag_role(key.name, keys),
                    )
            else:
                gw.delete_role(key.name)
        elif key.kind is Kind.IAM_POLICY:
            role, _, policy = key.name.partition("/")
            managed = policy.startswith("arn:")
            if action is Action.DELETE:
                if managed:
                    gw.detach_policy(role, policy)
                else:
                    gw.delete_inline_policy(role, policy)
            elif managed:
                gw.attach_policy(role, policy)
            else:
                gw.put_inline_policy(role, policy, after["document"])
        elif key.kind is Kind.INSTANCE_PROFILE:
            if action is Action.DELETE:
                gw.delete_instance_profile(key.name)
                return
            if action is Action.CREATE:
                gw.create_instance_profile(key.name, after["tags"])
                have: list[str] = []
            else:
                have = list((change.before or {}).get("roles") or [])
                if "tags" in diffs:
                    gw.tag_instance_profile(key.name, after["tags"])
            want = list(after.get("roles") or [])
            for role in have:
                if role not in want:
                    gw.remove_role_from_instance_profile(key.name, role)
            for role in want:
                if role not in have:
                    gw.add_role_to_instance_profile(key.name, role)
        elif key.kind is Kind.WORKSPACE and action is Action.DELETE:
            gw.delete_workspace(ws_id)

    # -- running one change -------------------------------------------------------------

    def _run(
        self, gw: AwsGateway, p: _Pass, change: Change, effect: Callable[[Change], None]
    ) -> bool:
        key = change.key
        desired = p.desired.get(key)
        fp = fingerprint(desired) if desired is not None else f"delete:{change.action}"
        remembered = self._permanent.get(key)
        if remembered is not None and remembered[0] == fp:
            p.outcomes.append(
                Outcome(
                    change,
                    ok=False,
                    permanent=True,
                    message=f"not retried until the state file changes: {remembered[1]}",
                )
            )
            return False
        try:
            effect(change)
        except AwsUnreachable:
            raise
        except PermanentError as e:
            self._permanent[key] = (fp, str(e))
            log.error("aws.change.failed", key=str(key), action=change.action.value, error=str(e))
            p.outcomes.append(Outcome(change, ok=False, message=str(e), permanent=True))
            return False
        except TemporaryError as e:
            delay = self._note_failure(key, e)
            log.warning(
                "aws.change.failed",
                key=str(key),
                action=change.action.value,
                error=str(e),
                retry_after=round(delay, 2),
            )
            p.outcomes.append(Outcome(change, ok=False, message=str(e), retry_after=delay))
            return False
        self._failures.pop(key, None)
        self._permanent.pop(key, None)
        log.info("aws.change.applied", key=str(key), action=change.action.value)
        p.outcomes.append(Outcome(change, ok=True, message=change.reason))
        if change.action is Action.DELETE:
            self._cache.resources[key] = None
            p.stored.applied.pop(str(key), None)
            p.observed[key] = None
        else:
            if desired is not None:
                p.stored.applied[str(key)] = fp
            if key.kind is not Kind.WORKSPACE:
                fields = dict(change.after or {})
                self._cache.resources[key] = Live(key, fields, dict(fields.get("tags") or {}))
                if key.kind is Kind.RULE_GROUP and self._cache.rule_group_tags is not None:
                    self._cache.rule_group_tags[key.name] = dict(fields.get("tags") or {})
                if key.kind is Kind.IAM_POLICY and key.name.partition("/")[2].startswith("arn:"):
                    role, _, arn = key.name.partition("/")
                    self._cache.roles_attached.setdefault(role, []).append(arn)
        self._persist(p.stored)
        return True

    def _persist(self, mine: StoredState) -> None:
        """Write the AWS side's part of ampd.json, leaving the local side's part alone."""

        def aws_part(s: StoredState) -> tuple[Any, ...]:
            applied = {k: v for k, v in s.applied.items() if _is_aws_key(k)}
            return (s.workspace_id, s.client_token, applied, s.extra.get("aws_workspace"))

        def merge(s: StoredState) -> None:
            s.workspace_id = mine.workspace_id
            s.client_token = mine.client_token
            for k in [k for k in s.applied if _is_aws_key(k)]:
                del s.applied[k]
            s.applied.update({k: v for k, v in mine.applied.items() if _is_aws_key(k)})
            if "aws_workspace" in mine.extra:
                s.extra["aws_workspace"] = mine.extra["aws_workspace"]

        with self._store.lock:
            if aws_part(self._store.load()) != aws_part(mine):
                self._store.update(merge)

    def _note_failure(self, key: ResourceKey | str, e: AmpdError) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        base = e.delay if isinstance(e, TemporaryError) else BACKOFF_CAP
        return backoff(base, n, rng=self._rng)

    # -- results ------------------------------------------------------------------------

    def _unreachable(
        self, spec: StateSpec, stored: StoredState, region: str | None, e: AmpdError
    ) -> AwsResult:
        permanent = isinstance(e, PermanentError)
        delay = self._note_failure("reachability", e) if not permanent else None
        log.warning("aws.unreachable", error=str(e), retry_after=delay)
        workspace = None
        info = stored.extra.get("aws_workspace") or {}
        if stored.workspace_id and region is not None:
            workspace = _workspace_info(
                stored.workspace_id,
                arn=str(info.get("arn") or ""),
                alias=info.get("alias"),
                region=str(info.get("region") or region),
                status="Unknown",
                endpoint=None,
                data_plane_url=spec.aws_or_default.data_plane_url,
            )
        reason = "RegionUnknown" if region is None else ("Denied" if permanent else "Unreachable")
        conditions = [
            self._condition("AwsReachable", ConditionStatus.FALSE, reason, str(e)),
            self._condition("WorkspaceActive", ConditionStatus.UNKNOWN, "AwsUnreachable", ""),
        ]
        statuses = [ResourceStatus(workspace_key(spec), SyncStatus.UNKNOWN, Health.UNKNOWN, str(e))]
        return AwsResult(
            conditions=conditions, statuses=statuses, workspace=workspace, retry_after=delay
        )

    def _condition(
        self, type_: str, status: ConditionStatus, reason: str, message: str
    ) -> Condition:
        prev = self._conditions.get(type_)
        when = prev.last_transition if prev is not None and prev.status == status else self._wall()
        cond = Condition(type_, status, reason, message, when)
        self._conditions[type_] = cond
        return cond

    def _result(self, p: _Pass) -> AwsResult:  # noqa: PLR0915 (conditions read best side by side)
        plan = p.plan
        changed = {c.key for c in plan.changes}
        drifted = {c.key for c in plan.drift}
        outcome_by_key = {o.change.key: o for o in p.outcomes}
        statuses: list[ResourceStatus] = []
        retry: list[float] = [o.retry_after for o in p.outcomes if o.retry_after is not None]
        denied: list[str] = []
        ws_key = workspace_key(p.spec)
        keys = list(p.desired) + [k for k in p.errors if k not in p.desired]
        for key in keys:
            d = p.desired.get(key)
            if d is not None and not d.present and key not in changed:
                continue
            statuses.append(
                self._status(
                    p,
                    key,
                    changed=changed,
                    drifted=drifted,
                    outcomes=outcome_by_key,
                    retry=retry,
                    denied=denied,
                )
            )
            if d is not None and d.present and key not in changed and key not in drifted:
                live = p.observed.get(key)
                if isinstance(live, Live) and live.status not in TRANSITIONAL | FAILED:
                    p.stored.applied[str(key)] = fingerprint(d)
        self._persist(p.stored)
        for o in p.outcomes:
            if not o.ok and isinstance(o.message, str) and o.message.count("AccessDenied"):
                denied.append(o.message)

        ws = p.workspace
        workspace = None
        conditions = [self._condition("AwsReachable", ConditionStatus.TRUE, "Connected", "")]
        if p.spec.workspace is not None:
            if ws is not None:
                workspace = _workspace_info(
                    str(ws.details["id"]),
                    arn=str(ws.details.get("arn") or ""),
                    alias=ws.fields.get("alias"),
                    region=p.region,
                    status=ws.status or "Unknown",
                    endpoint=ws.details.get("prometheus_endpoint"),
                    data_plane_url=p.spec.aws_or_default.data_plane_url,
                )
                if ws.status in TRANSITIONAL:
                    retry.append(WORKSPACE_POLL)
                if ws.status == "ACTIVE":
                    conditions.append(
                        self._condition(
                            "WorkspaceActive", ConditionStatus.TRUE, "Active", ws.status
                        )
                    )
                else:
                    reason = (ws.status or "Unknown").title().replace("_", "")
                    conditions.append(
                        self._condition(
                            "WorkspaceActive",
                            ConditionStatus.FALSE,
                            reason,
                            f"workspace {ws.details['id']} is {ws.status}",
                        )
                    )
            else:
                live = p.observed.get(ws_key)
                message = live.error if isinstance(live, Unreadable) else "no workspace yet"
                status = (
                    ConditionStatus.UNKNOWN
                    if isinstance(live, Unreadable)
                    else ConditionStatus.FALSE
                )
                conditions.append(self._condition("WorkspaceActive", status, "Missing", message))
        if p.spec.iam is not None:
            iam_states = [
                s
                for s in statuses
                if s.key.kind in (Kind.IAM_ROLE, Kind.IAM_POLICY, Kind.INSTANCE_PROFILE)
            ]
            bad = [s for s in iam_states if s.sync is not SyncStatus.SYNCED]
            if bad:
                conditions.append(
                    self._condition(
                        "IamReady",
                        ConditionStatus.FALSE,
                        "NotReady",
                        "; ".join(f"{s.key}: {s.message or s.sync.value}" for s in bad[:5]),
                    )
                )
            else:
                conditions.append(self._condition("IamReady", ConditionStatus.TRUE, "Ready", ""))
        if denied:
            conditions.append(
                self._condition(
                    "AwsAuthorized",
                    ConditionStatus.FALSE,
                    "AccessDenied",
                    "; ".join(sorted(set(denied))[:5]),
                )
            )
        else:
            conditions.append(
                self._condition("AwsAuthorized", ConditionStatus.TRUE, "Authorized", "")
            )
        if any(k.kind in _AMP_CHILDREN for k in p.waiting):
            retry.append(WORKSPACE_POLL)
        new_drift = [c for c in plan.drift if c.key not in self._drift_seen]
        self._drift_seen = {c.key for c in plan.drift}
        for c in new_drift:
            log.warning("aws.drift", key=str(c.key), action=c.action.value, reason=c.reason)
        return AwsResult(
            plan=plan,
            outcomes=list(p.outcomes),
            statuses=statuses,
            conditions=conditions,
            workspace=workspace,
            retry_after=min(retry) if retry else None,
            drift_events=new_drift,
        )

    def _status(
        self,
        p: _Pass,
        key: ResourceKey,
        *,
        changed: set[ResourceKey],
        drifted: set[ResourceKey],
        outcomes: Mapping[ResourceKey, Outcome],
        retry: list[float],
        denied: list[str],
    ) -> ResourceStatus:
        if key in p.errors:
            return ResourceStatus(key, SyncStatus.UNKNOWN, Health.DEGRADED, p.errors[key])
        if key in p.waiting:
            return ResourceStatus(key, SyncStatus.UNKNOWN, Health.PROGRESSING, p.waiting[key])
        live = p.observed.get(key)
        if isinstance(live, Unreadable):
            if live.permanent and "AccessDenied" in live.error:
                denied.append(live.error)
            if not live.permanent:
                retry.append(
                    backoff(TemporaryError("").delay, self._failures.get(key, 0), rng=self._rng)
                )
            health = Health.DEGRADED if live.permanent else Health.UNKNOWN
            return ResourceStatus(key, SyncStatus.UNKNOWN, health, live.error)
        outcome = outcomes.get(key)
        details: dict[str, Any] = dict(live.details) if isinstance(live, Live) else {}
        if outcome is not None:
            if outcome.ok:
                health = Health.HEALTHY
                if key.kind is Kind.WORKSPACE and p.workspace is not None:
                    health = _workspace_health(p.workspace.status)
                return ResourceStatus(
                    key, SyncStatus.SYNCED, health, outcome.message, self._wall(), details
                )
            health = Health.DEGRADED if outcome.permanent else Health.PROGRESSING
            return ResourceStatus(
                key, SyncStatus.OUT_OF_SYNC, health, outcome.message, None, details
            )
        if key in changed or key in drifted:
            health = Health.MISSING if live is None else Health.HEALTHY
            reason = next((c.reason for c in (*p.plan.changes, *p.plan.drift) if c.key == key), "")
            return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, health, reason, None, details)
        if live is None:
            return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.MISSING, "does not exist")
        health = _workspace_health(live.status) if key.kind is Kind.WORKSPACE else Health.HEALTHY
        message = ""
        if live.status in FAILED:
            message = f"AWS reports {live.status}; not retried until the state file changes"
        skipped = next((s.reason for s in p.plan.skipped if s.key == key), "")
        return ResourceStatus(key, SyncStatus.SYNCED, health, message or skipped, None, details)


def _is_aws_key(text: str) -> bool:
    return text.startswith("aws.")


def _workspace_health(status: str | None) -> Health:
    if status == "ACTIVE":
        return Health.HEALTHY
    if status in TRANSITIONAL:
        return Health.PROGRESSING
    if status in FAILED:
        return Health.DEGRADED
    return Health.UNKNOWN


def _retag(
    before: Mapping[str, str],
    after: Mapping[str, str],
    tag: Callable[[dict[str, str]], None],
    untag: Callable[[list[str]], None],
) -> None:
    to_set = {k: v for k, v in after.items() if before.get(k) != v}
    to_remove = sorted(k for k in before if k not in after and not k.startswith("aws:"))
    if to_set:
        tag(to_set)
    if to_remove:
        untag(to_remove)
