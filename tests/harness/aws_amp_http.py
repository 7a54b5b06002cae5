"""The emulator's AMP routes: which operation a request is, what our layer answers itself
(workspace lifecycle and lists, rule groups namespaces, alert manager, logging, query
logging, the resource policy, configuration, rule group tags) and what it leaves to moto
(workspaces, their tags and alias), with every 2xx status code set to the one botocore's
``amp`` model names."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from functools import cache
from typing import TYPE_CHECKING, Any

from tests.harness.aws_amp import (
    RULE_GROUP_MARK,
    AmpError,
    Phase,
    Workspace,
    conflict,
    limit_of,
    not_found,
    page,
)
from tests.harness.aws_routes import Routes

if TYPE_CHECKING:
    pass

_AMP_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("POST", r"^/workspaces$", "CreateWorkspace"),
        ("GET", r"^/workspaces$", "ListWorkspaces"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)$", "DescribeWorkspace"),
        ("DELETE", r"^/workspaces/(?P<ws>[^/]+)$", "DeleteWorkspace"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/alias$", "UpdateWorkspaceAlias"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/configuration$", "DescribeWorkspaceConfiguration"),
        ("PATCH", r"^/workspaces/(?P<ws>[^/]+)/configuration$", "UpdateWorkspaceConfiguration"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/logging/query$", "DescribeQueryLoggingConfiguration"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/logging/query$", "CreateQueryLoggingConfiguration"),
        ("PUT", r"^/workspaces/(?P<ws>[^/]+)/logging/query$", "UpdateQueryLoggingConfiguration"),
        ("DELETE", r"^/workspaces/(?P<ws>[^/]+)/logging/query$", "DeleteQueryLoggingConfiguration"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/policy$", "DescribeResourcePolicy"),
        ("PUT", r"^/workspaces/(?P<ws>[^/]+)/policy$", "PutResourcePolicy"),
        ("DELETE", r"^/workspaces/(?P<ws>[^/]+)/policy$", "DeleteResourcePolicy"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/logging$", "DescribeLoggingConfiguration"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/logging$", "CreateLoggingConfiguration"),
        ("PUT", r"^/workspaces/(?P<ws>[^/]+)/logging$", "UpdateLoggingConfiguration"),
        ("DELETE", r"^/workspaces/(?P<ws>[^/]+)/logging$", "DeleteLoggingConfiguration"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces$", "ListRuleGroupsNamespaces"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces$", "CreateRuleGroupsNamespace"),
        (
            "GET",
            r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces/(?P<name>[^/]+)$",
            "DescribeRuleGroupsNamespace",
        ),
        (
            "PUT",
            r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces/(?P<name>[^/]+)$",
            "PutRuleGroupsNamespace",
        ),
        (
            "DELETE",
            r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces/(?P<name>[^/]+)$",
            "DeleteRuleGroupsNamespace",
        ),
        (
            "GET",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "DescribeAlertManagerDefinition",
        ),
        (
            "POST",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "CreateAlertManagerDefinition",
        ),
        (
            "PUT",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "PutAlertManagerDefinition",
        ),
        (
            "DELETE",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "DeleteAlertManagerDefinition",
        ),
        ("GET", r"^/tags/.+$", "ListTagsForResource"),
        ("POST", r"^/tags/.+$", "TagResource"),
        ("DELETE", r"^/tags/.+$", "UntagResource"),
    ]
]
_SUMMARY = ("workspaceId", "alias", "arn", "status", "createdAt", "tags", "kmsKeyArn")
_DESCRIPTION = (*_SUMMARY, "prometheusEndpoint")
_TAG_OPS = ("ListTagsForResource", "TagResource", "UntagResource")


@cache
def model_status(operation: str) -> int | None:
    """The 2xx status code botocore's amp model gives ``operation``."""
    import botocore.session  # noqa: PLC0415 (heavy import, on demand)

    model = botocore.session.get_session().get_service_model("amp")
    if operation not in model.operation_names:
        return None
    return int(model.operation_model(operation).http.get("responseCode", 200))


def amp_operation(method: str, path: str) -> tuple[str, dict[str, str]]:
    for m, pattern, op in _AMP_ROUTES:
        hit = pattern.match(path) if m == method else None
        if hit:
            return op, {k: urllib.parse.unquote(v) for k, v in hit.groupdict().items() if v}
    return "Unknown", {}


