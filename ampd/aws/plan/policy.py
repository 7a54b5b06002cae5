"""IAM for ampd: least-privilege policy documents. Pure.

The ARNs (in the region's partition) and the inline policies of the roles ampd *manages*
are in ``ampd.aws.plan.arns`` (re-exported here). This module builds the policies ampd
*itself* needs, which ``ampd policy manage|observe|host|boundary`` prints for an
administrator to install:

  ``manage``    the manager (a CI job or one designated host): AMP and IAM writes, scoped
                to this stack's workspace, roles, instance profile and policy names; a role
                can be created only with the stack's permissions boundary attached
                (``iam:PermissionsBoundary`` condition);
  ``observe``   a host in ``aws.mode: observe`` (or anyone running ``ampd plan``): the
                reads of the sections the state names, and ``iam:SimulatePrincipalPolicy``
                on its own role for the read-only check (``ObserveRoleReadOnly``);
  ``host``      the data plane of a host: ``aps:RemoteWrite`` (and the query actions when
                Grafana queries with the host's role) and the state document with the
                files beside it;
  ``boundary``  the permissions boundary of every role ampd creates: what ``host`` and
                ``observe`` allow the stack's roles, never a control-plane or IAM write.

A fleet host in observe mode carries ``observe`` + ``host``; a manager that also ships its
own metrics carries ``manage`` + ``host``. ``sts:GetCallerIdentity`` needs no permission.
"""

from __future__ import annotations

from typing import Any, Literal

from ampd.aws.plan.arns import (
    QUERY_ACTIONS,
    QUERY_MANAGED_NAME,
    READER_INLINE,
    REMOTE_WRITE_MANAGED_NAME,
    WRITER_INLINE,
    Arns,
    document,
    partition,
    price_list_statement,
    principal_account,
    reader_policy,
    role_arn_of_caller,
    state_files_statement,
    state_read_statement,
    state_statements,
    statement,
    workspace_children,
    writer_policy,
)
from ampd.aws.plan.configuration import configuration_fields
from ampd.aws.plan.inputs import PolicyInputs, boundary_arn
from ampd.spec.models import StateSpec, WorkspaceSpec

__all__ = [
    "QUERY_ACTIONS",
    "READER_INLINE",
    "WRITER_INLINE",
    "Arns",
    "PolicyInputs",
    "RoleKind",
    "boundary_arn",
    "boundary_policy",
    "host_policy",
    "manage_policy",
    "observe_policy",
    "partition",
    "policy_for",
    "principal_account",
    "reader_policy",
    "role_arn_of_caller",
    "state_files_statement",
    "state_read_statement",
    "writer_policy",
]

RoleKind = Literal["manage", "observe", "host", "boundary"]

# -- the policies ampd itself needs --------------------------------------------------------

# section, AMP's name, the verbs while named (logging without a log group is deleted)
_CHILDREN = (
    ("logging", "LoggingConfiguration", ("Create", "Update", "Delete")),
    ("query_logging", "QueryLoggingConfiguration", ("Create", "Update")),
    ("resource_policy", "ResourcePolicy", ("Put",)),
    ("alertmanager", "AlertManagerDefinition", ("Create", "Put")),
)


def _children(ws: WorkspaceSpec, *, writes: bool) -> list[str]:
    """The reads (or the writes) of the children the state names; and, under ``deletion:
    delete``, of every one: a child ampd made and the state no longer names is read and
    deleted (``ampd.aws.observe.read_children``)."""
    deleting = ws.deletion == "delete"
    out: list[str] = []
    for section, name, verbs in _CHILDREN:
        named = getattr(ws, section) is not None
        if not writes:
            out += [f"aps:Describe{name}"] if named or deleting else []
            continue
        out += [f"aps:{v}{name}" for v in verbs] if named else []
        if deleting and f"aps:Delete{name}" not in out:
            out.append(f"aps:Delete{name}")
    return out


def _reads(p: PolicyInputs) -> list[dict[str, Any] | None]:
    """The control-plane reads of one pass over the sections the state names, and the
    Price List its estimate reads."""
    spec, ws_arn, arns = p.spec, p.ws_arn, p.arns
    out: list[dict[str, Any] | None] = []
    ws = spec.workspace
    if ws is not None:
        if ws.id is None:
            out.append(statement("AmpdFindWorkspace", ["aps:ListWorkspaces"], "*"))
        actions = ["aps:DescribeWorkspace"]
        if configuration_fields(spec):
            actions.append("aps:DescribeWorkspaceConfiguration")
        actions += _children(ws, writes=False)
        if ws.rule_groups or ws.deletion == "delete":
            actions.append("aps:ListRuleGroupsNamespaces")
        out.append(statement("AmpdReadWorkspace", actions, ws_arn))
        if ws.rule_groups or ws.deletion == "delete":
            out.append(
                statement(
                    "AmpdReadRuleGroups",
                    ["aps:DescribeRuleGroupsNamespace"],
                    workspace_children(ws_arn),
                )
            )
    roles, profiles = p.named_roles(), p.named_profiles()
    if roles:
        out.append(
            statement(
                "AmpdReadRoles",
                ["iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies"],
                [arns.role(r) for r in roles],
            )
        )
    if profiles:
        out.append(
            statement(
                "AmpdReadInstanceProfile",
                ["iam:GetInstanceProfile"],
                [arns.instance_profile(n) for n in profiles],
            )
        )
    return [*out, *_prices(p)]


