"""AWS act: execute one planned change through the gateway.

The executors ``match`` on the change's kind, then on its action, and end in
``typing.assert_never``: mypy proves that every ``(Kind, Action)`` pair is handled, and a
pair that makes no sense for AWS (``restart`` of a rule group) is refused loudly instead
of being mistaken for something else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, assert_never

from ampd.core import Action, Change, Kind
from ampd.errors import PermanentError
from ampd.gateways.aws import AwsGateway
from ampd.plan.aws import Live

__all__ = ["Target", "apply_change", "create_workspace", "update_workspace"]


@dataclass(frozen=True)
class Target:
    """Where a change lands: the workspace (when there is one) and the stack."""

    workspace_id: str
    workspace_arn: str
    stack: str


def _refuse(change: Change) -> PermanentError:
    return PermanentError(
        f"{change.key}: action {change.action.value} does not apply to {change.key.kind.value}"
    )


def create_workspace(
    gw: AwsGateway, alias: str | None, tags: Mapping[str, str], token: str, kms: str | None
) -> dict[str, Any]:
    """CreateWorkspace (idempotent by ``token``), then the workspace as described."""
    created = gw.create_workspace(alias, dict(tags), token, kms)
    ws_id = str(created["workspaceId"])
    return gw.describe_workspace(ws_id) or {**created, "alias": alias}


def update_workspace(gw: AwsGateway, current: Live, change: Change) -> Live:
    """Alias and tags of an existing workspace; the updated live view."""
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
    return replace(current, fields=fields, tags=dict(fields.get("tags") or {}))


def apply_change(gw: AwsGateway, change: Change, target: Target) -> None:
    """Every AWS kind but the workspace's create/update (see above)."""
    kind = change.key.kind
    match kind:
        case Kind.WORKSPACE:
            _workspace(gw, change, target)
        case Kind.WORKSPACE_CONFIGURATION:
            _configuration(gw, change, target)
        case Kind.LOGGING:
            _logging(gw, change, target)
        case Kind.ALERTMANAGER:
            _alertmanager(gw, change, target)
        case Kind.RULE_GROUP:
            _rule_group(gw, change, target)
        case Kind.IAM_ROLE:
            _role(gw, change, target)
        case Kind.IAM_POLICY:
            _policy(gw, change)
        case Kind.INSTANCE_PROFILE:
            _instance_profile(gw, change)
        case Kind.FILE | Kind.PROCESS:
            raise PermanentError(f"{change.key} is not an AWS resource")
        case _ as never:
            assert_never(never)


def _workspace(gw: AwsGateway, change: Change, target: Target) -> None:
    match change.action:
        case Action.DELETE:
            gw.delete_workspace(target.workspace_id)
        case Action.NOOP:
            pass
        case Action.CREATE | Action.UPDATE | Action.REPLACE | Action.RESTART | Action.RELOAD:
            raise _refuse(change)  # create/update go through create_/update_workspace
        case _ as never:
            assert_never(never)


def _configuration(gw: AwsGateway, change: Change, target: Target) -> None:
    match change.action:
        case Action.CREATE | Action.UPDATE | Action.REPLACE:
            after = change.after or {}
            gw.update_workspace_configuration(target.workspace_id, int(after["retention_days"]))
        case Action.NOOP:
            pass
        case Action.DELETE | Action.RESTART | Action.RELOAD:
            raise _refuse(change)  # a workspace always has a configuration
        case _ as never:
            assert_never(never)


def _logging(gw: AwsGateway, change: Change, target: Target) -> None:
    after = change.after or {}
    match change.action:
        case Action.CREATE:
            gw.create_logging(target.workspace_id, str(after["log_group_arn"]))
        case Action.UPDATE | Action.REPLACE:
            gw.update_logging(target.workspace_id, str(after["log_group_arn"]))
        case Action.DELETE:
            gw.delete_logging(target.workspace_id)
        case Action.NOOP:
            pass
        case Action.RESTART | Action.RELOAD:
            raise _refuse(change)
        case _ as never:
            assert_never(never)


