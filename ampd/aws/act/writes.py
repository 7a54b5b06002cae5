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

from ampd.aws.gateway.client import AwsReader
from ampd.aws.gateway.writer import AwsWriter, LabelSetLimit
from ampd.aws.model import Live
from ampd.core import Change, Kind
from ampd.engine.actions import by_action
from ampd.errors import PermanentError

__all__ = ["Target", "apply_change", "create_workspace", "update_workspace"]


@dataclass(frozen=True)
class Target:
    """Where a change lands: the workspace (when there is one) and the stack."""

    workspace_id: str
    workspace_arn: str
    stack: str


def create_workspace(
    gw: AwsWriter,
    reader: AwsReader,
    alias: str | None,
    tags: Mapping[str, str],
    token: str,
    kms: str | None,
) -> dict[str, Any]:
    """CreateWorkspace (idempotent by ``token``), then the workspace as described."""
    created = gw.create_workspace(alias, dict(tags), token, kms)
    ws_id = str(created["workspaceId"])
    return reader.describe_workspace(ws_id) or {**created, "alias": alias}


def update_workspace(gw: AwsWriter, current: Live, change: Change) -> Live:
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


def apply_change(gw: AwsWriter, change: Change, target: Target) -> None:
    """Every AWS kind but the workspace's create/update (see above)."""
    kind = change.key.kind
    match kind:
        case Kind.WORKSPACE:
            _workspace(gw, change, target)
        case Kind.WORKSPACE_CONFIGURATION:
            _configuration(gw, change, target)
        case Kind.LOGGING:
            _logging(gw, change, target)
        case Kind.QUERY_LOGGING:
            _query_logging(gw, change, target)
        case Kind.RESOURCE_POLICY:
            _resource_policy(gw, change, target)
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


def _workspace(gw: AwsWriter, change: Change, target: Target) -> None:
    # create and update go through create_workspace / update_workspace (they need the
    # clientToken and the live view); only a delete lands here
    by_action(change, delete=lambda: gw.delete_workspace(target.workspace_id))


def _configuration(gw: AwsWriter, change: Change, target: Target) -> None:
    def put() -> None:
        # the fields that differ: every one of them the state file sets (a create, or a
        # failed update, lists them all); AMP keeps the others
        after = {d.field: d.after for d in change.diffs}

        def number(name: str) -> int | None:
            return int(after[name]) if after.get(name) is not None else None

        limits = after.get("label_set_limits")
        gw.update_workspace_configuration(
            target.workspace_id,
            retention_days=number("retention_days"),
            out_of_order_seconds=number("out_of_order_seconds"),
            rule_query_offset_seconds=number("rule_query_offset_seconds"),
            label_set_limits=None
            if limits is None
            else [LabelSetLimit(dict(x["labels"]), int(x["max_series"])) for x in limits],
        )

    by_action(change, create=put, update=put)  # a workspace always has a configuration


def _logging(gw: AwsWriter, change: Change, target: Target) -> None:
    ws, arn = target.workspace_id, str((change.after or {}).get("log_group_arn"))
    by_action(
        change,
        create=lambda: gw.create_logging(ws, arn),
        update=lambda: gw.update_logging(ws, arn),
        delete=lambda: gw.delete_logging(ws),
    )


def _query_logging(gw: AwsWriter, change: Change, target: Target) -> None:
    ws, after = target.workspace_id, change.after or {}
    arn, threshold = str(after.get("log_group_arn")), int(after.get("qsp_threshold") or 0)
    by_action(
        change,
        create=lambda: gw.create_query_logging(ws, arn, threshold),
        update=lambda: gw.update_query_logging(ws, arn, threshold),
        delete=lambda: gw.delete_query_logging(ws),
    )


