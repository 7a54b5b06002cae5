"""The AMP emulator's data (``tests/harness/aws_amp.py`` keeps the operations on it): a
workspace and its children (rule groups namespaces, alert manager definition, logging
configuration) with their ``Phase`` (a status that turns into the next once its time has
passed), the workspace configuration, AWS's error answers and the members botocore's
``amp`` model requires in them, AMP's validation of rule and alert manager data, and its
paging (opaque ``nextToken``, ``maxResults``).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_DELAY = 1.0  # seconds every transition (CREATING, UPDATING, DELETING) lasts
DEFAULT_RETENTION_DAYS = 150
_LOG_GROUP_ARN = re.compile(
    r"arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*"
)
RULE_GROUP_MARK = ":rulegroupsnamespace/"


class AmpError(Exception):
    """An AWS error answer: status, code, message and the members the model requires."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def not_found(resource_id: str, kind: str, what: str) -> AmpError:
    return AmpError(
        404, "ResourceNotFoundException", what, resourceId=resource_id, resourceType=kind
    )


def conflict(resource_id: str, kind: str, what: str) -> AmpError:
    return AmpError(409, "ConflictException", what, resourceId=resource_id, resourceType=kind)


def required_members(code: str, resource_id: str | None) -> dict[str, Any]:
    """The members the amp model requires in the error ``code`` (filled for injected ones)."""
    rid = {"resourceId": resource_id or "unknown", "resourceType": "WORKSPACE"}
    if code in ("ConflictException", "ResourceNotFoundException"):
        return rid
    if code == "ServiceQuotaExceededException":
        return {**rid, "serviceCode": "AMP", "quotaCode": "L-00000000"}
    if code == "ValidationException":
        return {"reason": "OTHER"}
    return {}


def invalid(message: str, field_name: str | None = None) -> AmpError:
    extra: dict[str, Any] = {"reason": "FIELD_VALIDATION_FAILED"}
    if field_name:
        extra["fieldList"] = [{"name": field_name, "message": message}]
    return AmpError(400, "ValidationException", message, **extra)


@dataclass
class Phase:
    """A status that becomes ``then`` (with ``reason``) once ``until`` has passed."""

    code: str
    until: float = 0.0
    then: str = "ACTIVE"
    reason: str | None = None

    def now(self) -> tuple[str, str | None]:
        if time.monotonic() < self.until:
            return self.code, None
        return self.then, self.reason

    def doc(self, with_reason: bool = True) -> dict[str, Any]:
        code, reason = self.now()
        out: dict[str, Any] = {"statusCode": code}
        if reason and with_reason:
            out["statusReason"] = reason
        return out

    @property
    def busy(self) -> bool:
        return self.now()[0] in ("CREATING", "UPDATING", "DELETING")


@dataclass
class Child:
    """A rule groups namespace, alert manager definition or logging configuration."""

    phase: Phase
    data: str  # base64 (rules, alert manager) or the log group ARN (logging)
    created: float
    modified: float
    arn: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    retention_days: int = DEFAULT_RETENTION_DAYS
    limits: list[Any] = field(default_factory=list)
    out_of_order: int | None = None
    rule_offset: int | None = None


@dataclass
class Workspace:
    kms_key_arn: str | None = None
    region: str = ""
    phase: Phase = field(default_factory=lambda: Phase("ACTIVE"))
    gone_at: float | None = None  # DELETING: removed from moto at this time
    config: Config = field(default_factory=Config)
    config_phase: Phase = field(default_factory=lambda: Phase("ACTIVE"))
    alertmanager: Child | None = None
    logging: Child | None = None
    rule_groups: dict[str, Child] = field(default_factory=dict)


@dataclass
class AmpState:
    tokens: dict[str, str] = field(default_factory=dict)
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    creation_delay: float = DEFAULT_DELAY
    transition_delay: float = DEFAULT_DELAY
    fail_creations: int = 0
    fail_config: list[str] = field(default_factory=list)
    page_size: int | None = None


def validate_rules(data: bytes) -> str | None:
    """Why AMP would refuse this rule groups namespace data, or None when it is valid."""
    try:
        doc = yaml.safe_load(data.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        return f"invalid rule groups namespace data: not YAML: {e}".splitlines()[0]
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        return "invalid rule groups namespace data: a top-level 'groups' list is required"
    extra = sorted(set(doc) - {"groups"})
    if extra:
        return f"invalid rule groups namespace data: field {extra[0]} not found"
    for i, group in enumerate(doc["groups"]):
        where = f"groups[{i}]"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            return f"invalid rule groups namespace data: {where}: a group needs a name"
        if not isinstance(group.get("rules"), list):
            return f"invalid rule groups namespace data: {where}: 'rules' must be a list"
        for j, rule in enumerate(group["rules"]):
            at = f"{where}.rules[{j}]"
            if not isinstance(rule, dict):
                return f"invalid rule groups namespace data: {at}: not a mapping"
            kinds = [k for k in ("record", "alert") if isinstance(rule.get(k), str)]
            if len(kinds) != 1:
                return f"invalid rule groups namespace data: {at}: one of 'record' or 'alert'"
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                return f"invalid rule groups namespace data: {at}: field 'expr' must be set"
    return None


def validate_alertmanager(data: bytes) -> str | None:
    """Why AMP would refuse this alert manager definition, or None when it is valid."""
    try:
        doc = yaml.safe_load(data.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        return f"invalid alert manager definition: not YAML: {e}".splitlines()[0]
    if not isinstance(doc, dict) or "alertmanager_config" not in doc:
        return "invalid alert manager definition: 'alertmanager_config' is required"
    extra = sorted(set(doc) - {"alertmanager_config", "template_files"})
    if extra:
        return f"invalid alert manager definition: field {extra[0]} not found"
    config = doc["alertmanager_config"]
    if isinstance(config, str):
        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError as e:
            return f"invalid alert manager definition: alertmanager_config: {e}".splitlines()[0]
    if not isinstance(config, dict):
        return "invalid alert manager definition: alertmanager_config must be a mapping"
    if "template_files" in doc and not isinstance(doc["template_files"], dict):
        return "invalid alert manager definition: template_files must be a mapping"
    return None


def _blob(params: Mapping[str, Any]) -> tuple[str, bytes]:
    raw = str(params.get("data") or "")
    try:
        return raw, base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as e:
        raise invalid("data is not valid base64", "data") from e


def page(items: list[Any], token: str | None, limit: int | None) -> tuple[list[Any], str | None]:
    """One page of ``items`` from ``token`` (an opaque offset), and the next token."""
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError) as e:
            raise AmpError(400, "ValidationException", "invalid nextToken", reason="OTHER") from e
    if limit is None:
        return items[start:], None
    end = start + limit
    nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], nxt


def limit_of(query: Mapping[str, str], size: int | None) -> int | None:
    asked = int(query["maxResults"]) if query.get("maxResults") else None
    sizes = [n for n in (asked, size) if n is not None]
    return min(sizes) if sizes else None