def _alertmanager(gw: AwsGateway, change: Change, target: Target) -> None:
    after = change.after or {}
    match change.action:
        case Action.CREATE:
            gw.create_alertmanager(target.workspace_id, str(after["data"]).encode())
        case Action.UPDATE | Action.REPLACE:
            gw.put_alertmanager(target.workspace_id, str(after["data"]).encode())
        case Action.DELETE:
            gw.delete_alertmanager(target.workspace_id)
        case Action.NOOP:
            pass
        case Action.RESTART | Action.RELOAD:
            raise _refuse(change)
        case _ as never:
            assert_never(never)


def _rule_group(gw: AwsGateway, change: Change, target: Target) -> None:
    key, after = change.key, change.after or {}
    diffs = {d.field: d for d in change.diffs}
    ws_id = target.workspace_id
    match change.action:
        case Action.CREATE:
            gw.create_rule_group(ws_id, key.name, str(after["data"]).encode(), after["tags"])
        case Action.UPDATE | Action.REPLACE:
            if "data" in diffs:
                gw.put_rule_group(ws_id, key.name, str(after["data"]).encode())
            if "tags" in diffs:
                arn = (
                    target.workspace_arn.replace(":workspace/", ":rulegroupsnamespace/")
                    + "/"
                    + key.name
                )
                _retag(
                    diffs["tags"].before or {},
                    diffs["tags"].after or {},
                    lambda tags: gw.tag_resource(arn, tags),
                    lambda keys: gw.untag_resource(arn, keys),
                )
        case Action.DELETE:
            gw.delete_rule_group(ws_id, key.name)
        case Action.NOOP:
            pass
        case Action.RESTART | Action.RELOAD:
            raise _refuse(change)
        case _ as never:
            assert_never(never)


def _role(gw: AwsGateway, change: Change, target: Target) -> None:
    name, after = change.key.name, change.after or {}
    diffs = {d.field: d for d in change.diffs}
    match change.action:
        case Action.CREATE:
            description = f"Managed by ampd (stack {target.stack})"
            gw.create_role(name, after["trust"], after["tags"], description)
        case Action.UPDATE | Action.REPLACE:
            if "trust" in diffs:
                gw.update_trust_policy(name, after["trust"])
            if "tags" in diffs:
                _retag(
                    diffs["tags"].before or {},
                    diffs["tags"].after or {},
                    lambda tags: gw.tag_role(name, tags),
                    lambda keys: gw.untag_role(name, keys),
                )
        case Action.DELETE:
            gw.delete_role(name)
        case Action.NOOP:
            pass
        case Action.RESTART | Action.RELOAD:
            raise _refuse(change)
        case _ as never:
            assert_never(never)


def _policy(gw: AwsGateway, change: Change) -> None:
    role, _, policy = change.key.name.partition("/")
    managed = policy.startswith("arn:")
    match change.action:
        case Action.CREATE | Action.UPDATE | Action.REPLACE:
            if managed:
                gw.attach_policy(role, policy)
            else:
                gw.put_inline_policy(role, policy, (change.after or {})["document"])
        case Action.DELETE:
            if managed:
                gw.detach_policy(role, policy)
            else:
                gw.delete_inline_policy(role, policy)
        case Action.NOOP:
            pass
        case Action.RESTART | Action.RELOAD:
            raise _refuse(change)
        case _ as never:
            assert_never(never)


def _instance_profile(gw: AwsGateway, change: Change) -> None:
    name, after = change.key.name, change.after or {}
    diffs = {d.field for d in change.diffs}
    have: list[str] = []
    match change.action:
        case Action.CREATE:
            gw.create_instance_profile(name, after["tags"])
        case Action.UPDATE | Action.REPLACE:
            have = list((change.before or {}).get("roles") or [])
            if "tags" in diffs:
                gw.tag_instance_profile(name, after["tags"])
        case Action.DELETE:
            gw.delete_instance_profile(name)
            return
        case Action.NOOP:
            return
        case Action.RESTART | Action.RELOAD:
            raise _refuse(change)
        case _ as never:
            assert_never(never)
    want = list(after.get("roles") or [])
    for role in have:
        if role not in want:
            gw.remove_role_from_instance_profile(name, role)
    for role in want:
        if role not in have:
            gw.add_role_to_instance_profile(name, role)


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
