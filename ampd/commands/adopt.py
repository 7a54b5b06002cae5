"""``ampd adopt KIND NAME``: the one explicit way an existing IAM role or instance profile
that ampd did not create becomes this stack's.

ampd never writes an IAM resource without its stack's ownership tags (``ampd:managed=true``,
``ampd:stack=<stack>``): ``plan`` reports one as ``skipped (exists, not created by ampd)``.
Adoption shows first what taking it over means (the tags it gets, then every change ampd's
next pass makes to it: its trust policy, its policies, the roles of an instance profile),
asks, and then writes the two tags and nothing else. The next ``ampd apply`` (or the
daemon's next pass) does the rest, as for any resource of the stack.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TextIO

from ampd.aws.gateway.client import AwsReader, make_gateway
from ampd.aws.gateway.writer import AwsWriting
from ampd.aws.model import Desired, Live, Policy, Unreadable, ampd_tags, policy_from_spec
from ampd.aws.observe import ObservedCache, find_workspace, read_children
from ampd.aws.plan.desired import desired_iam, workspace_arn
from ampd.aws.plan.resources import plan_resources
from ampd.core import Change, Kind, Plan, ResourceKey
from ampd.engine.plantext import plan_text
from ampd.engine.source import SpecSource
from ampd.errors import AmpdError, PermanentError
from ampd.source.specfile import load_and_check
from ampd.spec.models import StateSpec

__all__ = ["KINDS", "AdoptKind", "Adoption", "adopt_command", "adopt_main", "preview"]

AdoptKind = Literal["iam_role", "instance_profile"]
KINDS: dict[str, Kind] = {"iam_role": Kind.IAM_ROLE, "instance_profile": Kind.INSTANCE_PROFILE}


@dataclass(frozen=True)
class Adoption:
    """What adopting one resource means: the tags it gets and what the next pass changes."""

    key: ResourceKey
    arn: str
    tags_before: dict[str, str]
    tags_after: dict[str, str]
    then: tuple[Change, ...]  # the next pass's changes to it (and to its policies)
    notes: tuple[str, ...] = ()  # what the next pass still will not do, and why


def _related(key: ResourceKey, desired: list[Desired]) -> list[Desired]:
    """The resource and what hangs off it: a role's policies."""
    out = [d for d in desired if d.key == key]
    if key.kind is Kind.IAM_ROLE:
        out += [
            d
            for d in desired
            if d.key.kind is Kind.IAM_POLICY and d.key.name.partition("/")[0] == key.name
        ]
    return out


def preview(gw: AwsReader, spec: StateSpec, kind: AdoptKind, name: str, account: str) -> Adoption:
    """Reads only. Raises PermanentError when the resource cannot or need not be adopted."""
    key = ResourceKey(KINDS[kind], name)
    if spec.iam is None:
        raise PermanentError("the state has no iam section: there is nothing to adopt into")
    ws_arn = workspace_arn(gw.region, account, None)
    if spec.workspace is not None:
        found = find_workspace(gw, spec, None).live
        if isinstance(found, Live) and found.details.get("arn"):
            ws_arn = str(found.details["arn"])
    desired = list(desired_iam(spec, account=account, ws_arn=ws_arn).resources)
    mine = _related(key, desired)
    if not mine:
        raise PermanentError(
            f"the state does not name {kind} {name}: only a resource the state names can be adopted"
        )
    if not mine[0].managed:
        raise PermanentError(f"{key}: {mine[0].note}; ampd only reads it, there is no need")
    observed, _ = read_children(
        gw,
        stack=spec.stack,
        workspace=None,
        desired=[*desired],
        previously_applied=(),
        cache=ObservedCache(),
    )
    live = observed.get(key)
    if isinstance(live, Unreadable):
        raise PermanentError(f"{key} cannot be read: {live.error}")
    if live is None:
        raise PermanentError(
            f"{key} does not exist: ampd creates it, with its tags, on its next pass"
        )
    if live.stack == spec.stack:
        raise PermanentError(f"{key} is already ampd's (stack {spec.stack}); nothing to adopt")
    if live.stack is not None:
        raise PermanentError(f"{key} belongs to ampd stack {live.stack!r}; it is not adopted")
    tags = {**live.tags, **ampd_tags(spec.stack)}
    owned = dict(observed)
    owned[key] = replace(live, tags=tags, fields={**live.fields, "tags": tags})
    for k, v in observed.items():  # a role's policies carry the role's tags
        if isinstance(v, Live) and k.kind is Kind.IAM_POLICY and k.name.startswith(name + "/"):
            owned[k] = replace(v, tags=tags)
    plan = plan_resources(mine, owned, {}, _manage(policy_from_spec(spec)))
    notes = tuple(f"{s.key}: {s.reason}" for s in plan.skipped)
    arn = str(live.details.get("arn") or "")
    return Adoption(key, arn, dict(live.tags), tags, plan.changes, notes)