class AmpRoutes(Routes):
    """Mixed into the request handler: ``_amp`` answers one AMP request."""

    def _amp(
        self,
        region: str,
        operation: str,
        ids: dict[str, str],
        parsed: urllib.parse.SplitResult,
        body: bytes,
    ) -> None:
        try:
            self._amp_routes(region, operation, ids, parsed, body)
        except AmpError as e:
            self._error("aps", e.status, e.code, e.message, e.extra)

    def _amp_routes(
        self,
        region: str,
        operation: str,
        ids: dict[str, str],
        parsed: urllib.parse.SplitResult,
        body: bytes,
    ) -> None:
        em = self.emulator
        em.sweep()
        params: dict[str, Any] = {}
        if body[:1] == b"{":
            params = json.loads(body)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        if operation == "CreateWorkspace":
            self._create_workspace(region, params, body)
            return
        if operation == "ListWorkspaces":
            self._json(200, self._list_workspaces(region, query))
            return
        if operation in _TAG_OPS:
            arn = urllib.parse.unquote(parsed.path.removeprefix("/tags/"))
            if RULE_GROUP_MARK not in arn:
                self._forward(body, status_as=model_status(operation))
                return
            keys = urllib.parse.parse_qs(parsed.query).get("tagKeys", [])
            with em._lock:
                self._json(200, em._amp.tags(operation, arn, params, keys))
            return
        ws_id = ids.get("ws")
        if ws_id is None:
            self._forward(body, status_as=model_status(operation))
            return
        if ws_id not in em._backend(region).workspaces:
            raise not_found(ws_id, "WORKSPACE", f"Workspace {ws_id} not found")
        status = em.workspace_status(ws_id)
        busy_ok = operation == "DeleteWorkspace" and status in ("CREATING", "CREATION_FAILED")
        if not operation.startswith(("Describe", "List")) and status != "ACTIVE" and not busy_ok:
            raise conflict(ws_id, "WORKSPACE", f"Workspace {ws_id} is {status}")
        if operation == "DescribeWorkspace":
            self._forward(body, rewrite=lambda doc: self._describe(doc, region))
            return
        if operation == "DeleteWorkspace":
            with em._lock:
                ws = em._amp.ws(ws_id)
                ws.region = region
                ws.gone_at = time.monotonic() + em._amp.state.transition_delay
            em.sweep()
            self._json(202, {})
            return
        if operation == "UpdateWorkspaceAlias":
            self._forward(body, status_as=model_status(operation))
            return
        amp = em._amp
        with em._lock:
            if operation == "DescribeWorkspaceConfiguration":
                doc = amp.describe_config(ws_id)
            elif operation == "UpdateWorkspaceConfiguration":
                doc = amp.update_config(ws_id, params)
            elif "AlertManager" in operation:
                doc = amp.alertmanager(operation, ws_id, params)
            elif "QueryLoggingConfiguration" in operation:
                doc = amp.extras.query_logging_op(operation, ws_id, params)
            elif "ResourcePolicy" in operation:
                # DeleteResourcePolicy sends its revisionId in the query string
                doc = amp.extras.policy_op(operation, ws_id, {**query, **params})
            elif "LoggingConfiguration" in operation:
                doc = amp.logging(operation, ws_id, params)
            elif "RuleGroupsNamespace" in operation:
                doc = amp.rule_groups(operation, region, ws_id, ids.get("name"), params, query)
            else:
                raise AmpError(404, "UnknownOperationException", f"no route for {operation}")
        self._json(model_status(operation) or 200, doc)

    def _create_workspace(self, region: str, params: dict[str, Any], body: bytes) -> None:
        em = self.emulator
        token = params.get("clientToken")
        with em._create_lock:
            with em._lock:
                existing = em._amp.state.tokens.get(token) if token else None
            backend = em._backend(region)
            if existing is not None and existing in backend.workspaces:
                ws = backend.workspaces[existing]
                doc = {
                    "workspaceId": existing,
                    "arn": ws.arn,
                    "status": {"statusCode": em.workspace_status(existing)},
                    "tags": backend.list_tags_for_resource(ws.arn),
                }
                kms = em._amp.ws(existing).kms_key_arn
                if kms:
                    doc["kmsKeyArn"] = kms
                self._json(202, doc)
                return
            box: dict[str, Any] = {}

            def capture(doc: dict[str, Any]) -> dict[str, Any]:
                box.update(doc)
                return doc

            status = self._forward(body, rewrite=capture, hold=True)
            if status >= 300 or "workspaceId" not in box:
                self._flush_held()
                return
            ws_id = str(box["workspaceId"])
            with em._lock:
                state = em._amp.state
                failed = state.fail_creations > 0
                state.fail_creations -= 1 if failed else 0
                until = time.monotonic() + state.creation_delay
                local = Workspace(
                    kms_key_arn=params.get("kmsKeyArn"),
                    phase=Phase("CREATING", until, "CREATION_FAILED" if failed else "ACTIVE"),
                    region=region,
                )
                state.workspaces[ws_id] = local
                if token:
                    state.tokens[token] = ws_id
            doc = {
                "workspaceId": ws_id,
                "arn": box.get("arn"),
                "status": {"statusCode": em.workspace_status(ws_id)},
                "tags": box.get("tags") or {},
            }
            if local.kms_key_arn:
                doc["kmsKeyArn"] = local.kms_key_arn
            self._held = None
            self._json(202, doc)

    def _workspace_doc(
        self, w: dict[str, Any], region: str, keys: tuple[str, ...]
    ) -> dict[str, Any]:
        em = self.emulator
        ws_id = str(w.get("workspaceId"))
        w = dict(w)
        w["status"] = {"statusCode": em.workspace_status(ws_id)}
        w["prometheusEndpoint"] = em.endpoint_for(ws_id, region)
        with em._lock:
            local = em._amp.state.workspaces.get(ws_id)
        if local is not None and local.kms_key_arn:
            w["kmsKeyArn"] = local.kms_key_arn
        return {k: w[k] for k in keys if w.get(k) is not None}

    def _describe(self, doc: dict[str, Any], region: str) -> dict[str, Any]:
        return {"workspace": self._workspace_doc(doc["workspace"], region, _DESCRIPTION)}

    def _list_workspaces(self, region: str, query: dict[str, str]) -> dict[str, Any]:
        """From moto's workspaces, in creation order: ``alias`` is a prefix (as AMP's)."""
        em = self.emulator
        prefix = query.get("alias") or ""
        found = [
            w.to_dict()
            for w in list(em._backend(region).workspaces.values())
            if (w.alias or "").startswith(prefix)
        ]
        for w in found:
            w["createdAt"] = _epoch(w.get("createdAt"))
        with em._lock:
            size = em._amp.state.page_size
        items, nxt = page(found, query.get("nextToken"), limit_of(query, size))
        shown = [self._workspace_doc(w, region, _SUMMARY) for w in items]
        out: dict[str, Any] = {"workspaces": shown}
        if nxt:
            out["nextToken"] = nxt
        return out


def _epoch(value: Any) -> Any:
    """moto's creation time as the epoch seconds REST-JSON timestamps are."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return value
