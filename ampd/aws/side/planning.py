"""The AWS side's plan: two waves, decided purely from what observe saw.

::

    wave 1  the workspace: create, update, or (section removed) delete of ours
    wave 2  what hangs off it (configuration, logging, rule groups, alert manager) and IAM

While the workspace does not exist, wave 2 plans its AMP children as creates on
``(known after apply)`` (and IAM on the workspace's placeholder ARN); apply plans wave 2
again once wave 1 has made it. While it is not ACTIVE, its children wait.
"""

from __future__ import annotations

from collections.abc import Mapping

from ampd.aws.gateway.client import Identity
from ampd.aws.model import (
    AMP_CHILDREN,
    Desired,
    DesiredSet,
    Live,
    Unreadable,
    policy_from_spec,
    workspace_key,
)
from ampd.aws.plan.desired import (
    desired_iam,
    desired_workspace,
    desired_workspace_children,
    workspace_arn,
)
from ampd.aws.plan.resources import plan_resources
from ampd.aws.side.values import AwsPlan, AwsSeen, Children, Wave
from ampd.core import Kind, ResourceKey
from ampd.gateways.store import StoredState
from ampd.spec.models import StateSpec

__all__ = ["AMP_CHILDREN", "plan_pass", "plan_wave1", "plan_wave2", "wave2_desired"]


def plan_pass(spec: StateSpec, seen: AwsSeen) -> AwsPlan:
    if seen.failure is not None or seen.identity is None or seen.region is None:
        return AwsPlan(spec)
    wave1, forget1 = plan_wave1(spec, seen)
    lookup = seen.workspace.lookup
    ws_observed = lookup.live if lookup is not None else None
    wave2, forget2 = plan_wave2(
        spec,
        seen.region,
        seen.identity,
        ws_observed,
        seen.files,
        seen.children,
        seen.stored,
    )
    return AwsPlan(spec, wave1, wave2, (*forget1, *forget2))


def plan_wave1(spec: StateSpec, seen: AwsSeen) -> tuple[Wave, tuple[str, ...]]:
    key = workspace_key(spec)
    policy = policy_from_spec(spec)
    if spec.workspace is None:
        if seen.workspace.orphan_gone:  # gone, or AWS is deleting it: nothing left to do
            return Wave(), (str(key),)
        orphan = seen.workspace.orphan
        if orphan is None:
            return Wave(), ()
        return Wave(plan=plan_resources([], {}, seen.stored.applied, policy, [orphan])), ()
    desired = desired_workspace(spec)
    assert desired is not None and seen.workspace.lookup is not None
    observed = {key: seen.workspace.lookup.live}
    plan = plan_resources([desired], observed, seen.stored.applied, policy)
    return Wave({key: desired}, observed, plan=plan), ()


def wave2_desired(
    spec: StateSpec,
    region: str,
    identity: Identity,
    ws_live: Live | None,
    files: Mapping[str, bytes | None],
) -> tuple[DesiredSet, DesiredSet]:
    """The workspace's children and IAM as the spec wants them, on this workspace (its
    placeholder ARN while it does not exist)."""
    ws_arn = (
        str(ws_live.details["arn"])
        if ws_live is not None
        else workspace_arn(region, identity.account, None)
    )
    children = desired_workspace_children(spec, files, ws_arn)
    return children, desired_iam(spec, account=identity.account, ws_arn=ws_arn)


def plan_wave2(
    spec: StateSpec,
    region: str,
    identity: Identity,
    ws_observed: Live | Unreadable | None,
    files: Mapping[str, bytes | None],
    seen: Children,
    stored: StoredState,
) -> tuple[Wave, tuple[str, ...]]:
    """``ws_observed``: the workspace as read (None: it does not exist yet)."""
    ws_live = ws_observed if isinstance(ws_observed, Live) and spec.workspace else None
    active = ws_live is not None and ws_live.status == "ACTIVE"
    children, iam = wave2_desired(spec, region, identity, ws_live, files)
    desired: dict[ResourceKey, Desired] = {}
    observed: dict[ResourceKey, Live | Unreadable | None] = {}
    waiting: dict[ResourceKey, str] = {}
    for d in children.resources:
        desired[d.key] = d
        if ws_live is None:
            if isinstance(ws_observed, Unreadable) or spec.workspace is None:
                waiting[d.key] = "the workspace could not be read"
            else:
                observed[d.key] = None  # no workspace yet: everything is to be created
        elif not active:
            waiting[d.key] = f"waiting for the workspace ({ws_live.status})"
    for d in iam.resources:
        desired[d.key] = d
    observed.update(seen.observed)
    forget = tuple(
        str(k) for k, v in seen.observed.items() if v is None and k not in desired
    )  # gone: nothing left to remember
    # a configuration no longer asked for stays as AMP holds it: nothing to remember
    forget += tuple(str(o.key) for o in seen.orphans if o.key.kind is Kind.WORKSPACE_CONFIGURATION)
    planned = [d for d in desired.values() if d.key not in waiting]
    plan = plan_resources(
        planned, observed, stored.applied, policy_from_spec(spec), list(seen.orphans)
    )
    return Wave(desired, observed, dict(children.errors), waiting, plan), forget