def _prices(p: PolicyInputs) -> list[dict[str, Any] | None]:
    """``pricing:GetProducts`` when a pass asks the Price List (``ampd.ingest.observe``):
    the state has a workspace and ``cost.prices`` does not set this Region's prices."""
    cost = p.spec.cost
    if p.spec.workspace is None or (cost is not None and p.arns.region in cost.prices):
        return []
    return [price_list_statement()]


def _own_state(p: PolicyInputs) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for i, location in enumerate(p.state_locations):
        for st in state_statements(location, p.arns.workspace(None)):
            if st is not None:
                out.append({**st, "Sid": st["Sid"].replace("AmpdRead", "AmpdReadOwn") + _n(i)})
    return out


def _n(i: int) -> str:
    return str(i + 1) if i else ""


def manage_policy(p: PolicyInputs) -> dict[str, Any]:
    """What a ``mode: manage`` pass over this state calls, on this stack's resources only."""
    # Long on purpose: the policy document itself: one statement per block, read top to bottom.
    spec, arns, ws_arn = p.spec, p.arns, p.ws_arn
    ws = spec.workspace
    out = _reads(p)
    if ws is not None:
        deleting = ws.deletion == "delete"
        if ws.id is None:
            out.append(
                statement(
                    "AmpdCreateWorkspace",
                    ["aps:CreateWorkspace", "aps:TagResource"],
                    arns.workspace(None),
                    {"StringEquals": {"aws:RequestTag/ampd:stack": spec.stack}},
                )
            )
        actions = ["aps:UpdateWorkspaceAlias", "aps:TagResource", "aps:UntagResource"]
        if deleting:
            actions.append("aps:DeleteWorkspace")
        if configuration_fields(spec):
            actions.append("aps:UpdateWorkspaceConfiguration")
        actions += _children(ws, writes=True)
        if ws.rule_groups:
            actions.append("aps:CreateRuleGroupsNamespace")
        out.append(statement("AmpdWriteWorkspace", actions, ws_arn))
        if ws.rule_groups or deleting:
            actions = ["aps:PutRuleGroupsNamespace", "aps:TagResource", "aps:UntagResource"]
            if deleting:
                actions.append("aps:DeleteRuleGroupsNamespace")
            out.append(statement("AmpdWriteRuleGroups", actions, workspace_children(ws_arn)))
        if ws.logging is not None or ws.query_logging is not None or deleting:
            # AMP vends its logs to CloudWatch Logs (and stops) with the caller's
            # permissions; these actions have no resource-level permissions
            out.append(
                statement(
                    "AmpdVendedLogs",
                    [
                        "logs:CreateLogDelivery",
                        "logs:GetLogDelivery",
                        "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery",
                        "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies",
                        "logs:DescribeLogGroups",
                    ],
                    "*",
                )
            )
    out += _manage_iam(p)
    out += _own_state(p)
    return document(out)


