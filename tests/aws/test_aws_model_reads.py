"""ampd's own AWS reads held to botocore's models (issue #24).

The emulator answers what we taught it, so a test against it cannot show that ampd reads a
member real AWS never sends (``prometheusEndpoint`` in a ListWorkspaces summary) or waits for
a status a resource never has. botocore's models can. ``ampd.aws.gateway.reads`` lists what
ampd reads; this test holds that table to the models, and holds the gateways' code to the
table:

(a) every path in ``READS`` exists in its operation's output shape, every value in
    ``COMPARED`` is in its member's enum, and ampd's status constants are all in ``COMPARED``;
(b) every string key the AWS gateways and ``observe/aws.py`` read is a segment of a path in
    ``READS``, and every operation they call has an entry;
(c) every error code ``aws_base`` matches is one an operation ampd calls can send, or one
    every AWS endpoint can send.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest
from botocore.model import ListShape, OperationModel, Shape, StringShape, StructureShape

from ampd.aws.gateway import base as aws_base
from ampd.aws.gateway.reads import COMPARED, ERROR_CODES, READS
from ampd.aws.model import FAILED, TRANSITIONAL
from ampd.aws.observe import _GONE
from tests.harness.model_check import COMMON_ERRORS

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS = sorted(
    str(p.relative_to(ROOT))
    for p in (ROOT / "ampd/aws/gateway").glob("*.py")
    if p.name not in ("__init__.py", "reads.py")
)
READERS = [*GATEWAYS, "ampd/aws/observe.py"]
SERVICES = {"amp": "amp", "iam": "iam", "sts": "sts"}  # ampd's _call names -> botocore

# Keys read with a literal that are not members of an AWS answer. Keep it short.
NOT_RESPONSE_READS = {
    "Error": "botocore's ClientError envelope (e.response), not an output shape",
    "Code": "the error code inside that envelope",
    "Message": "the error message inside that envelope",
    "message": "the error message some JSON services put in lower case",
    "ResponseMetadata": "botocore's metadata beside every answer",
    "HTTPStatusCode": "the HTTP status inside ResponseMetadata",
    "id": "Live.details['id']: ampd's own record of the workspace id",
    "details": "observe.aws.amp_status's own result dict",
    "HTTPHeaders": "the raw HTTP headers inside ResponseMetadata",
    "Retry-After": "an HTTP header of an error answer (see test_retry_after_is_modelled)",
    "retry-after": "the same header as botocore spells it (lower case)",
    "AWS_REGION": "os.environ.get: the environment, not an answer",
}

# Codes of other services that once were matched and no operation ampd calls sends.
DEAD_CODES = {
    "NotFoundException",  # API Gateway
    "EC2ThrottledException",  # EC2
    "RequestLimitExceeded",  # EC2
    "UnauthorizedOperation",  # EC2
    "SlowDown",  # S3
    "TooManyRequestsException",  # Lambda, API Gateway
    "ProvisionedThroughputExceededException",  # DynamoDB, Kinesis
}


# ---------------------------------------------------------------- the models


@functools.cache
def _service(name: str) -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model(name)


@functools.cache
def called() -> dict[str, str]:
    """Every operation the gateways call (``self._call``/``_get``/``_pages``/``_delete`` with
    a literal service and operation): name -> botocore service."""
    out: dict[str, str] = {}
    for path in GATEWAYS:
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self"
            ):
                continue
            literals = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
            if len(literals) == 2 and literals[0] in SERVICES:
                out[str(literals[1])] = SERVICES[str(literals[0])]
    return out


def operation(name: str) -> OperationModel:
    return _service(called()[name]).operation_model(name)


def resolve(op: str, path: str) -> Shape:
    """The shape at ``path`` in ``op``'s output; AssertionError naming the missing step."""
    shape: Shape | None = operation(op).output_shape
    walked = op
    for step in path.split("."):
        name, items = (step[:-2], True) if step.endswith("[]") else (step, False)
        assert isinstance(shape, StructureShape), f"{walked}: not a structure, no {name!r}"
        assert name in shape.members, f"{walked}: {shape.name} has no member {name!r}"
        shape = shape.members[name]
        walked += f".{step}"
        if items:
            assert isinstance(shape, ListShape), f"{walked}: {shape.name} is not a list"
            shape = shape.member
    assert shape is not None
    return shape


READ_PATHS = [(op, p) for op, paths in READS.items() for p in paths]


# ---------------------------------------------------------------- (a) the table vs the models


@pytest.mark.parametrize(("op", "path"), READ_PATHS, ids=[f"{o}:{p}" for o, p in READ_PATHS])
def test_every_path_ampd_reads_is_in_the_model(op: str, path: str) -> None:
    assert op in called(), f"{op} is in READS but no gateway calls it"
    resolve(op, path)


@pytest.mark.parametrize("where", sorted(COMPARED))
def test_every_status_ampd_compares_is_in_the_members_enum(where: str) -> None:
    op, _, path = where.partition(":")
    assert path in READS[op], f"{where}: compared but not in READS"
    shape = resolve(op, path)
    assert isinstance(shape, StringShape) and shape.enum, f"{where}: {shape.name} has no enum"
    assert COMPARED[where] <= set(shape.enum), (
        f"{where}: {sorted(COMPARED[where] - set(shape.enum))} not in {shape.name}"
    )


