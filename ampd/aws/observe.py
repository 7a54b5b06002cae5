"""Read-only probes of AWS: live state as ``plan.aws.Live`` values, through the gateway.

Reads go through an :class:`ObservedCache` so a steady state reads each resource at most
once per ``resync``: the AWS side clears it on expiry, when asked (``forget_reads``) and when
the desired state changes, and patches it after its own writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from ampd.aws.gateway.client import AwsReader, AwsUnreachable
from ampd.aws.model import AMP_CHILDREN, TRANSITIONAL, Desired, Live, Unreadable, workspace_key
from ampd.core import Kind, ResourceKey
from ampd.errors import PermanentError, TemporaryError
from ampd.gateways.files import read_bytes
from ampd.spec.models import StateSpec

__all__ = [
    "ObservedCache",
    "WorkspaceLookup",
    "amp_status",
    "configuration_live",
    "find_workspace",
    "policy_document",
    "query_logging_live",
    "read_children",
    "read_spec_files",
    "workspace_gone",
    "workspace_live",
]

log = structlog.get_logger()

_GONE = frozenset({"DELETING"})
_IAM_KINDS = frozenset({Kind.IAM_ROLE, Kind.IAM_POLICY, Kind.INSTANCE_PROFILE})


@dataclass
class ObservedCache:
    """Observed live state kept between passes (``None`` = known to be absent)."""

    taken_at: float | None = None
    fingerprint: str | None = None
    resources: dict[ResourceKey, Live | None] = field(default_factory=dict)
    workspace: Live | None = None
    workspace_read: bool = False
    rule_group_tags: dict[str, dict[str, str]] | None = None
    roles_attached: dict[str, list[str]] = field(default_factory=dict)

    def forget(self, key: ResourceKey) -> None:
        """Drop what was remembered of ``key`` (and of what hangs off it): a write found it
        gone, or a create found it already there. The next read asks AWS again."""
        self.resources.pop(key, None)
        if key.kind is Kind.RULE_GROUP:
            self.rule_group_tags = None  # listed again: it may be gone, or there after all
        elif key.kind in _IAM_KINDS:
            # what hangs off it (its policies, a profile holding it) was planned from the
            # same stale reads and waited for it: all of IAM is read again
            for k in [k for k in self.resources if k.kind in _IAM_KINDS]:
                del self.resources[k]
            self.roles_attached.clear()
        elif key.kind is Kind.WORKSPACE:
            self.workspace = None
            self.workspace_read = False
            self.rule_group_tags = None
            for k in [k for k in self.resources if k.kind in AMP_CHILDREN]:
                del self.resources[k]
        if key.kind in AMP_CHILDREN:
            self.workspace_read = False  # the workspace itself may be what is gone

    def clear(self) -> None:
        self.taken_at = None
        self.resources.clear()
        self.workspace = None
        self.workspace_read = False
        self.rule_group_tags = None
        self.roles_attached.clear()


def read_spec_files(spec: StateSpec) -> dict[str, bytes | None]:
    """The bytes of every rule and alertmanager file the spec names (None when unreadable):
    the ``pushed`` ones of ``StateSpec.named_files()``."""
    paths = [named.path for named in spec.named_files() if named.pushed]
    out: dict[str, bytes | None] = {}
    for p in paths:
        try:
            out[p] = read_bytes(Path(p))
        except OSError:
            out[p] = None
    return out


def amp_status(resource: Mapping[str, Any]) -> dict[str, Any]:
    """An AMP resource's ``status.statusCode``, and AMP's ``statusReason`` (kept in the
    details, where the report reads why a configuration failed)."""
    status = resource.get("status") or {}
    code = str(status.get("statusCode") or "") or None
    reason = status.get("statusReason")
    return {"status": code, "details": {"status_reason": str(reason)} if reason else {}}


def workspace_gone(w: Mapping[str, Any] | None) -> bool:
    """No workspace, or one AWS is deleting (DeleteWorkspace answers 202 DELETING): nothing
    to write to, nor to report as there."""
    return w is None or (w.get("status") or {}).get("statusCode") in _GONE


def workspace_live(key: ResourceKey, w: Mapping[str, Any]) -> Live:
    """From a DescribeWorkspace answer or a ListWorkspaces summary alike: only what both
    carry (a summary has no ``prometheusEndpoint``; the report derives the endpoint from
    the region and the id, as every data-plane URL)."""
    tags = dict(w.get("tags") or {})
    fields: dict[str, Any] = {"alias": w.get("alias"), "tags": tags}
    if w.get("kmsKeyArn"):
        fields["kms_key_arn"] = w.get("kmsKeyArn")
    return Live(
        key,
        fields,
        tags,
        status=str((w.get("status") or {}).get("statusCode") or "") or None,
        details={"id": w.get("workspaceId"), "arn": w.get("arn")},
    )


@dataclass(frozen=True)
class WorkspaceLookup:
    live: Live | Unreadable | None
    deleted_id: str | None = None  # the stored workspace is gone (deleted outside ampd)


def find_workspace(gw: AwsReader, spec: StateSpec, stored_id: str | None) -> WorkspaceLookup:
    """By ``workspace.id``; else the stored id; else by alias among this stack's workspaces.
    One call when the workspace is there: DescribeWorkspace for an id, else one
    ListWorkspaces by alias (its summaries are enough)."""
    ws = spec.workspace
    assert ws is not None
    key = workspace_key(spec)
    if ws.id is not None:
        w = gw.describe_workspace(ws.id)
        if w is None or workspace_gone(w):
            return WorkspaceLookup(
                Unreadable(key, f"workspace {ws.id} (workspace.id) does not exist", permanent=True)
            )
        return WorkspaceLookup(workspace_live(key, w))
    deleted: str | None = None
    if stored_id:
        w = gw.describe_workspace(stored_id)
        if w is not None and not workspace_gone(w):
            live = workspace_live(key, w)
            if live.stack == spec.stack or w.get("alias") == ws.alias:
                return WorkspaceLookup(live)
        else:
            deleted = stored_id
    candidates = [
        s
        for s in gw.list_workspaces(ws.alias)
        if s.get("alias") == ws.alias
        and not workspace_gone(s)
        and Live(key, tags=dict(s.get("tags") or {})).stack == spec.stack
    ]
    if not candidates:
        return WorkspaceLookup(None, deleted)
    # Every host picks the same one: the oldest, ties broken by id. The summary carries
    # everything a Live needs (alias, tags, status, ARN, KMS key): no DescribeWorkspace.
    first = min(candidates, key=lambda s: (str(s.get("createdAt", "")), str(s["workspaceId"])))
    return WorkspaceLookup(workspace_live(key, first), deleted)


def configuration_live(c: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeWorkspaceConfiguration answer in the desired fields' terms (the plan
    compares only the ones the state file sets)."""
    out_of_order = c.get("outOfOrderTimeWindowInSeconds")
    offset = c.get("ruleQueryOffsetInSeconds")
    return {
        "retention_days": c.get("retentionPeriodInDays"),
        "out_of_order_seconds": int(out_of_order) if out_of_order is not None else None,
        "rule_query_offset_seconds": int(offset) if offset is not None else None,
        "label_set_limits": [
            {
                "labels": dict(limit.get("labelSet") or {}),
                "max_series": int((limit.get("limits") or {}).get("maxSeries") or 0),
            }
            for limit in c.get("limitsPerLabelSet") or []
        ],
    }


