"""The AMP resources the emulator keeps itself (moto lacks them or answers them unlike AWS).

Workspaces stay in moto; their lifecycle is ours: CREATING for ``creation_delay`` then
ACTIVE (or CREATION_FAILED), DELETING for ``transition_delay`` then gone. Rule groups
namespaces, alert manager definitions, logging configurations and workspace
configurations live here entirely, with AWS's status transitions (CREATING/UPDATING for
``transition_delay``, then ACTIVE or *_FAILED with a ``statusReason``; DELETING for
``transition_delay``, then gone) and its validation of rule and alert manager data.
Shapes and status codes follow botocore's ``amp`` model. The data these operations keep,
AWS's errors, the validation and the paging are ``tests.harness.aws_amp_model``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tests.harness.aws_amp_model import (
    _LOG_GROUP_ARN,
    DEFAULT_DELAY,
    DEFAULT_RETENTION_DAYS,
    RULE_GROUP_MARK,
    AmpError,
    AmpState,
    Child,
    Config,
    Phase,
    Workspace,
    _blob,
    conflict,
    invalid,
    limit_of,
    not_found,
    page,
    required_members,
    validate_alertmanager,
    validate_rules,
)

# the data, errors, validation and paging moved to aws_amp_model; importable from here
__all__ = [
    "DEFAULT_DELAY",
    "DEFAULT_RETENTION_DAYS",
    "RULE_GROUP_MARK",
    "Amp",
    "AmpError",
    "AmpState",
    "Child",
    "Config",
    "Phase",
    "Workspace",
    "conflict",
    "invalid",
    "limit_of",
    "not_found",
    "page",
    "required_members",
    "validate_alertmanager",
    "validate_rules",
]


class Amp:
    """The local AMP operations. Every method runs under the emulator's lock."""

    def __init__(self, lock: threading.RLock, arn_prefix: Callable[[str], str]) -> None:
        self.lock = lock
        self.state = AmpState()
        self._arn_prefix = arn_prefix  # region -> "arn:aws:aps:REGION:ACCOUNT"
        # query logging and resource policies (their module imports this one's helpers)
        from tests.harness.aws_amp_extras import AmpExtras  # noqa: PLC0415

        self.extras = AmpExtras(self._settle)

    def ws(self, ws_id: str) -> Workspace:
        """Our state of ``ws_id``, without the children whose DELETING is over."""
        ws = self.state.workspaces.setdefault(ws_id, Workspace())
        if ws.alertmanager is not None and _gone(ws.alertmanager):
            ws.alertmanager = None
        if ws.logging is not None and _gone(ws.logging):
            ws.logging = None
        for name in [n for n, c in ws.rule_groups.items() if _gone(c)]:
            del ws.rule_groups[name]
        return ws

    def _delete(self, child: Child, resource_id: str, kind: str) -> dict[str, Any]:
        """A child is DELETING for ``transition_delay``, then gone."""
        if child.phase.now()[0] == "DELETING":
            raise conflict(resource_id, kind, f"{kind} {resource_id} is DELETING")
        child.phase = Phase("DELETING", self._settle(), _GONE)
        return {}

    def _settle(self) -> float:
        return time.monotonic() + self.state.transition_delay

    # -- configuration ------------------------------------------------------------------

    def describe_config(self, ws_id: str) -> dict[str, Any]:
        ws = self.ws(ws_id)
        c = ws.config
        out: dict[str, Any] = {
            "status": ws.config_phase.doc(),
            "limitsPerLabelSet": c.limits,
            "retentionPeriodInDays": c.retention_days,
        }
        if c.out_of_order is not None:
            out["outOfOrderTimeWindowInSeconds"] = c.out_of_order
        if c.rule_offset is not None:
            out["ruleQueryOffsetInSeconds"] = c.rule_offset
        return {"workspaceConfiguration": out}

    def update_config(self, ws_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        ws = self.ws(ws_id)
        if ws.config_phase.busy:
            raise conflict(ws_id, "WORKSPACE_CONFIGURATION", "configuration is UPDATING")
        bounded = (
            ("retentionPeriodInDays", 1),
            ("outOfOrderTimeWindowInSeconds", 0),
            ("ruleQueryOffsetInSeconds", 0),
        )
        # the model bounds only these minimums; AWS documents no upper bound for retention
        for name, least in bounded:
            value = params.get(name)
            if value is not None and (not isinstance(value, int) or value < least):
                raise invalid(f"{name} must be an integer >= {least}", name)
        until = self._settle()
        if self.state.fail_config:
            reason = self.state.fail_config.pop(0)
            ws.config_phase = Phase("UPDATING", until, "UPDATE_FAILED", reason)
            return {"status": {"statusCode": "UPDATING"}}
        c = ws.config
        if params.get("retentionPeriodInDays") is not None:
            c.retention_days = int(params["retentionPeriodInDays"])
        if params.get("limitsPerLabelSet") is not None:
            c.limits = list(params["limitsPerLabelSet"])
        if params.get("outOfOrderTimeWindowInSeconds") is not None:
            c.out_of_order = int(params["outOfOrderTimeWindowInSeconds"])
        if params.get("ruleQueryOffsetInSeconds") is not None:
            c.rule_offset = int(params["ruleQueryOffsetInSeconds"])
        ws.config_phase = Phase("UPDATING", until, "ACTIVE")
        return {"status": {"statusCode": "UPDATING"}}

    # -- alert manager ------------------------------------------------------------------

    def alertmanager(self, op: str, ws_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        ws = self.ws(ws_id)
        am = ws.alertmanager
        kind = "ALERT_MANAGER_DEFINITION"
        if op != "CreateAlertManagerDefinition" and am is None:
            raise not_found(ws_id, kind, "Alert manager definition not found")
        if op == "DescribeAlertManagerDefinition":
            assert am is not None
            return {"alertManagerDefinition": self._child_doc(am, arn=False, tags=False)}
        if op == "DeleteAlertManagerDefinition":
            assert am is not None
            return self._delete(am, ws_id, kind)
        data, raw = _blob(params)
        problem = validate_alertmanager(raw)
        now = time.time()
        if op == "CreateAlertManagerDefinition":
            if am is not None:
                raise conflict(ws_id, kind, "An alert manager definition already exists")
            ws.alertmanager = Child(
                Phase("CREATING", self._settle(), "CREATION_FAILED" if problem else "ACTIVE"),
                data,
                now,
                now,
            )
            ws.alertmanager.phase.reason = problem
            return {"status": {"statusCode": "CREATING"}}
        assert am is not None
        if am.phase.busy:
            raise conflict(ws_id, kind, f"Alert manager definition is {am.phase.now()[0]}")
        self._update(am, data, problem)
        return {"status": {"statusCode": "UPDATING"}}

    def _update(self, child: Child, data: str, problem: str | None) -> None:
        failed = child.phase.now()[0] == "CREATION_FAILED"
        if problem:
            child.phase = Phase("UPDATING", self._settle(), "UPDATE_FAILED", problem)
            return
        child.data = data
        child.modified = time.time()
        child.phase = Phase("UPDATING", self._settle(), "ACTIVE")
        if failed:  # a namespace that never came up is created by its next good put
            child.phase = Phase("CREATING", self._settle(), "ACTIVE")

    @staticmethod
    def _child_doc(child: Child, *, arn: bool, tags: bool, data: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"status": child.phase.doc()}
        if data:
            out["data"] = child.data
        out["createdAt"] = child.created
        out["modifiedAt"] = child.modified
        if arn:
            out["arn"] = child.arn
        if tags:
            out["tags"] = dict(child.tags)
        return out

    # -- logging --------------------------------------------------------------------------

    def logging(self, op: str, ws_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        ws = self.ws(ws_id)
        lc = ws.logging
        kind = "LOGGING_CONFIGURATION"
        if op != "CreateLoggingConfiguration" and lc is None:
            raise not_found(ws_id, kind, "Logging configuration not found")
        if op == "DescribeLoggingConfiguration":
            assert lc is not None
            return {
                "loggingConfiguration": {
                    "status": lc.phase.doc(),
                    "workspace": ws_id,
                    "logGroupArn": lc.data,
                    "createdAt": lc.created,
                    "modifiedAt": lc.modified,
                }
            }
        if op == "DeleteLoggingConfiguration":
            assert lc is not None
            return self._delete(lc, ws_id, kind)
        arn = str(params.get("logGroupArn") or "")
        if not _LOG_GROUP_ARN.fullmatch(arn):
            raise invalid(
                f"logGroupArn {arn!r} does not match the log group ARN pattern", "logGroupArn"
            )
        now = time.time()
        if op == "CreateLoggingConfiguration":
            if lc is not None:
                raise conflict(ws_id, kind, "A logging configuration already exists")
            ws.logging = Child(Phase("CREATING", self._settle()), arn, now, now)
            return {"status": {"statusCode": "CREATING"}}
        assert lc is not None
        if lc.phase.busy:
            raise conflict(ws_id, kind, f"Logging configuration is {lc.phase.now()[0]}")
        self._update(lc, arn, None)
        return {"status": {"statusCode": "UPDATING"}}

    # -- rule groups namespaces -------------------------------------------------------------

    def rule_groups(
        self,
        op: str,
        region: str,
        ws_id: str,
        name: str | None,
        params: Mapping[str, Any],
        query: Mapping[str, str],
    ) -> dict[str, Any]:
        ws = self.ws(ws_id)
        kind = "RULE_GROUPS_NAMESPACE"
        if op == "ListRuleGroupsNamespaces":
            prefix = query.get("name") or ""
            ordered = [ws.rule_groups[n] for n in sorted(ws.rule_groups) if n.startswith(prefix)]
            items, nxt = page(
                ordered, query.get("nextToken"), limit_of(query, self.state.page_size)
            )
            out: dict[str, Any] = {
                "ruleGroupsNamespaces": [
                    {"name": _name_of(c), **self._child_doc(c, arn=True, tags=True, data=False)}
                    for c in items
                ]
            }
            if nxt:
                out["nextToken"] = nxt
            return out
        if op == "CreateRuleGroupsNamespace":
            name = str(params.get("name") or "")
            if not name:
                raise invalid("name is required", "name")
            if name in ws.rule_groups:
                raise conflict(name, kind, f"Rule groups namespace {name} already exists")
            data, raw = _blob(params)
            problem = validate_rules(raw)
            now = time.time()
            arn = f"{self._arn_prefix(region)}:rulegroupsnamespace/{ws_id}/{name}"
            child = Child(
                Phase("CREATING", self._settle(), "CREATION_FAILED" if problem else "ACTIVE"),
                data,
                now,
                now,
                arn,
                dict(params.get("tags") or {}),
            )
            child.phase.reason = problem
            ws.rule_groups[name] = child
            return {
                "name": name,
                "arn": arn,
                "status": {"statusCode": "CREATING"},
                "tags": dict(child.tags),
            }
        assert name is not None
        child_or_none = ws.rule_groups.get(name)
        if child_or_none is None:
            raise not_found(name, kind, f"Rule groups namespace {name} not found")
        child = child_or_none
        if op == "DescribeRuleGroupsNamespace":
            return {
                "ruleGroupsNamespace": {
                    "name": name,
                    **self._child_doc(child, arn=True, tags=True),
                }
            }
        if op == "DeleteRuleGroupsNamespace":
            return self._delete(child, name, kind)
        if child.phase.busy:  # PutRuleGroupsNamespace
            raise conflict(name, kind, f"Rule groups namespace {name} is {child.phase.now()[0]}")
        data, raw = _blob(params)
        self._update(child, data, validate_rules(raw))
        return {
            "name": name,
            "arn": child.arn,
            "status": {"statusCode": child.phase.code},
            "tags": dict(child.tags),
        }

    def rule_group_by_arn(self, arn: str) -> Child | None:
        ws_id, _, name = arn.partition(RULE_GROUP_MARK)[2].partition("/")
        if ws_id not in self.state.workspaces:
            return None
        return self.ws(ws_id).rule_groups.get(name)

    def tags(self, op: str, arn: str, params: Mapping[str, Any], keys: list[str]) -> dict[str, Any]:
        child = self.rule_group_by_arn(arn)
        if child is None:
            raise not_found(arn, "RULE_GROUPS_NAMESPACE", f"Resource {arn} not found")
        if op == "ListTagsForResource":
            return {"tags": dict(child.tags)}
        if op == "TagResource":
            child.tags.update({str(k): str(v) for k, v in (params.get("tags") or {}).items()})
        else:
            for k in keys:
                child.tags.pop(k, None)
        return {}


_GONE = "GONE"  # not an AMP status: a DELETING child that has gone


def _gone(child: Child) -> bool:
    return child.phase.now()[0] == _GONE


def _name_of(child: Child) -> str:
    return child.arn.rpartition("/")[2]
