"""IAM in the emulator's layer: list paging as AWS does it, and reads of moto's backend.

moto answers some of the lists ampd reads whole, whatever ``MaxItems`` and ``Marker``
say. The emulator asks moto for the whole list and cuts the page here (``IsTruncated`` +
``Marker``), from moto's own XML, so every member keeps what moto puts in it. The
principal's policies (for SimulatePrincipalPolicy) and a request's IAM context (tags,
boundary) are read from moto's in-process backend.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from tests.harness.aws_wire import ACCOUNT_ID, moto_tags

# operation -> the list element in its result
PAGED_LISTS = {
    "ListRolePolicies": "PolicyNames",
    "ListAttachedRolePolicies": "AttachedPolicies",
    "ListInstanceProfilesForRole": "InstanceProfiles",
}
NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def limit_of(form: Mapping[str, str], size: int | None) -> int | None:
    """The page size: the smaller of the caller's ``MaxItems`` and the emulator's."""
    asked = int(form["MaxItems"]) if form.get("MaxItems", "").isdigit() else None
    sizes = [n for n in (asked, size) if n is not None]
    return min(sizes) if sizes else None


def marker_offset(marker: str | None) -> int:
    if not marker:
        return 0
    try:
        return int(base64.urlsafe_b64decode(marker.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return -1


def make_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def whole_request(body: bytes) -> bytes:
    """The request without ``MaxItems`` and ``Marker``: moto answers the whole list."""
    pairs = urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k not in ("MaxItems", "Marker")]
    return urllib.parse.urlencode(kept).encode()


def cut_page(operation: str, xml: bytes, offset: int, limit: int) -> bytes:
    """moto's whole-list answer cut to ``limit`` members from ``offset``."""
    ET.register_namespace("", NS)
    root = ET.fromstring(xml)  # noqa: S314 (moto's own answer, on loopback)
    result = root.find(f"{{{NS}}}{operation}Result")
    if result is None:
        return xml
    holder = result.find(f"{{{NS}}}{PAGED_LISTS[operation]}")
    members = list(holder) if holder is not None else []
    if holder is not None:
        for m in members:
            holder.remove(m)
        for m in members[offset : offset + limit]:
            holder.append(m)
    for tag in ("IsTruncated", "Marker"):
        old = result.find(f"{{{NS}}}{tag}")
        if old is not None:
            result.remove(old)
    truncated = offset + limit < len(members)
    flag = ET.SubElement(result, f"{{{NS}}}IsTruncated")
    flag.text = "true" if truncated else "false"
    if truncated:
        marker = ET.SubElement(result, f"{{{NS}}}Marker")
        marker.text = make_marker(offset + limit)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


def simulate_page(
    members: list[str], form: Mapping[str, str], size: int | None
) -> tuple[list[str], str | None] | None:
    """SimulatePrincipalPolicy's page of evaluation results and next marker; None when
    the marker is not one of ours."""
    offset = marker_offset(form.get("Marker"))
    if offset < 0:
        return None
    limit = limit_of(form, size)
    if limit is None:
        return members[offset:], None
    end = offset + limit
    return members[offset:end], make_marker(end) if end < len(members) else None


def principal_policies(arn: str) -> tuple[list[str], str | None] | None:
    """The identity policies (inline and attached, as JSON) and the permissions boundary
    of the role or user ``arn`` in moto's IAM, or None when there is no such principal."""
    from moto.iam.models import iam_backends  # noqa: PLC0415 (moto's in-process state)

    backend = iam_backends[ACCOUNT_ID][arn.split(":")[1]]
    kind, _, name = arn.partition(":iam::")[2].partition(":")[2].partition("/")
    name = name.rpartition("/")[2]
    principal: Any
    if kind == "role":
        principal = next((r for r in backend.roles.values() if r.name == name), None)
    elif kind == "user":
        principal = backend.users.get(name)
    else:
        principal = None
    if principal is None:
        return None

    def document(policy: Any) -> str:
        return str(
            next(v.document for v in policy.versions if v.version_id == policy.default_version_id)
        )

    docs = [str(doc) for doc in principal.policies.values()]
    docs += [document(p) for p in principal.managed_policies.values()]
    boundary: str | None = None
    boundary_arn = getattr(principal, "permissions_boundary_arn", None)
    if boundary_arn:
        boundary = document(backend.get_policy(boundary_arn))
    return docs, boundary


def iam_context(region: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What IAM knows of the role or instance profile a request names, at the time of
    the request: its tags (``aws:ResourceTag/...``) and a role's permissions boundary
    (``iam:PermissionsBoundary``). Empty when it does not exist (yet)."""
    from moto.iam.models import iam_backends  # noqa: PLC0415 (moto's in-process state)

    part = "aws-cn" if region.startswith("cn-") else "aws"
    part = "aws-us-gov" if region.startswith("us-gov-") else part
    backend = iam_backends[ACCOUNT_ID][part]
    out: dict[str, Any] = {}
    if params.get("RoleName"):
        role = next((r for r in backend.roles.values() if r.name == params["RoleName"]), None)
        if role is not None:
            out["role"] = {f"aws:ResourceTag/{t['Key']}": t["Value"] for t in moto_tags(role.tags)}
            if role.permissions_boundary_arn:
                out["role"]["iam:PermissionsBoundary"] = role.permissions_boundary_arn
    if params.get("InstanceProfileName"):
        profile = backend.instance_profiles.get(params["InstanceProfileName"])
        if profile is not None:
            out["instance_profile"] = {
                f"aws:ResourceTag/{t['Key']}": t["Value"] for t in moto_tags(profile.tags)
            }
    return out
