"""What the emulator's HTTP layer shares: the control API under ``/_emulator/``, the
model checker hook, and the small parsers of AWS's wire formats."""

from __future__ import annotations

import contextlib
import functools
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

ACCOUNT_ID = "123456789012"
DEFAULT_PRINCIPAL = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ampd-test/i-0123456789abcdef0"
# services whose errors are JSON (aps, appconfig, appconfigdata: REST-JSON; ssm, pricing:
# JSON 1.1 with X-Amz-Target)
_JSON_SERVICES = frozenset({"aps", "ssm", "pricing", "appconfig", "appconfigdata"})


def control(handler: Any, em: Any, path: str, body: bytes) -> None:
    """The control API under ``/_emulator/`` (for emulators in another process)."""
    name = path.removeprefix("/_emulator/")
    if name == "requests" and handler.command == "GET":
        handler._json(
            200,
            {
                "requests": [
                    {
                        "service": r.service,
                        "operation": r.operation,
                        "method": r.method,
                        "status": r.status,
                        "write": r.is_write,
                    }
                    for r in em.requests
                ]
            },
        )
    elif name == "violations" and handler.command == "GET":
        handler._json(200, {"violations": em.violations()})
    elif name == "reset" and handler.command == "POST":
        em.reset()
        handler._json(200, {})
    elif name == "fault" and handler.command == "POST":
        spec = json.loads(body or b"{}")
        kind = spec.get("kind")
        op = spec.get("operation")
        times = spec.get("times", 1)
        status = spec.get("status")
        if kind == "throttle":
            retry = spec.get("retry_after")
            em.throttle(op, times, status and int(status), retry and int(retry))
        elif kind == "error":
            em.fail(op, times, status and int(status), spec.get("code"), spec.get("message"))
        elif kind == "drop":
            em.drop(op, times, after=bool(spec.get("after", False)))
        elif kind == "latency":
            em.latency(float(spec.get("seconds", 1.0)), op, times)
        elif kind == "deny":
            em.deny(op, spec.get("principal", DEFAULT_PRINCIPAL), times)
        elif kind == "creation_delay":
            em.creation_delay(float(spec.get("seconds", 0)))
        elif kind == "transition_delay":
            em.transition_delay(float(spec.get("seconds", 0)))
        elif kind == "instant":
            em.instant()
        elif kind == "page_size":
            size = spec.get("size")
            em.page_size(None if size is None else int(size))
        elif kind == "fail_configuration_update":
            em.fail_next_configuration_update(str(spec.get("reason", "emulated failure")))
        elif kind == "clear":
            em.clear_faults()
        else:
            handler._json(400, {"message": f"unknown fault kind {kind!r}"})
            return
        handler._json(200, {})
    else:
        handler._json(404, {"message": f"no control endpoint {name!r}"})


CHECKED = frozenset({"aps", "iam", "sts", "ssm", "s3", "pricing", "appconfig", "appconfigdata"})


@functools.cache
def model_checker() -> Any:
    """tests.harness.model_check.check_response, or None while that module is absent."""
    try:
        from tests.harness.model_check import check_response  # noqa: PLC0415
    except ImportError:
        return None
    return check_response


@functools.cache
def server_error_code(service: str, operation: str) -> str:
    """The code a 5xx of ``operation`` carries: IAM's ServiceFailure where the operation's
    model lists it, else the InternalFailure any query-protocol endpoint can send."""
    if service in _JSON_SERVICES:
        return "InternalServerException"
    if service == "s3":
        return "InternalError"
    import botocore.session  # noqa: PLC0415 (heavy import, on demand)

    model = botocore.session.get_session().get_service_model(service)
    if operation in model.operation_names:
        op = model.operation_model(operation)
        if any(e.name == "ServiceFailureException" for e in op.error_shapes):
            return "ServiceFailure"
    return "InternalFailure"


def moto_tags(tags: Any) -> list[dict[str, str]]:
    """moto keeps IAM tags as a list of {Key, Value} or a dict of key -> {Key, Value}."""
    if isinstance(tags, dict):
        return [{"Key": str(k), "Value": str(v.get("Value", ""))} for k, v in tags.items()]
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags or []]


def form_members(form: Mapping[str, str], name: str) -> list[str]:
    """A query-protocol list (``Name.member.1``, ``Name.member.2``, ...), in order."""
    found = []
    for key, value in form.items():
        prefix, _, index = key.rpartition(".member.")
        if prefix == name and index.isdigit():
            found.append((int(index), value))
    return [v for _, v in sorted(found)]


def request_params(service: str, parsed: urllib.parse.SplitResult, body: bytes) -> dict[str, Any]:
    """What a request asked for, for the record: the form of a query-protocol call, the
    JSON body of the others (when it is JSON), and the URL's query string."""
    out: dict[str, Any] = {}
    query = urllib.parse.parse_qs(parsed.query)
    if query:
        out["query"] = {k: v[0] for k, v in query.items()}
    if service in ("iam", "sts"):
        out.update(
            {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        )
        return out
    if body[:1] == b"{":
        with contextlib.suppress(ValueError):
            doc = json.loads(body)
            if isinstance(doc, dict):
                out.update(doc)
    return out


class Discard:
    """Stands in for the socket's write side when a response is to be lost."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return


def xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
