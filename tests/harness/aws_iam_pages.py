"""IAM list paging as AWS does it (``MaxItems``, ``IsTruncated`` + ``Marker``), over moto.

moto answers some of the lists ampd reads whole, whatever ``MaxItems`` and ``Marker``
say. The emulator asks moto for the whole list and cuts the page here, from moto's own
XML, so every member keeps what moto puts in it.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping

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
