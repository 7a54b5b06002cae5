"""IAM reads through the AWS gateway: roles, inline and managed policies, instance profiles.

The writes are in ``ampd.aws.gateway.iam_writes``."""

from __future__ import annotations

import json
from typing import Any

from ampd.aws.gateway.base import AwsBase, tag_dict


class IamReads(AwsBase):
    def get_role(self, name: str) -> dict[str, Any] | None:
        """Arn, trust policy (``AssumeRolePolicyDocument``, a dict) and ``Tags`` (a dict)."""
        r = self._get("iam", "GetRole", lambda: self._iam.get_role(RoleName=name))
        if r is None:
            return None
        role: dict[str, Any] = dict(r["Role"])
        role["Tags"] = tag_dict(role.get("Tags"))
        return role

    def get_inline_policy(self, role: str, policy: str) -> dict[str, Any] | None:
        r = self._get(
            "iam",
            "GetRolePolicy",
            lambda: self._iam.get_role_policy(RoleName=role, PolicyName=policy),
        )
        if r is None:
            return None
        doc = r["PolicyDocument"]
        return dict(json.loads(doc)) if isinstance(doc, str) else dict(doc)

    def list_inline_policies(self, role: str) -> list[str]:
        pages = self._iam.get_paginator("list_role_policies").paginate(RoleName=role)
        return [
            n
            for page in self._pages("iam", "ListRolePolicies", pages)
            for n in page.get("PolicyNames", [])
        ]

    def list_attached_policies(self, role: str) -> list[str]:
        pages = self._iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
        return [
            p["PolicyArn"]
            for page in self._pages("iam", "ListAttachedRolePolicies", pages)
            for p in page.get("AttachedPolicies", [])
        ]

    def simulate_principal_policy(
        self, principal_arn: str, actions: list[str], resources: list[str]
    ) -> dict[str, str]:
        """``iam:SimulatePrincipalPolicy``: each action's decision (``allowed``,
        ``explicitDeny``, ``implicitDeny``) for the principal's own policies, on every
        resource in ``resources`` (allowed only when allowed on all of them). Read-only."""
        out: dict[str, str] = {}
        pages = self._iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=principal_arn, ActionNames=actions, ResourceArns=resources
        )
        for page in self._pages("iam", "SimulatePrincipalPolicy", pages):
            for result in page.get("EvaluationResults", []):
                action = str(result["EvalActionName"])
                decisions = [str(result.get("EvalDecision") or "implicitDeny")]
                decisions += [
                    str(x.get("EvalResourceDecision") or "implicitDeny")
                    for x in result.get("ResourceSpecificResults") or []
                ]
                worst = (
                    "allowed"
                    if all(d == "allowed" for d in decisions)
                    else ("explicitDeny" if "explicitDeny" in decisions else "implicitDeny")
                )
                if out.get(action, "allowed") == "allowed":
                    out[action] = worst
        return out

    def get_instance_profile(self, name: str) -> dict[str, Any] | None:
        """Arn, ``Roles`` (role names) and ``Tags`` (a dict)."""
        r = self._get(
            "iam",
            "GetInstanceProfile",
            lambda: self._iam.get_instance_profile(InstanceProfileName=name),
        )
        if r is None:
            return None
        profile = r["InstanceProfile"]
        return {
            "Arn": profile["Arn"],
            "Roles": [role["RoleName"] for role in profile.get("Roles", [])],
            "Tags": tag_dict(list(profile.get("Tags", []))),
        }