def query_logging_live(q: Mapping[str, Any]) -> dict[str, Any]:
    """The one destination AMP allows: its log group and its threshold."""
    destinations = list(q.get("destinations") or [])
    first = destinations[0] if destinations else {}
    return {
        "log_group_arn": (first.get("cloudWatchLogs") or {}).get("logGroupArn"),
        "qsp_threshold": (first.get("filters") or {}).get("qspThreshold"),
    }


def policy_document(text: Any) -> Any:
    """A resource policy as JSON (compared as a value, not as text); text AMP holds that
    is not JSON stays text, and differs from any document ampd renders."""
    try:
        return json.loads(str(text))
    except ValueError:
        return text


def _read_amp(
    gw: AwsReader,
    key: ResourceKey,
    workspace_id: str,
    workspace_tags: Mapping[str, str],
    cache: ObservedCache,
) -> Live | None:
    """A configuration that hangs off the workspace, with AMP's status and reason."""
    kind, name = key.kind, key.name
    if kind is Kind.WORKSPACE_CONFIGURATION:
        c = gw.describe_workspace_configuration(workspace_id)
        if c is None:
            return None
        return Live(key, configuration_live(c), workspace_tags, **amp_status(c))
    if kind is Kind.LOGGING:
        logging = gw.describe_logging(workspace_id)
        if logging is None or not logging.get("logGroupArn"):
            return None
        arn = {"log_group_arn": str(logging["logGroupArn"])}
        return Live(key, arn, workspace_tags, **amp_status(logging))
    if kind is Kind.QUERY_LOGGING:
        q = gw.describe_query_logging(workspace_id)
        if q is None:
            return None
        return Live(key, query_logging_live(q), workspace_tags, **amp_status(q))
    if kind is Kind.RESOURCE_POLICY:
        p = gw.describe_resource_policy(workspace_id)
        if p is None:
            return None
        fields = {
            "document": policy_document(p.get("policyDocument")),
            "revision_id": p.get("revisionId"),
        }
        return Live(key, fields, workspace_tags, status=str(p.get("policyStatus") or "") or None)
    if kind is Kind.ALERTMANAGER:
        definition = gw.describe_alertmanager(workspace_id)
        if definition is None:
            return None
        text = bytes(definition.get("data") or b"").decode("utf-8", errors="replace")
        return Live(key, {"data": text}, workspace_tags, **amp_status(definition))
    if cache.rule_group_tags is None:
        cache.rule_group_tags = {
            str(g["name"]): dict(g.get("tags") or {}) for g in gw.list_rule_groups(workspace_id)
        }
    if name not in cache.rule_group_tags:
        return None
    g = gw.describe_rule_group(workspace_id, name)
    if g is None:
        return None
    tags = dict(g.get("tags") or {})
    data = bytes(g.get("data") or b"").decode("utf-8", errors="replace")
    status = amp_status(g)
    details = {"arn": g.get("arn"), **status["details"]}
    return Live(key, {"data": data, "tags": tags}, tags, status["status"], details)


