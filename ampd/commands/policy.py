"""``ampd policy manage|observe|host|boundary``: the least-privilege IAM policy ampd needs,
as JSON, built by :mod:`ampd.aws.plan.policy` from the state and what is known of the
account (``--account``, else STS, which needs no permission), the region and the
workspace (``--workspace-id``, ``workspace.id`` or ampd.json's record; else every
workspace of the region and account, ``workspace/*``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ampd.aws.gateway.client import AwsReader, make_gateway
from ampd.aws.plan.policy import Arns, PolicyInputs, RoleKind, boundary_arn, policy_for
from ampd.engine.source import SpecSource
from ampd.errors import AmpdError
from ampd.gateways.appconfigids import is_ids, resolve_ids
from ampd.gateways.paths import Paths
from ampd.gateways.store import StoreView
from ampd.source.specfile import load_and_check, source_name
from ampd.spec.models import StateSpec

__all__ = ["ROLE_KINDS", "policy_command", "policy_main", "region_of"]

ROLE_KINDS: tuple[RoleKind, ...] = ("manage", "observe", "host", "boundary")


def policy_command(
    spec: StateSpec,
    kind: RoleKind,
    *,
    region: str | None,
    account: str | None,
    gateway: Callable[[str], AwsReader],
    store: StoreView | None = None,
    workspace_id: str | None = None,
    own_role: str | None = None,
    state_location: str | None = None,
    appconfig_ids: Callable[[str, str], str] | None = None,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Prints the policy document on ``stdout`` and what to do with it on ``stderr``.
    0 printed, 1 not (region or account unknown, or nothing to grant). An AppConfig state
    named by names is scoped by the ids ``appconfig_ids(location, region)`` finds."""
    if region is None:
        stderr.write("ampd policy: the region is not known: set aws.region or pass --region\n")
        return 1
    if state_location and state_location.startswith("appconfig:"):
        found = _appconfig_ids(state_location, region, appconfig_ids, stderr)
        if found is None:
            return 1
        state_location = found
    if account is None:
        try:
            account = gateway(region).identity().account
        except AmpdError as e:
            stderr.write(f"ampd policy: the account is not known ({e}): pass --account\n")
            return 1
    arns = Arns.of(region, account)
    if workspace_id is None and store is not None and spec.workspace is not None:
        record = store.load().workspace
        if record is not None and record.region == region:
            workspace_id = record.id
    if own_role is None and spec.iam is not None and spec.iam.writer is not None:
        own_role = spec.iam.writer.role_name
    inputs = PolicyInputs(
        spec,
        arns,
        workspace_id,
        state_locations=(state_location,) if state_location else (),
        own_role=own_role,
    )
    doc = policy_for(kind, inputs)
    if not doc["Statement"]:
        stderr.write(f"ampd policy: a {kind} role needs no permission for this state\n")
        return 1
    stdout.write(json.dumps(doc, indent=2) + "\n")
    for note in _notes(kind, inputs):
        stderr.write(f"ampd policy: {note}\n")
    return 0


def _appconfig_ids(
    location: str,
    region: str,
    resolve: Callable[[str, str], str] | None,
    stderr: TextIO,
) -> str | None:
    """The AppConfig location with ids (IAM scopes the Data API by id): looked up by
    ``resolve``; when that fails, a location that already reads as ids is taken as it is."""
    try:
        if resolve is None:
            raise AmpdError("no way to look up AppConfig ids here")
        return resolve(location, region)
    except AmpdError as e:
        if is_ids(location):
            stderr.write(f"ampd policy: {e}; taking {location} as ids\n")
            return location
        stderr.write(
            f"ampd policy: IAM scopes AppConfig by id, and {e}: pass --state"
            " appconfig:APP_ID/ENV_ID/PROFILE_ID\n"
        )
        return None


def _notes(kind: RoleKind, p: PolicyInputs) -> list[str]:
    out: list[str] = []
    ws = p.spec.workspace
    if ws is not None and p.workspace_id is None and ws.id is None:
        out.append(
            "the workspace id is not known here (no workspace.id, ampd.json record or "
            f"--workspace-id): the policy covers every workspace of {p.arns.region} in "
            f"{p.arns.account} (workspace/*); print it again once the workspace exists"
        )
    if kind == "manage" and p.roles():
        out.append(
            f"the roles it creates must carry the permissions boundary {p.boundary_arn}: "
            "create that policy from `ampd policy boundary`"
        )
    if kind == "boundary":
        name = boundary_arn(p.spec, p.arns).rpartition("/")[2]
        out.append(
            f"create it as the customer managed policy {name} "
            f"(aws iam create-policy --policy-name {name} --policy-document file://...)"
        )
    if kind == "observe" and p.own_role is None:
        out.append(
            "pass --role NAME (the host's instance role) to let it check that it is "
            "read-only (iam:SimulatePrincipalPolicy on itself)"
        )
    return out


def region_of(spec: StateSpec, given: str | None) -> str | None:
    """``--region``, else ``aws.region``, else (``auto``) instance metadata or botocore's."""
    from ampd.aws.side.side import default_region  # noqa: PLC0415 (IMDS only when needed)

    if given:
        return given
    region = spec.aws_or_default.region
    return region if region != "auto" else default_region()


def policy_main(
    state: Path | SpecSource,
    paths: Paths,
    kind: RoleKind,
    *,
    account: str | None,
    region: str | None,
    workspace_id: str | None,
    role: str | None,
) -> int:
    """What the CLI runs: the spec and the store from their usual places."""
    spec = load_and_check(state, run_promtool=False).spec
    endpoint = spec.aws_or_default.endpoint_url
    return policy_command(
        spec,
        kind,
        region=region_of(spec, region),
        account=account,
        gateway=lambda r: make_gateway(r, endpoint),
        store=StoreView(paths.store),
        workspace_id=workspace_id,
        own_role=role,
        state_location=source_name(state),
        appconfig_ids=lambda loc, r: resolve_ids(loc, r, endpoint),
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
