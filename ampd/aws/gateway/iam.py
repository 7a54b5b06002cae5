"""IAM through the AWS gateway: roles, inline and managed policies, instance profiles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ampd.aws.gateway.base import AwsBase, NotFound, policy_json, tag_dict, tag_list


class IamApi(AwsBase):
    # -- IAM roles and policies -------------------------------------------------------------

    def get_role(self, name: str) -> dict[str, Any] | None:
        """Arn, trust policy (``AssumeRolePolicyDocument``, a dict) and ``Tags`` (a dict)."""
        r = self._get("iam", "GetRole", lambda: self._iam.get_role(RoleName=name))
        if r is None:
            return None
        role: dict[str, Any] = dict(r["Role"])
        role["Tags"] = tag_dict(role.get("Tags"))
        return role

    def create_role(
        self,
        name: str,
        trust: Mapping[str, Any],
        tags: Mapping[str, str],
        description: str,
        boundary: str | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {
            "RoleName": name,
            "AssumeRolePolicyDocument": policy_json(trust),
            "Description": description,
            "Tags": tag_list(tags),
        }
        if boundary is not None:
            kwargs["PermissionsBoundary"] = boundary
        r = self._call("iam", "CreateRole", lambda: self._iam.create_role(**kwargs))
        return r["Role"]["Arn"]

    def put_role_boundary(self, name: str, boundary: str) -> None:
        self._call(
            "iam",
            "PutRolePermissionsBoundary",
            lambda: self._iam.put_role_permissions_boundary(
                RoleName=name, PermissionsBoundary=boundary
            ),
        )

    def update_trust_policy(self, name: str, trust: Mapping[str, Any]) -> None:
        self._call(
            "iam",
            "UpdateAssumeRolePolicy",
            lambda: self._iam.update_assume_role_policy(
                RoleName=name, PolicyDocument=policy_json(trust)
            ),
        )

    def tag_role(self, name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam",
            "TagRole",
            lambda: self._iam.tag_role(RoleName=name, Tags=tag_list(tags)),  # type: ignore[arg-type]
        )

    def untag_role(self, name: str, keys: list[str]) -> None:
        self._call("iam", "UntagRole", lambda: self._iam.untag_role(RoleName=name, TagKeys=keys))

    def delete_role(self, name: str) -> None:
        """Deletes the role after detaching everything that would block it (every page of
        each list: a policy left behind makes DeleteRole fail with DeleteConflict). A role
        that is already gone is done."""
        try:
            inline = self.list_inline_policies(name)
        except NotFound:
            return
        for policy in inline:
            self.delete_inline_policy(name, policy)
        for arn in self.list_attached_policies(name):
            self.detach_policy(name, arn)
        pages = self._iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name)
        for page in self._pages("iam", "ListInstanceProfilesForRole", pages):
            for profile in page.get("InstanceProfiles", []):
                self.remove_role_from_instance_profile(profile["InstanceProfileName"], name)
        self._delete("iam", "DeleteRole", lambda: self._iam.delete_role(RoleName=name))

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

    def put_inline_policy(self, role: str, policy: str, doc: Mapping[str, Any]) -> None:
        self._call(
            "iam",
            "PutRolePolicy",
            lambda: self._iam.put_role_policy(
                RoleName=role, PolicyName=policy, PolicyDocument=policy_json(doc)
            ),
        )

    def delete_inline_policy(self, role: str, policy: str) -> None:
        self._delete(
            "iam",
            "DeleteRolePolicy",
            lambda: self._iam.delete_role_policy(RoleName=role, PolicyName=policy),
        )

    def list_attached_policies(self, role: str) -> list[str]:
        pages = self._iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
        return [
            p["PolicyArn"]
            for page in self._pages("iam", "ListAttachedRolePolicies", pages)
            for p in page.get("AttachedPolicies", [])
        ]

    def attach_policy(self, role: str, arn: str) -> None:
        self._call(
            "iam",
            "AttachRolePolicy",
            lambda: self._iam.attach_role_policy(RoleName=role, PolicyArn=arn),
        )

    def detach_policy(self, role: str, arn: str) -> None:
        self._delete(
            "iam",
            "DetachRolePolicy",
            lambda: self._iam.detach_role_policy(RoleName=role, PolicyArn=arn),
        )

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

    # -- IAM instance profiles --------------------------------------------------------------

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

    def create_instance_profile(self, name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam",
            "CreateInstanceProfile",
            lambda: self._iam.create_instance_profile(
                InstanceProfileName=name,
                Tags=tag_list(tags),  # type: ignore[arg-type]
            ),
        )

    def tag_instance_profile(self, name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam",
            "TagInstanceProfile",
            lambda: self._iam.tag_instance_profile(
                InstanceProfileName=name,
                Tags=tag_list(tags),  # type: ignore[arg-type]
            ),
        )

    def add_role_to_instance_profile(self, name: str, role: str) -> None:
        self._call(
            "iam",
            "AddRoleToInstanceProfile",
            lambda: self._iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role),
        )

    def remove_role_from_instance_profile(self, name: str, role: str) -> None:
        self._delete(
            "iam",
            "RemoveRoleFromInstanceProfile",
            lambda: self._iam.remove_role_from_instance_profile(
                InstanceProfileName=name, RoleName=role
            ),
        )

    def delete_instance_profile(self, name: str) -> None:
        profile = self.get_instance_profile(name)
        for role in profile["Roles"] if profile else []:
            self.remove_role_from_instance_profile(name, role)
        self._delete(
            "iam",
            "DeleteInstanceProfile",
            lambda: self._iam.delete_instance_profile(InstanceProfileName=name),
        )