def test_the_compared_table_covers_ampds_status_constants() -> None:
    amp = {k: v for k, v in COMPARED.items() if k.endswith("status.statusCode")}
    compared = TRANSITIONAL | FAILED | {"ACTIVE"}
    for where, values in amp.items():
        op, _, path = where.partition(":")
        shape = resolve(op, path)
        assert isinstance(shape, StringShape)
        enum = set(shape.enum)
        # each path lists exactly the compared values its member can take
        assert values == compared & enum, where
    assert set().union(*amp.values()) == compared
    for where in (
        "ListWorkspaces:workspaces[].status.statusCode",
        "DescribeWorkspace:workspace.status.statusCode",
    ):
        assert COMPARED[where] >= _GONE
    # every status path ampd reads is in COMPARED
    status_reads = {f"{op}:{p}" for op, p in READ_PATHS if p.endswith("status.statusCode")}
    assert status_reads == set(amp)


def test_a_path_the_model_lacks_is_refused() -> None:
    """The walk itself: the finding of issue #24 (prometheusEndpoint in a summary)."""
    with pytest.raises(AssertionError, match="WorkspaceSummary has no member 'prometheusEndpoint'"):
        resolve("ListWorkspaces", "workspaces[].prometheusEndpoint")
    described = resolve("DescribeWorkspace", "workspace")
    assert isinstance(described, StructureShape)
    assert "prometheusEndpoint" in described.members
    status = resolve("DescribeWorkspace", "workspace.status.statusCode")
    assert isinstance(status, StringShape)
    assert "UPDATE_FAILED" not in status.enum


# ---------------------------------------------------------------- (b) the code vs the table


def literal_reads(source: str) -> Iterator[tuple[str, int]]:
    """String keys read with ``x["Key"]`` (not stores) and ``x.get("Key", ...)``."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            yield node.slice.value, node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def segments() -> set[str]:
    return {s.removesuffix("[]") for paths in READS.values() for p in paths for s in p.split(".")}


def test_the_scan_finds_reads() -> None:
    src = 'r["Role"]["Arn"]\nw.get("status") or {}\nkw["Marker"] = 1\nx.get(name)\n'
    assert sorted(literal_reads(src)) == [("Arn", 1), ("Role", 1), ("status", 2)]


@pytest.mark.parametrize("path", READERS)
def test_every_key_ampd_reads_is_in_the_table(path: str) -> None:
    known = segments()
    missing = sorted(
        f"{path}:{line}: {key!r}"
        for key, line in literal_reads((ROOT / path).read_text())
        if key not in known and key not in NOT_RESPONSE_READS
    )
    assert not missing, f"read from an AWS answer but not in aws_reads.READS: {missing}"


def test_every_operation_ampd_calls_is_in_the_table() -> None:
    assert set(called()) - set(READS) == set()
    assert set(READS) - set(called()) == set()


def test_the_exclusions_are_all_still_needed() -> None:
    found = {k for path in READERS for k, _ in literal_reads((ROOT / path).read_text())}
    assert set(NOT_RESPONSE_READS) - found == set()
    assert set(NOT_RESPONSE_READS) & segments() == set()


# ---------------------------------------------------------------- (c) error codes


def sent_codes() -> dict[str, set[str]]:
    """Each error code an operation ampd calls models (shape name and error.code) -> ops."""
    out: dict[str, set[str]] = {}
    for op in called():
        for shape in operation(op).error_shapes:
            for code in {shape.name, shape.metadata.get("error", {}).get("code")} - {None}:
                out.setdefault(str(code), set()).add(op)
    return out


CODES = sorted({(cat, c) for cat, codes in ERROR_CODES.items() for c in codes})


@pytest.mark.parametrize(("category", "code"), CODES, ids=[c for _, c in CODES])
def test_every_code_ampd_matches_can_be_sent(category: str, code: str) -> None:
    assert code in sent_codes() or code in COMMON_ERRORS, (
        f"{category}: {code} is sent by no operation ampd calls and is not a common AWS error"
    )


def matched_codes() -> set[str]:
    """Every error code aws_base compares a code with: its ``_*_CODES`` sets and literals."""
    tree = ast.parse((ROOT / "ampd/aws/gateway/base.py").read_text())
    out: set[str] = set()
    for name in dir(aws_base):
        if re.fullmatch(r"_[A-Z_]+_CODES", name):
            out |= set(getattr(aws_base, name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(n, ast.Name) and n.id == "code" for n in [node.left, *node.comparators]
        ):
            for n in ast.walk(node):
                if isinstance(n, ast.Constant) and isinstance(n.value, str):
                    out.add(n.value)
    return out


def test_the_table_is_what_aws_base_matches() -> None:
    assert matched_codes() == set().union(*ERROR_CODES.values())


def test_no_dead_codes_are_matched() -> None:
    assert not DEAD_CODES & matched_codes()
    assert not DEAD_CODES & set(sent_codes())  # the list above is truly dead
    assert not DEAD_CODES & COMMON_ERRORS


def test_retry_after_is_modelled() -> None:
    """aws_base reads ``Retry-After`` from error answers: AMP's models put it on errors
    of the operations ampd calls (``retryAfterSeconds``, bound to that header)."""
    bound = {
        (op, shape.name)
        for op in called()
        for shape in operation(op).error_shapes
        if isinstance(shape, StructureShape)
        for member in shape.members.values()
        if member.serialization.get("location") == "header"
        and member.serialization.get("name") == "Retry-After"
    }
    assert ("DescribeWorkspace", "ThrottlingException") in bound
    assert ("DescribeWorkspace", "InternalServerException") in bound
