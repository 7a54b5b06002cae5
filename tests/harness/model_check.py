"""Hold a raw AWS HTTP response to botocore's model of that operation.

``check_response(service, operation, status, headers, body)`` lists every way the response
differs from the model botocore ships (the only machine-readable description of real AWS we
have); ``[]`` means it conforms. ``service`` is the SigV4 signing name the emulator sees:
``aps`` (model ``amp``, rest-json), ``iam`` and ``sts`` (query, XML), ``ssm`` (json) and
``s3`` (rest-xml: status and error code only, since object bodies are blobs), ``appconfig``
and ``appconfigdata`` (rest-json; the emulator names the Data API by its paths, since both
sign as ``appconfig``).

Success (2xx): the status must be the operation's ``http.responseCode``. JSON bodies are
walked raw: required members, no member the shape does not define, types (timestamps as
epoch numbers unless ``timestampFormat`` says otherwise, blobs as base64), enums, min/max
lengths and values, patterns; members bound to headers are looked for in the headers. Query
XML is checked for its ``<{Op}Response>``/``<{Op}Result>`` envelope and for elements the
shape does not define, then parsed by botocore's own parser and the result is checked the
same way.

Errors (4xx/5xx): the error code must be one the operation models (shape name or
``error.code``) or one of ``COMMON_ERRORS`` that any AWS endpoint can send (for S3 also
``S3_COMMON_ERRORS``); a modelled error's ``httpStatusCode`` must be the status, and its
members bound to headers (``Retry-After``) must parse; a modelled JSON error body must carry
the shape's required members. S3's 304 to a conditional GetObject/HeadObject conforms.

A JSON ``null`` counts as an absent member (botocore's parsers drop it), and an empty list or
map is not held to a ``min`` (output shapes reuse input shapes: SSM's ``InvalidParameters``
has ``min 1`` and the service answers ``[]``).
"""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import botocore.parsers
import botocore.session
from botocore.model import (
    OperationModel,
    OperationNotFoundError,
    ServiceModel,
    Shape,
    StructureShape,
)

from tests.harness.model_walk import local, timestamp_errors, walk, xml_extras

__all__ = ["COMMON_ERRORS", "S3_COMMON_ERRORS", "SERVICE_MODELS", "check_response"]

# signing name (what the emulator sees in the credential scope) -> botocore service name
SERVICE_MODELS: Mapping[str, str] = {
    "aps": "amp",
    "iam": "iam",
    "sts": "sts",
    "ssm": "ssm",
    "s3": "s3",
    "pricing": "pricing",
    "appconfig": "appconfig",
    # the AppConfig Data API signs as appconfig; the emulator tells it apart by its paths
    "appconfigdata": "appconfigdata",
}

# Codes any AWS endpoint can answer whether or not an operation's model lists them: the
# authentication, throttling and generic failure layer in front of every service.
COMMON_ERRORS: frozenset[str] = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "RequestExpired",
        "RequestTimeTooSkewed",
        "InternalFailure",
        "ServiceUnavailable",
        "InternalServerException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ValidationError",
        "ValidationException",
    }
)

# S3's model lists almost no errors per operation, yet these come from any S3 object
# call (a missing bucket, a wrong region, throttling, S3's own auth and failure codes).
S3_COMMON_ERRORS: frozenset[str] = frozenset(
    {
        "NoSuchBucket",
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "InvalidAccessKeyId",
        "PreconditionFailed",
        "InvalidRange",
        "SlowDown",
        "InternalError",
    }
)

# S3 reads that answer 304 Not Modified to a matching If-None-Match (statesource uses it)
_CONDITIONAL_GETS = frozenset({"GetObject", "HeadObject"})
_JSON_PROTOCOLS = frozenset({"rest-json", "json"})


@functools.cache
def _model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE_MODELS[service])


