"""How the AWS gateway reads AWS's error answers, as botocore's amp/iam models describe them.

Each test goes through the real gateway (``make_gateway``) against the AWS emulator, which
answers in each service's own protocol; a few answers the emulator cannot give (a 503 with
``Retry-After``) come from botocore's Stubber. The retry book's minimum wait is here too:
it is what makes a server's ``Retry-After`` hold.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

import pytest
from botocore.stub import Stubber

from ampd.aws.gateway.base import CONFLICT_DELAY, THROTTLE_DELAY, AskedToWait
from ampd.aws.gateway.client import (
    AlreadyExists,
    ConcurrentEdit,
    ResourceGone,
    api_call_counts,
    make_gateway,
    reset_api_call_counts,
)
from ampd.engine.retry import BACKOFF_CAP, AtLeast, RetryBook
from ampd.errors import PermanentError, TemporaryError
from tests.aws.passes import AwsReadWrite, read_write
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import ANY_POLICY, EC2_TRUST, REGION, AwsEnv

TRUST = EC2_TRUST
DOC = ANY_POLICY
RULES = b"groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n"
ALERTS = (
    b"alertmanager_config: |\n  route:\n    receiver: default\n  receivers:\n  - name: default\n"
)
LOG_GROUP = f"arn:aws:logs:{REGION}:123456789012:log-group:ampd:*"


@pytest.fixture
def gw(aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator) -> Iterator[AwsReadWrite]:
    aws_emulator.instant()
    reset_api_call_counts()
    yield read_write(make_gateway(REGION))


def workspace(gw: AwsReadWrite) -> str:
    return str(gw.create_workspace("errors", {}, "token-errors", None)["workspaceId"])


# -- IAM ConcurrentModification ----------------------------------------------------------


def test_iam_concurrent_modification_is_temporary(
    gw: AwsReadWrite, aws_emulator: AwsEmulator
) -> None:
    """Old line caught: the fall-through ``return PermanentError(where)`` (409 was not
    matched), so the role stayed blocked until the state file changed."""
    gw.create_role("busy", TRUST, {}, "test")
    aws_emulator.fail("TagRole", 1, status=409, code="ConcurrentModification", message="busy")
    with pytest.raises(TemporaryError) as caught:
        gw.tag_role("busy", {"a": "b"})
    assert not isinstance(caught.value, PermanentError)
    assert caught.value.delay == CONFLICT_DELAY
    gw.tag_role("busy", {"a": "b"})  # the next try goes through
    assert gw.get_role("busy")["Tags"] == {"a": "b"}  # type: ignore[index]


# -- not found on a delete: done ---------------------------------------------------------


def test_not_found_on_amp_deletes_counts_as_done(gw: AwsReadWrite) -> None:
    """Old line caught: deletes went through ``_call``, whose ResourceNotFoundException was
    a PermanentError."""
    ws = workspace(gw)
    gw.delete_rule_group(ws, "never-made")
    gw.delete_alertmanager(ws)
    gw.delete_logging(ws)
    gw.delete_workspace("ws-00000000-0000-0000-0000-000000000000")
    counts = api_call_counts()
    for op in (
        "DeleteRuleGroupsNamespace",
        "DeleteAlertManagerDefinition",
        "DeleteLoggingConfiguration",
        "DeleteWorkspace",
    ):
        assert counts.get((op, "ResourceNotFoundException")) == 1, (op, counts)


def test_no_such_entity_on_iam_deletes_counts_as_done(gw: AwsReadWrite) -> None:
    gw.create_role("kept", TRUST, {}, "test")
    gw.create_instance_profile("lonely", {})
    gw.delete_inline_policy("kept", "never-put")
    gw.detach_policy("kept", "arn:aws:iam::aws:policy/ReadOnlyAccess")
    gw.remove_role_from_instance_profile("never-made", "kept")
    gw.delete_instance_profile("never-made")
    gw.delete_role("never-made")
    counts = api_call_counts()
    for op in (
        "DeleteRolePolicy",
        "DetachRolePolicy",
        "RemoveRoleFromInstanceProfile",
        "DeleteInstanceProfile",
    ):
        assert counts.get((op, "NoSuchEntity")) == 1, (op, counts)
    # a role that is gone: its first list says so, and nothing more is asked
    assert counts.get(("ListRolePolicies", "NoSuchEntity")) == 1
    assert ("DeleteRole", "OK") not in counts


def test_delete_role_whose_delete_finds_it_gone(
    gw: AwsReadWrite, aws_emulator: AwsEmulator
) -> None:
    """A concurrent writer deleted the role between ampd's lists and its DeleteRole."""
    gw.create_role("racing", TRUST, {}, "test")
    aws_emulator.fail("DeleteRole", 1, status=404, code="NoSuchEntity", message="gone")
    gw.delete_role("racing")
    assert api_call_counts().get(("DeleteRole", "NoSuchEntity")) == 1