def _resource_policy(gw: AwsWriter, change: Change, target: Target) -> None:
    """Always with the revision read (none: there was no policy, and the writer tells AMP
    so with ``NO_POLICY``): a policy edited or made since is refused by AMP
    (``ConcurrentEdit``), never overwritten."""
    ws = target.workspace_id
    read = (change.before or {}).get("revision_id")
    revision = str(read) if read else None
    document = dict((change.after or {}).get("document") or {})
    put = lambda: gw.put_resource_policy(ws, document, revision)  # noqa: E731
    by_action(
        change, create=put, update=put, delete=lambda: gw.delete_resource_policy(ws, revision)
    )


def _alertmanager(gw: AwsWriter, change: Change, target: Target) -> None:
    ws, data = target.workspace_id, str((change.after or {}).get("data")).encode()
    by_action(
        change,
        create=lambda: gw.create_alertmanager(ws, data),
        update=lambda: gw.put_alertmanager(ws, data),
        delete=lambda: gw.delete_alertmanager(ws),
    )


def _rule_group(gw: AwsWriter, change: Change, target: Target) -> None:
    key, after = change.key, change.after or {}
    diffs = {d.field: d for d in change.diffs}
    ws_id = target.workspace_id

    def update() -> None:
        if "data" in diffs:
            gw.put_rule_group(ws_id, key.name, str(after["data"]).encode())
        if "tags" in diffs:
            arn = target.workspace_arn.replace(":workspace/", ":rulegroupsnamespace/")
            _retag(
                diffs["tags"].before or {},
                diffs["tags"].after or {},
                lambda tags: gw.tag_resource(f"{arn}/{key.name}", tags),
                lambda keys: gw.untag_resource(f"{arn}/{key.name}", keys),
            )

    by_action(
        change,
        create=lambda: gw.create_rule_group(
            ws_id, key.name, str(after["data"]).encode(), after["tags"]
        ),
        update=update,
        delete=lambda: gw.delete_rule_group(ws_id, key.name),
    )


def _role(gw: AwsWriter, change: Change, target: Target) -> None:
    name, after = change.key.name, change.after or {}
    diffs = {d.field: d for d in change.diffs}

    def update() -> None:
        if "boundary" in diffs and after.get("boundary"):  # first: the rest may need it
            gw.put_role_boundary(name, str(after["boundary"]))
        if "trust" in diffs:
            gw.update_trust_policy(name, after["trust"])
        if "tags" in diffs:
            _retag(
                diffs["tags"].before or {},
                diffs["tags"].after or {},
                lambda tags: gw.tag_role(name, tags),
                lambda keys: gw.untag_role(name, keys),
            )

    description = f"Managed by ampd (stack {target.stack})"
    by_action(
        change,
        create=lambda: gw.create_role(
            name, after["trust"], after["tags"], description, after.get("boundary")
        ),
        update=update,
        delete=lambda: gw.delete_role(name),
    )


def _policy(gw: AwsWriter, change: Change) -> None:
    role, _, policy = change.key.name.partition("/")
    if policy.startswith("arn:"):  # a managed policy: attached, not written
        put = lambda: gw.attach_policy(role, policy)  # noqa: E731
        by_action(change, create=put, update=put, delete=lambda: gw.detach_policy(role, policy))
        return

    def write() -> None:
        gw.put_inline_policy(role, policy, (change.after or {})["document"])

    by_action(
        change, create=write, update=write, delete=lambda: gw.delete_inline_policy(role, policy)
    )


def _instance_profile(gw: AwsWriter, change: Change) -> None:
    name, after = change.key.name, change.after or {}
    want = list(after.get("roles") or [])

    def roles(have: list[str]) -> None:
        for role in have:
            if role not in want:
                gw.remove_role_from_instance_profile(name, role)
        for role in want:
            if role not in have:
                gw.add_role_to_instance_profile(name, role)

    def create() -> None:
        gw.create_instance_profile(name, after["tags"])
        roles([])

    def update() -> None:
        if "tags" in {d.field for d in change.diffs}:
            gw.tag_instance_profile(name, after["tags"])
        roles(list((change.before or {}).get("roles") or []))

    by_action(change, create=create, update=update, delete=lambda: gw.delete_instance_profile(name))


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
