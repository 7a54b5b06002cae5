"""What a policy for ampd depends on (:class:`PolicyInputs`) and the permissions
boundary's ARN. Pure; re-exported by ``ampd.aws.plan.policy``."""

from __future__ import annotations

from dataclasses import dataclass

from ampd.aws.plan.arns import Arns
from ampd.spec.models import StateSpec

__all__ = ["PolicyInputs", "boundary_arn"]


def _boundary_name(stack: str) -> str:
    return f"ampd-boundary-{stack}"


@dataclass(frozen=True)
class PolicyInputs:
    """What a policy for ampd depends on: the state, where it is read from, the account
    and region, and the workspace when it is known."""

    spec: StateSpec
    arns: Arns
    workspace_id: str | None = None
    state_locations: tuple[str, ...] = ()  # ssm:/s3:// documents this role reads
    own_role: str | None = None  # observe: the role it runs as (SimulatePrincipalPolicy)

    @property
    def ws_arn(self) -> str:
        ws = self.spec.workspace
        ws_id = self.workspace_id or (ws.id if ws is not None else None)
        return self.arns.workspace(ws_id)

    @property
    def boundary_arn(self) -> str:
        return boundary_arn(self.spec, self.arns)

    def roles(self) -> list[str]:
        """Role names the manager manages."""
        iam = self.spec.iam
        out: list[str] = []
        if iam is not None and iam.writer is not None and iam.writer.manage:
            out.append(iam.writer.role_name)
        if iam is not None and iam.reader is not None and iam.reader.manage:
            out.append(iam.reader.role_name)
        return out

    def profiles(self) -> list[str]:
        iam = self.spec.iam
        if iam is None or iam.writer is None or not iam.writer.manage:
            return []
        return [iam.writer.instance_profile] if iam.writer.instance_profile else []

    def named_roles(self) -> list[str]:
        """Every role the state names (managed or only observed)."""
        iam = self.spec.iam
        out: list[str] = []
        if iam is not None and iam.writer is not None:
            out.append(iam.writer.role_name)
        if iam is not None and iam.reader is not None:
            out.append(iam.reader.role_name)
        return out

    def named_profiles(self) -> list[str]:
        iam = self.spec.iam
        if iam is None or iam.writer is None or not iam.writer.instance_profile:
            return []
        return [iam.writer.instance_profile]


def boundary_arn(spec: StateSpec, arns: Arns) -> str:
    """The permissions boundary every role ampd creates carries: ``iam.permissions_boundary``
    (a policy name in this account, or an ARN), else ``ampd-boundary-<stack>``."""
    iam = spec.iam
    name = iam.permissions_boundary if iam is not None else None
    if name is None:
        return arns.policy(_boundary_name(spec.stack))
    return name if name.startswith("arn:") else arns.policy(name)