# -- not found on a write: the cached resource is gone -----------------------------------


def test_not_found_on_amp_writes_is_resource_gone(gw: AwsReadWrite) -> None:
    """Old line caught: ``return PermanentError(where)``: a Put on a rule group deleted
    outside ampd stayed blocked by fingerprint, and so did the create that replaced it."""
    ws = workspace(gw)
    writes: list[Callable[[], object]] = [
        lambda: gw.put_rule_group(ws, "deleted-outside", RULES),
        lambda: gw.put_alertmanager(ws, ALERTS),
        lambda: gw.update_logging(ws, LOG_GROUP),
        lambda: gw.create_rule_group("ws-00000000-0000-0000-0000-000000000000", "n", RULES, {}),
    ]
    for write in writes:
        with pytest.raises(ResourceGone) as caught:
            write()
        assert caught.value.delay == 0.0
        assert "ResourceNotFoundException" in str(caught.value)


def test_no_such_entity_on_iam_writes_is_resource_gone(
    gw: AwsReadWrite, aws_emulator: AwsEmulator
) -> None:
    gw.create_instance_profile("profile", {})
    iam = aws_emulator.client("iam")
    arn = iam.create_policy(PolicyName="there", PolicyDocument=json.dumps(DOC))["Policy"]["Arn"]
    writes: list[Callable[[], object]] = [
        lambda: gw.put_inline_policy("deleted-outside", "p", DOC),
        lambda: gw.tag_role("deleted-outside", {"a": "b"}),
        lambda: gw.update_trust_policy("deleted-outside", TRUST),
        lambda: gw.attach_policy("deleted-outside", arn),
        lambda: gw.add_role_to_instance_profile("profile", "deleted-outside"),
    ]
    for write in writes:
        with pytest.raises(ResourceGone):
            write()
    # A managed policy named in the state file that is not there: re-reading cannot help,
    # so it stays permanent (a ResourceGone's delay 0 would re-plan the same attach).
    gw.create_role("attached", TRUST, {}, "test")
    missing = "arn:aws:iam::123456789012:policy/not-there"
    with pytest.raises(PermanentError) as caught:
        gw.attach_policy("attached", missing)
    assert "NoSuchEntity" in str(caught.value)


# -- already exists ----------------------------------------------------------------------


def test_entity_already_exists_is_already_exists(gw: AwsReadWrite) -> None:
    """Old line caught: ``return PermanentError(where)`` for EntityAlreadyExists."""
    gw.create_role("twice", TRUST, {}, "test")
    gw.create_instance_profile("twice", {})
    with pytest.raises(AlreadyExists):
        gw.create_role("twice", TRUST, {}, "test")
    with pytest.raises(AlreadyExists):
        gw.create_instance_profile("twice", {})


def test_amp_conflict_on_a_child_that_is_there_is_already_exists(
    gw: AwsReadWrite, aws_emulator: AwsEmulator
) -> None:
    """Old line caught: ``if code == "ConflictException": return TemporaryError(...)``,
    which retried a create that can never succeed every 5 s, for ever."""
    ws = workspace(gw)
    gw.create_alertmanager(ws, ALERTS)
    gw.create_rule_group(ws, "twice", RULES, {})
    creates: list[Callable[[], object]] = [
        lambda: gw.create_alertmanager(ws, ALERTS),
        lambda: gw.create_rule_group(ws, "twice", RULES, {}),
    ]
    for create in creates:
        with pytest.raises(AlreadyExists):
            create()
    # a ConflictException about the workspace's state is still a wait
    aws_emulator.creation_delay(600)
    busy = str(gw.create_workspace("busy", {}, "token-busy", None)["workspaceId"])
    with pytest.raises(TemporaryError) as caught:
        gw.create_rule_group(busy, "early", RULES, {})
    assert not isinstance(caught.value, AlreadyExists)
    assert caught.value.delay == CONFLICT_DELAY


def test_a_stale_resource_policy_revision_is_a_concurrent_edit(
    gw: AwsReadWrite, aws_emulator: AwsEmulator
) -> None:
    """A put or delete with the revision read, after someone else's edit: ConcurrentEdit
    (read again; nothing overwritten). A policy still in transit is a wait, as ever."""
    ws = workspace(gw)
    doc = {"Version": "2012-10-17", "Statement": []}
    gw.put_resource_policy(ws, doc, None)
    read = gw.describe_resource_policy(ws)
    assert read is not None
    gw.put_resource_policy(ws, doc, str(read["revisionId"]))  # someone else's edit
    for stale in (
        lambda: gw.put_resource_policy(ws, doc, str(read["revisionId"])),
        lambda: gw.delete_resource_policy(ws, str(read["revisionId"])),
    ):
        with pytest.raises(ConcurrentEdit) as caught:
            stale()
        assert caught.value.delay == 0.0
    aws_emulator.transition_delay(600)
    current = gw.describe_resource_policy(ws)
    assert current is not None
    gw.put_resource_policy(ws, doc, str(current["revisionId"]))  # UPDATING for 600 s
    with pytest.raises(TemporaryError) as busy:
        gw.put_resource_policy(ws, doc, None)
    assert not isinstance(busy.value, ConcurrentEdit)
    assert busy.value.delay == CONFLICT_DELAY


