"""IAM writes through the AWS gateway: roles, inline and managed policies, instance
profiles. Held only by an ``AwsWriter`` (``ampd.aws.gateway.writer``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampd.aws.gateway.base import AwsBase, NotFound, policy_json, tag_list
from ampd.aws.gateway.iam import IamReads


class IamWrites(AwsBase):
    _reader: IamReads  # the session's reader: a delete reads what it must detach first

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
            inline = self._reader.list_inline_policies(name)
        except NotFound:
            return
        for policy in inline:
            self.delete_inline_policy(name, policy)
        for arn in self._reader.list_attached_policies(name):
            self.detach_policy(name, arn)
        pages = self._iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name)
        for page in self._pages("iam", "ListInstanceProfilesForRole", pages):
            for profile in page.get("InstanceProfiles", []):
                self.remove_role_from_instance_profile(profile["InstanceProfileName"], name)
        self._delete("iam", "DeleteRole", lambda: self._iam.delete_role(RoleName=name))

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
        profile = self._reader.get_instance_profile(name)
        for role in profile["Roles"] if profile else []:
            self.remove_role_from_instance_profile(name, role)
        self._delete(
            "iam",
            "DeleteInstanceProfile",
            lambda: self._iam.delete_instance_profile(InstanceProfileName=name),
        )