def check_response(
    service: str, operation: str, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    """Every way this raw response differs from botocore's model; [] when it conforms."""
    if service not in SERVICE_MODELS:
        return [f"{operation}: no model for service {service!r}"]
    model = _model(service)
    try:
        op = model.operation_model(operation)
    except OperationNotFoundError:
        return [f"{operation}: not an operation of {model.service_name}"]
    lower = {k.lower(): v for k, v in headers.items()}
    if 200 <= status < 300:
        return [f"{operation}: {v}" for v in _check_success(op, status, lower, body)]
    if 400 <= status < 600:
        return [f"{operation}: {v}" for v in _check_error(op, status, lower, body)]
    if status == 304 and operation in _CONDITIONAL_GETS:
        return []  # an If-None-Match that matched: no body, nothing to check
    return [f"{operation}: status {status} is neither a success nor an error"]


# ---------------------------------------------------------------- success


def _check_success(
    op: OperationModel, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    out: list[str] = []
    want = int(op.http.get("responseCode", 200))
    if status != want:
        out.append(f"status {status}, the model says {want}")
    protocol = op.service_model.protocol
    shape = op.output_shape
    if protocol in _JSON_PROTOCOLS:
        out += _check_json_output(op, shape, headers, body)
    elif protocol == "query":
        out += _check_query_output(op, shape, status, headers, body)
    return out


def _check_json_output(
    op: OperationModel, shape: Shape | None, headers: Mapping[str, str], body: bytes
) -> list[str]:
    out: list[str] = []
    text = body.strip()
    if shape is None:
        if text and text != b"{}":
            out.append(f"body {text[:80]!r} where the model has no output")
        return out
    members = shape.members if isinstance(shape, StructureShape) else {}
    for name, member in members.items():
        if member.serialization.get("location") == "header":
            key = member.serialization.get("name", name).lower()
            if key in headers:
                out += _check_header(name, member, headers[key])
            elif name in shape.required_members:
                out.append(f"header {member.serialization.get('name', name)}: missing")
    payload = shape.serialization.get("payload")
    if payload is not None:
        pshape = members[payload]
        if pshape.type_name != "structure":
            return out  # a blob or string payload is the raw body
        if not text:
            return out
        doc = _load_json(text, out)
        if doc is not _BAD:
            walk(doc, pshape, payload, out, _default_ts(op))
        return out
    doc = _load_json(text or b"{}", out)
    if doc is not _BAD:
        walk(doc, shape, "", out, _default_ts(op))
    return out


_BAD = object()


def _load_json(text: bytes, out: list[str]) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        out.append(f"body is not JSON: {e}")
        return _BAD


def _default_ts(op: OperationModel) -> str:
    return "unixTimestamp" if op.service_model.protocol in _JSON_PROTOCOLS else "iso8601"


def _check_header(name: str, shape: Shape, value: str) -> list[str]:
    t = shape.type_name
    if t in ("integer", "long"):
        try:
            parsed: Any = int(value)
        except ValueError:
            return [f"header {name}: {value!r} is not an {t}"]
    elif t == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "rfc822")
        return [f"header {name}: {e}" for e in timestamp_errors(value, fmt)]
    elif t == "boolean":
        if value not in ("true", "false"):
            return [f"header {name}: {value!r} is not a boolean"]
        return []
    else:
        parsed = value
    out: list[str] = []
    walk(parsed, shape, f"header {name}", out, "rfc822")
    return out


def _check_query_output(
    op: OperationModel,
    shape: Shape | None,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
) -> list[str]:
    out: list[str] = []
    try:
        root = ET.fromstring(body)  # noqa: S314 - the test emulator's own answer
    except ET.ParseError as e:
        return [f"body is not XML: {e}"]
    if local(root.tag) != f"{op.name}Response":
        out.append(f"root element <{local(root.tag)}>, the model says <{op.name}Response>")
    if not isinstance(shape, StructureShape) or not shape.members:
        return out
    wrapper = shape.serialization.get("resultWrapper", f"{op.name}Result")
    results = [c for c in root if local(c.tag) == wrapper]
    for c in root:
        if local(c.tag) not in (wrapper, "ResponseMetadata"):
            out.append(f"<{local(c.tag)}>: not in {op.name}Response")
    if not results:
        out.append(f"no <{wrapper}> element")
        return out
    xml_extras(results[0], shape, "", out)
    parser = botocore.parsers.create_parser(op.service_model.protocol)
    try:
        parsed = parser.parse(
            {"status_code": status, "headers": dict(headers), "body": body}, shape
        )
    except Exception as e:  # any parser failure is a violation to report
        return [*out, f"botocore cannot parse the body: {e}"]
    parsed.pop("ResponseMetadata", None)
    walk(parsed, shape, "", out, "parsed")
    return out


# ---------------------------------------------------------------- errors


def _check_error(
    op: OperationModel, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    protocol = op.service_model.protocol
    if protocol in _JSON_PROTOCOLS:
        code, doc = _json_error(headers, body)
    else:
        code, doc = _xml_error(body), None
    if code is None:
        if protocol == "rest-xml" and not body.strip():
            return []  # S3 answers HEAD (and some 404s) with no body
        return [f"status {status} with no error code"]
    modelled = {
        name: shape
        for shape in op.error_shapes
        for name in (shape.name, shape.metadata.get("error", {}).get("code"))
        if name
    }
    shape = modelled.get(code)
    if shape is None:
        common = COMMON_ERRORS | (S3_COMMON_ERRORS if protocol == "rest-xml" else frozenset())
        if code in common:
            return []
        names = sorted({s.name for s in op.error_shapes})
        return [f"error {code} (status {status}) is not one the model lists: {names}"]
    out: list[str] = []
    want = shape.metadata.get("error", {}).get("httpStatusCode")
    if want is not None and int(want) != status:
        out.append(f"error {code}: status {status}, the model says {want}")
    members = shape.members if isinstance(shape, StructureShape) else {}
    for name, member in members.items():
        key = member.serialization.get("name", name)
        if member.serialization.get("location") == "header":
            if key.lower() in headers:
                out += [
                    f"error {code}: {e}" for e in _check_header(name, member, headers[key.lower()])
                ]
        elif isinstance(doc, dict) and name in shape.required_members and doc.get(key) is None:
            out.append(f"error {code}: {name}: required by {shape.name}, missing")
    return out


def _clean_code(raw: str) -> str:
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _json_error(headers: Mapping[str, str], body: bytes) -> tuple[str | None, Any]:
    try:
        doc = json.loads(body) if body.strip() else None
    except ValueError:
        doc = None
    raw = headers.get("x-amzn-errortype")
    if not raw and isinstance(doc, dict):
        raw = doc.get("__type") or doc.get("code") or doc.get("Code")
    return (_clean_code(str(raw)) if raw else None), doc


def _xml_error(body: bytes) -> str | None:
    try:
        root = ET.fromstring(body)  # noqa: S314 - the test emulator's own answer
    except ET.ParseError:
        return None
    for elem in root.iter():
        if local(elem.tag) == "Code" and elem.text:
            return elem.text.strip()
    return None