# -- throttling and Retry-After ----------------------------------------------------------


def test_retry_after_on_a_throttled_answer_is_a_minimum_wait(
    gw: AwsReadWrite, aws_emulator: AwsEmulator
) -> None:
    """Old lines caught: ``TemporaryError(where, delay=THROTTLE_DELAY)`` ignored the header,
    and the book's jitter could halve any delay."""
    ws = workspace(gw)
    aws_emulator.throttle("DescribeWorkspace", 1, retry_after=42)
    with pytest.raises(AskedToWait) as caught:
        gw.describe_workspace(ws)
    assert caught.value.retry_after == 42.0
    assert caught.value.delay == 42.0 and isinstance(caught.value.delay, AtLeast)
    for seed in range(20):
        book = RetryBook(random.Random(seed))
        waits = [book.failed_temporarily("k", caught.value.delay) for _ in range(4)]
        assert all(42.0 <= w <= BACKOFF_CAP for w in waits), (seed, waits)
    # without the header: the fixed throttling delay, no minimum
    aws_emulator.throttle("GetRole", 1)
    with pytest.raises(TemporaryError) as plain:
        gw.get_role("any")
    assert not isinstance(plain.value, AskedToWait)
    assert plain.value.delay == THROTTLE_DELAY
    assert api_call_counts().get(("GetRole", "Throttling")) == 1


def test_retry_after_on_a_503_is_bounded_by_the_retry_books_cap(gw: AwsReadWrite) -> None:
    with Stubber(gw._amp) as stub:
        stub.add_client_error(
            "describe_workspace",
            "ServiceUnavailable",
            "Service Unavailable",
            http_status_code=503,
            response_meta={"HTTPHeaders": {"retry-after": "3600"}},
        )
        with pytest.raises(AskedToWait) as caught:
            gw.describe_workspace("ws-1")
    assert caught.value.retry_after == BACKOFF_CAP
    assert RetryBook(random.Random(0)).failed_temporarily("k", caught.value.delay) == BACKOFF_CAP


# -- codes no operation of ampd's is sent --------------------------------------------------


def test_codes_of_other_services_are_not_matched(gw: AwsReadWrite) -> None:
    """API Gateway's NotFoundException is no 'not found' of AMP's, EC2's RequestLimitExceeded
    no throttling of IAM's (the emulator, held to the models, cannot send them: the Stubber
    does). Old lines caught: the old ``_NOT_FOUND_CODES`` (a describe answered None) and
    ``_THROTTLING_CODES`` (retried)."""
    with Stubber(gw._amp) as amp, Stubber(gw._iam) as iam:
        amp.add_client_error("describe_workspace", "NotFoundException", "x", 404)
        iam.add_client_error("get_role", "RequestLimitExceeded", "x", 400)
        with pytest.raises(PermanentError):
            gw.describe_workspace("ws-1")
        with pytest.raises(PermanentError):
            gw.get_role("any")


# -- the retry book's minimum --------------------------------------------------------------


def test_retry_book_never_waits_less_than_a_minimum() -> None:
    """Old line caught: ``return backoff(delay, n, ...)``, jitter in [50 %, 100 %]."""
    for seed in range(50):
        book = RetryBook(random.Random(seed), cap=100)
        assert book.failed_temporarily("a", AtLeast(30)) >= 30
        book.failed_temporarily("b", 1.0)
        assert book.failed_temporarily("b", AtLeast(30)) >= 30  # a repeat keeps it too
        assert book.failed_temporarily("c", AtLeast(500)) == 100  # the cap still bounds it
    plain = [RetryBook(random.Random(s)).failed_temporarily("k", 30.0) for s in range(50)]
    assert min(plain) < 30  # without a minimum the jitter goes below


def test_retry_book_honours_a_zero_delay_once() -> None:
    """A ResourceGone (delay 0) re-plans at once; failing again in a row backs off instead
    of spinning. Old line caught: ``backoff(0, n)`` is 0 for every n."""
    book = RetryBook(random.Random(3))
    assert book.failed_temporarily("gone", 0.0) == 0.0
    again = [book.failed_temporarily("gone", 0.0) for _ in range(3)]
    assert all(w > 0 for w in again) and again[-1] > again[0] / 2
    book.succeeded("gone")
    assert book.failed_temporarily("gone", 0.0) == 0.0