def _read_one(
    gw: AwsReader,
    key: ResourceKey,
    workspace_id: str | None,
    workspace_tags: Mapping[str, str],
    cache: ObservedCache,
) -> Live | None:
    kind, name = key.kind, key.name
    if kind in AMP_CHILDREN:
        if workspace_id is None:
            return None
        return _read_amp(gw, key, workspace_id, workspace_tags, cache)
    if kind is Kind.IAM_ROLE:
        r = gw.get_role(name)
        if r is None:
            return None
        tags = dict(r.get("Tags") or {})
        trust = r.get("AssumeRolePolicyDocument") or {}
        boundary = (r.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        fields = {"trust": trust, "tags": tags, "boundary": boundary}
        return Live(key, fields, tags, details={"arn": r.get("Arn")})
    if kind is Kind.IAM_POLICY:
        role_name, _, policy = name.partition("/")
        role_key = ResourceKey(Kind.IAM_ROLE, role_name)
        if role_key not in cache.resources:
            cache.resources[role_key] = _read_one(gw, role_key, workspace_id, workspace_tags, cache)
        role = cache.resources[role_key]
        if role is None:
            return None
        if policy.startswith("arn:"):
            if role_name not in cache.roles_attached:
                cache.roles_attached[role_name] = gw.list_attached_policies(role_name)
            if policy not in cache.roles_attached[role_name]:
                return None
            return Live(key, {"attached": True}, role.tags)
        doc = gw.get_inline_policy(role_name, policy)
        return Live(key, {"document": doc}, role.tags) if doc is not None else None
    if kind is Kind.INSTANCE_PROFILE:
        p = gw.get_instance_profile(name)
        if p is None:
            return None
        tags = dict(p.get("Tags") or {})
        return Live(
            key,
            {"roles": list(p.get("Roles") or []), "tags": tags},
            tags,
            details={"arn": p["Arn"]},
        )
    return None


def read_children(
    gw: AwsReader,
    *,
    stack: str,
    workspace: Live | None,
    desired: Iterable[Desired],
    previously_applied: Iterable[ResourceKey],
    cache: ObservedCache,
) -> tuple[dict[ResourceKey, Live | Unreadable | None], list[Live]]:
    """Live state of every desired resource, and the orphans: live resources ampd once
    managed (or that carry this stack's tags) that are no longer desired.

    One resource failing to read (AccessDenied, throttled) does not stop the others; a
    network failure does (raised, so the pass ends quickly).
    """
    workspace_id = str(workspace.details["id"]) if workspace is not None else None
    workspace_tags = dict(workspace.tags) if workspace is not None else {}
    wanted = [d.key for d in desired]
    wanted_set = set(wanted)
    extra = [k for k in previously_applied if k not in wanted_set and k.kind.is_aws]
    observed: dict[ResourceKey, Live | Unreadable | None] = {}

    def read(key: ResourceKey) -> Live | Unreadable | None:
        if key in cache.resources:
            return cache.resources[key]
        try:
            live = _read_one(gw, key, workspace_id, workspace_tags, cache)
        except AwsUnreachable:
            raise
        except (PermanentError, TemporaryError) as e:
            log.warning("aws.observe.failed", key=str(key), error=str(e))
            return Unreadable.of(key, e)
        if live is None or live.status not in TRANSITIONAL:
            cache.resources[key] = live
        return live

    for key in wanted:
        observed[key] = read(key)
    if workspace_id is not None and any(k.kind is Kind.RULE_GROUP for k in wanted):
        for name, tags in sorted((cache.rule_group_tags or {}).items()):
            key = ResourceKey(Kind.RULE_GROUP, name)
            if key not in wanted_set and Live(key, tags=tags).stack == stack:
                extra.append(key)
    orphans: list[Live] = []
    for key in sorted(set(extra)):
        if key.kind is Kind.WORKSPACE:
            continue  # the workspace itself is looked up on its own
        found = read(key)
        observed[key] = found
        if isinstance(found, Live):
            orphans.append(found)
    return observed, orphans