def _manage(policy: Policy) -> Policy:
    return replace(policy, mode="manage", drift="correct")


def _describe(a: Adoption, stack: str) -> str:
    lines = [f"{a.key} ({a.arn}) exists, not created by ampd.", f"Adopting it into stack {stack}:"]
    for k, v in sorted(a.tags_after.items()):
        if a.tags_before.get(k) != v:
            lines.append(f"+ tag {k} = {v}")
    if a.then:
        lines.append("and ampd's next pass then makes these changes to it:")
        lines.append(plan_text(Plan(changes=a.then), color=False).rstrip("\n"))
    else:
        lines.append("ampd's next pass then changes nothing else: it is as the state asks.")
    for note in a.notes:
        lines.append(f"! still not written: {note}")
    return "\n".join(lines) + "\n"


def adopt_command(
    gateway: Callable[[], AwsReader],
    spec: StateSpec,
    kind: AdoptKind,
    name: str,
    *,
    writing: AwsWriting,
    account: str | None,
    yes: bool,
    stdin: TextIO,
    stdout: TextIO,
) -> int:
    """Shows the diff, asks (unless ``yes``), then tags. 0 adopted, 1 not (refused, not
    confirmed, or an error)."""
    try:
        gw = gateway()
        acct = account or gw.identity().account
        adoption = preview(gw, spec, kind, name, acct)
    except AmpdError as e:
        stdout.write(f"ampd adopt: {e}\n")
        return 1
    stdout.write(_describe(adoption, spec.stack))
    if not yes:
        stdout.write(f"Adopt {adoption.key} into stack {spec.stack}? [y/N] ")
        stdout.flush()
        answer = stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            stdout.write("\nnot adopted: nothing was written\n")
            return 1
    new = {k: v for k, v in adoption.tags_after.items() if adoption.tags_before.get(k) != v}
    try:
        writer = writing.writer(gw)
        if adoption.key.kind is Kind.IAM_ROLE:
            writer.tag_role(name, new)
        else:
            writer.tag_instance_profile(name, new)
    except AmpdError as e:
        stdout.write(f"ampd adopt: {e}\n")
        return 1
    stdout.write(
        f"adopted {adoption.key}: `ampd apply` (or the daemon's next pass) does the rest\n"
    )
    return 0


def adopt_main(
    state: Path | SpecSource, kind: AdoptKind, name: str, *, yes: bool, region: str | None
) -> int:
    """What the CLI runs: the spec from ``--state``, the region as ``ampd policy`` finds it."""
    from ampd.commands.policy import region_of  # noqa: PLC0415 (a sibling command)

    spec = load_and_check(state, run_promtool=False).spec
    where = region_of(spec, region)
    if where is None:
        sys.stderr.write("ampd adopt: the region is not known: set aws.region or pass --region\n")
        return 1
    endpoint = spec.aws_or_default.endpoint_url
    return adopt_command(
        lambda: make_gateway(where, endpoint),
        spec,
        kind,
        name,
        writing=AwsWriting(),  # the command asks before it writes
        account=None,
        yes=yes,
        stdin=sys.stdin,
        stdout=sys.stdout,
    )