def _manage_iam(p: PolicyInputs) -> list[dict[str, Any] | None]:
    """IAM writes, on the stack's role and instance profile names only, and enforced by IAM
    itself as well as by ampd: a role is created only with the stack's permissions boundary
    and ownership tag; its policies are written only while it carries that boundary (so
    nothing written can exceed it); its trust is changed, and a profile's roles swapped,
    only while it carries the stack's tag."""
    # Long on purpose: the IAM statements, one per block, each scoped to the stack.
    spec, arns = p.spec, p.arns
    roles, profiles = p.roles(), p.profiles()
    if not roles:
        return []
    deleting = spec.workspace is not None and spec.workspace.deletion == "delete"
    role_arns = [arns.role(r) for r in roles]
    within = {"iam:PermissionsBoundary": p.boundary_arn}
    owned = {"aws:ResourceTag/ampd:stack": spec.stack}
    out: list[dict[str, Any] | None] = [
        statement(
            "AmpdCreateRolesWithBoundary",
            ["iam:CreateRole"],
            role_arns,
            {"StringEquals": {**within, "aws:RequestTag/ampd:stack": spec.stack}},
        ),
        statement(
            "AmpdSetBoundary",
            ["iam:PutRolePermissionsBoundary"],
            role_arns,
            {"StringEquals": within},
        ),
        statement(
            "AmpdRolePoliciesWithinBoundary",
            ["iam:PutRolePolicy", "iam:DeleteRolePolicy"],
            role_arns,
            {"StringEquals": within},
        ),
        statement(
            "AmpdAttachAmpPolicies",
            ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
            role_arns,
            {
                "StringEquals": within,
                "ArnEquals": {
                    "iam:PolicyARN": [
                        arns.aws_managed_policy(REMOTE_WRITE_MANAGED_NAME),
                        arns.aws_managed_policy(QUERY_MANAGED_NAME),
                    ]
                },
            },
        ),
        statement(
            "AmpdWriteOwnRoles",
            [
                "iam:UpdateAssumeRolePolicy",
                "iam:UntagRole",
                *(["iam:DeleteRole"] if deleting else []),
            ],
            role_arns,
            {"StringEquals": owned},
        ),
        # creating a role with tags needs it; correcting them, and `ampd adopt`, too
        statement("AmpdTagRoles", ["iam:TagRole"], role_arns),
    ]
    if deleting:
        out.append(
            statement(
                "AmpdListForDeletion",
                ["iam:ListRolePolicies", "iam:ListInstanceProfilesForRole"],
                role_arns,
            )
        )
    if profiles:
        profile_arns = [arns.instance_profile(n) for n in profiles]
        out.append(
            statement(
                "AmpdCreateInstanceProfile",
                ["iam:CreateInstanceProfile"],
                profile_arns,
                {"StringEquals": {"aws:RequestTag/ampd:stack": spec.stack}},
            )
        )
        out.append(statement("AmpdTagInstanceProfile", ["iam:TagInstanceProfile"], profile_arns))
        actions = ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"]
        if deleting:
            actions.append("iam:DeleteInstanceProfile")
        out.append(
            statement("AmpdWriteOwnInstanceProfile", actions, profile_arns, {"StringEquals": owned})
        )
        iam = spec.iam
        assert iam is not None and iam.writer is not None
        # adding a role to an instance profile passes it
        writer = arns.role(iam.writer.role_name)
        out.append(statement("AmpdPassWriterRole", ["iam:PassRole"], writer))
    return out


def observe_policy(p: PolicyInputs) -> dict[str, Any]:
    """What a ``mode: observe`` pass (or ``ampd plan``) over this state reads, and the
    read-only check of the host's own role."""
    out = _reads(p)
    if p.own_role is not None:
        out.append(
            statement(
                "AmpdCheckOwnRoleReadOnly",
                ["iam:SimulatePrincipalPolicy"],
                p.arns.role(p.own_role),
            )
        )
    out += _own_state(p)
    return document(out)


def _assumed_roles(spec: StateSpec) -> list[str]:
    out: list[str] = []
    if spec.proxy is not None and spec.proxy.assume_role_arn:
        out.append(spec.proxy.assume_role_arn)
    grafana = spec.grafana
    if grafana is not None and grafana.enabled and grafana.datasource.assume_role_arn:
        out.append(grafana.datasource.assume_role_arn)
    return sorted(set(out))


def host_policy(p: PolicyInputs) -> dict[str, Any]:
    """The data plane of a host running this state, and the state it reads."""
    spec, ws_arn = p.spec, p.ws_arn
    out: list[dict[str, Any] | None] = []
    prom = spec.prometheus
    if spec.workspace is not None and prom is not None and prom.enabled and prom.remote_write:
        out.append(statement("AmpdRemoteWrite", ["aps:RemoteWrite"], ws_arn))
    grafana = spec.grafana
    own_role = (
        grafana is not None
        and grafana.datasource.assume_role_arn is None
        and grafana.datasource.auth != "keys"  # keys: Grafana signs with those, not the role
    )
    if grafana is not None and grafana.enabled and spec.workspace is not None and own_role:
        out.append(statement("AmpdQuery", QUERY_ACTIONS, ws_arn))
    assumed = _assumed_roles(spec)
    if assumed:
        out.append(statement("AmpdAssumeRoles", ["sts:AssumeRole"], assumed))
    out += _own_state(p)
    return document(out)


def boundary_policy(p: PolicyInputs) -> dict[str, Any]:
    """The permissions boundary of the roles ampd creates: writing samples, querying and
    reading this stack's workspace, the fleet's state (``state_source.location``) with its
    files, and the read-only check of themselves. Never a control-plane or IAM write."""
    spec, arns = p.spec, p.arns
    ws_arn = p.ws_arn
    out: list[dict[str, Any] | None] = [
        statement("AmpdRemoteWrite", ["aps:RemoteWrite"], ws_arn),
        statement("AmpdQuery", QUERY_ACTIONS, ws_arn),
    ]
    out += _reads(p)
    if p.roles():
        out.append(
            statement(
                "AmpdCheckOwnRoleReadOnly",
                ["iam:SimulatePrincipalPolicy"],
                [arns.role(r) for r in p.roles()],
            )
        )
    out += state_statements(spec.state_source.location, arns.workspace(None))
    return document(out)


def policy_for(kind: RoleKind, p: PolicyInputs) -> dict[str, Any]:
    match kind:
        case "manage":
            return manage_policy(p)
        case "observe":
            return observe_policy(p)
        case "host":
            return host_policy(p)
        case "boundary":
            return boundary_policy(p)
