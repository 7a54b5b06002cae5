"""``appconfig:APP/ENV/PROFILE``, the pure and gateway layers: the reference and its
sibling profiles, the Data API session (tokens, the server's pacing, empty answers, the
version a host reports), the state source honouring the server's interval, the spec's
``state_source.location`` and the IAM statements. The same against the AWS emulator's
Data API and deployments: tests/source/test_appconfig_emulated.py."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ampd.aws.plan.arns import Arns, state_statements
from ampd.commands.policy import policy_command
from ampd.errors import AmpdError
from ampd.gateways.appconfigdata import MIN_POLL, AppConfigSessions, version_of
from ampd.gateways.sourceref import outside_prefix, parse_ref
from ampd.gateways.statesource import MAX_BYTES, Fetched, SourceError, SourceRef
from ampd.source.files import Paced
from ampd.source.state import StateSource
from ampd.spec.models import StateSpec
from tests.harness.clock import FakeClock

REF = "appconfig:fleet/prod/ampd"
GOOD = (
    b"version: 1\nstack: fleet\nprometheus:\n  enabled: false\n"
    b"state_source:\n  poll_interval: 30s\n"
)


# -- the reference --------------------------------------------------------------------------


def test_an_appconfig_ref_reads_back_as_written_and_names_its_parts() -> None:
    ref = parse_ref(REF)
    assert (ref.kind, str(ref), ref.parts, ref.remote) == (
        "appconfig",
        REF,
        ("fleet", "prod", "ampd"),
        True,
    )
    assert ref.prefix == "fleet/prod/"


@pytest.mark.parametrize(
    "text", ["appconfig:", "appconfig:a/b", "appconfig:a/b/c/d", "appconfig:a//c", "appconfig:/a/b"]
)
def test_a_malformed_appconfig_ref_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="APPLICATION/ENVIRONMENT/PROFILE"):
        parse_ref(text)


def test_a_file_beside_an_appconfig_state_is_a_sibling_profile() -> None:
    ref = parse_ref(REF)
    assert ref.beside("rules.yml") == SourceRef("appconfig", "fleet/prod/rules.yml")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("other/rules.yml", "one name, no '/'"),
        ("../x/rules", "'..'"),
        ("/abs", "absolute"),
        ("appconfig:fleet/dev/rules", "not another ssm:, s3:// or appconfig: name"),
        ("ssm:/x", "not another"),
    ],
)
def test_nothing_outside_the_application_and_environment_is_read(name: str, why: str) -> None:
    problem = outside_prefix(parse_ref(REF), name)
    assert problem is not None and why in problem, problem


# -- the Data API session -------------------------------------------------------------------


class FakeData:
    """An ``appconfigdata`` client: hands out ``versions`` (label, bytes) as AppConfig does
    (content only when it changed for that session), with the interval it was asked for."""

    def __init__(self, content: bytes = GOOD, label: str | None = "v1") -> None:
        self.content, self.label = content, label
        self.calls: list[str] = []
        self.tokens: set[str] = set()
        self.sessions = 0
        self.last_sent: dict[str, bytes] = {}  # session -> what it last received
        self.token_session: dict[str, str] = {}
        self.interval: dict[str, int] = {}
        self.fail_next: BaseException | None = None
        self.deployed = True

    def start_configuration_session(self, **kw: Any) -> dict[str, Any]:
        self.calls.append("start")
        assert 15 <= kw["RequiredMinimumPollIntervalInSeconds"] <= 86400
        self.sessions += 1
        session = f"s{self.sessions}"
        self.interval[session] = kw["RequiredMinimumPollIntervalInSeconds"]
        return {"InitialConfigurationToken": self._token(session)}

    def _token(self, session: str) -> str:
        token = f"{session}-t{len(self.token_session)}"
        self.tokens.add(token)
        self.token_session[token] = session
        return token

    def get_latest_configuration(self, ConfigurationToken: str) -> dict[str, Any]:
        self.calls.append("get")
        if self.fail_next is not None:
            e, self.fail_next = self.fail_next, None
            raise e
        if ConfigurationToken not in self.tokens:
            raise _client_error("BadRequestException", 400)
        self.tokens.discard(ConfigurationToken)  # a token is used once
        session = self.token_session[ConfigurationToken]
        body = b""
        if self.deployed and self.last_sent.get(session) != self.content:
            body = self.content
            self.last_sent[session] = self.content
        out: dict[str, Any] = {
            "NextPollConfigurationToken": self._token(session),
            "NextPollIntervalInSeconds": self.interval[session],
            "ContentType": "application/x-yaml",
            "Configuration": io.BytesIO(body),
        }
        if body and self.label:
            out["VersionLabel"] = self.label
        return out


def _client_error(code: str, status: int, problem: str = "Expired") -> ClientError:
    """As botocore parses AppConfig's: the modelled Reason and Details beside Error."""
    response: Any = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
        "Reason": "InvalidParameters",
        "Details": {"InvalidParameters": {"ConfigurationToken": {"Problem": problem}}},
    }
    return ClientError(response, "GetLatestConfiguration")


def sessions(data: FakeData, clock: FakeClock) -> AppConfigSessions:
    return AppConfigSessions(lambda: data, max_bytes=MAX_BYTES, clock=clock)


def test_the_first_look_starts_a_session_and_later_ones_use_the_next_token() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    ref = parse_ref(REF)
    first = s.look(ref, None)
    assert (first.version, first.data, first.error) == ("v1", GOOD, None)
    assert data.calls == ["start", "get"]
    clock.advance(MIN_POLL)
    again = s.look(ref, "v1")
    assert (again.version, again.data) == ("v1", None)  # unchanged: no bytes
    assert data.calls == ["start", "get", "get"]  # the same session, its next token


def test_no_call_is_made_before_the_server_lets_the_session_poll() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    s.pace(40)
    ref = parse_ref(REF)
    s.look(ref, None)
    assert data.interval["s1"] == 40  # the state's poll interval, asked of the server
    assert s.wait_before(ref) == 40
    clock.advance(39)
    early = s.look(ref, None)  # a caller that lost its copy still gets the bytes
    assert (early.version, early.data) == ("v1", GOOD)
    assert data.calls == ["start", "get"]
    clock.advance(1)
    s.look(ref, "v1")
    assert data.calls == ["start", "get", "get"]


def test_the_interval_asked_for_is_within_appconfigs_bounds() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    s.pace(5)  # a state may poll SSM every 5 s; AppConfig's floor is 15 s
    s.look(parse_ref(REF), None)
    assert data.interval["s1"] == MIN_POLL


def test_a_new_deployment_brings_the_new_bytes_and_its_label() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    ref = parse_ref(REF)
    s.look(ref, None)
    data.content, data.label = GOOD + b"# v2\n", "v2"
    clock.advance(MIN_POLL)
    got = s.look(ref, "v1")
    assert (got.version, got.data) == ("v2", GOOD + b"# v2\n")


def test_without_a_label_the_version_is_a_content_hash_and_a_reused_label_is_told_apart() -> None:
    assert version_of(None, b"x").startswith("sha256:") and len(version_of(None, b"x")) == 19
    data, clock = FakeData(label=None), FakeClock()
    s = sessions(data, clock)
    ref = parse_ref(REF)
    assert s.look(ref, None).version == version_of(None, GOOD)
    data.label = "same"
    data.content = GOOD + b"# a\n"
    clock.advance(MIN_POLL)
    a = s.look(ref, None).version
    data.content = GOOD + b"# b\n"
    clock.advance(MIN_POLL)
    b = s.look(ref, a)
    assert a == "same" and b.version != a and b.data == GOOD + b"# b\n"


def test_a_used_or_expired_token_starts_a_new_session_at_once() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    ref = parse_ref(REF)
    s.look(ref, None)
    data.tokens.clear()  # expired (24 h) or used elsewhere
    clock.advance(MIN_POLL)
    got = s.look(ref, "v1")
    assert got.error is None and (got.version, got.data) == ("v1", None)
    assert data.calls == ["start", "get", "get", "start", "get"]


def test_a_poll_the_server_finds_too_early_keeps_its_token_and_is_made_again_later() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    ref = parse_ref(REF)
    s.look(ref, None)
    clock.advance(MIN_POLL)
    data.fail_next = _client_error("BadRequestException", 400, "PollIntervalNotSatisfied")
    got = s.look(ref, "v1")
    assert got.error is None and (got.version, got.data) == ("v1", None)
    assert data.calls == ["start", "get", "get"]  # no new session
    assert s.wait_before(ref) > 0
    clock.advance(s.wait_before(ref))
    assert s.look(ref, "v1").error is None and data.calls[-1] == "get"
    assert data.calls.count("start") == 1


def test_a_failed_call_is_handed_back_and_the_next_look_starts_a_new_session() -> None:
    data, clock = FakeData(), FakeClock()
    s = sessions(data, clock)
    ref = parse_ref(REF)
    s.look(ref, None)
    clock.advance(MIN_POLL)
    data.fail_next = EndpointConnectionError(endpoint_url="https://appconfigdata")
    got = s.look(ref, "v1")
    assert isinstance(got.error, EndpointConnectionError)
    got = s.look(ref, "v1")
    assert got.error is None and data.calls[-2:] == ["start", "get"]


def test_a_profile_with_nothing_deployed_says_so() -> None:
    data, clock = FakeData(), FakeClock()
    data.deployed = False
    got = sessions(data, clock).look(parse_ref(REF), None)
    assert got.no_content and got.data is None and got.error is None


# -- the state source keeps to the server's pace ---------------------------------------------


class PacedFetcher:
    """The SourceFetcher's AppConfig path (its ``_appconfig`` is what turns an Answer into
    Fetched/SourceError; here the Answer is taken as it is)."""

    def __init__(self, s: AppConfigSessions) -> None:
        self.s = s

    def fetch(
        self, refs: Sequence[SourceRef], known: Any
    ) -> dict[SourceRef, Fetched | SourceError]:
        out: dict[SourceRef, Fetched | SourceError] = {}
        for ref in refs:
            a = self.s.look(ref, known.get(ref))
            assert a.error is None and a.version is not None
            out[ref] = Fetched(ref, a.version, a.data)
        return out

    def pace(self, seconds: float) -> None:
        self.s.pace(seconds)

    def wait_before(self, refs: Sequence[SourceRef]) -> float:
        return max((self.s.wait_before(r) for r in refs), default=0.0)


def test_the_state_source_never_looks_sooner_than_the_server_asks() -> None:
    data, clock = FakeData(), FakeClock()
    fetcher = PacedFetcher(sessions(data, clock))
    assert isinstance(fetcher, Paced)
    src = StateSource(REF, None, fetcher, validate=lambda _: [], clock=clock, rng=random.Random(7))
    assert src.current().spec.stack == "fleet"
    assert src.version() == "v1"
    # the document asks for 30 s (+-20 % jitter), but the session was started before it
    # was known, with AppConfig's 15 s floor; from then on it asks for 30 s
    for _ in range(20):
        clock.advance(src.next_poll_in())
        src.current()
        assert src.next_poll_in() >= data.interval[f"s{data.sessions}"] - 1e-9
    assert data.calls.count("start") == 2  # a new interval, a new session, once
    assert data.interval["s2"] == 30


# -- the spec and IAM -----------------------------------------------------------------------


def test_state_source_location_takes_appconfig_ids_and_says_why_not_names() -> None:
    ok = StateSpec.model_validate(
        {"version": 1, "state_source": {"location": "appconfig:abc1234/def5678/ghi9012"}}
    )
    assert ok.state_source.location == "appconfig:abc1234/def5678/ghi9012"
    with pytest.raises(ValueError, match="IAM scopes AppConfig by id"):
        StateSpec.model_validate(
            {"version": 1, "state_source": {"location": "appconfig:fleet/production/ampd"}}
        )


def test_the_iam_statements_scope_the_data_api_to_the_profile_and_its_siblings() -> None:
    ws_arn = Arns.of("eu-west-1", "123456789012").workspace("ws-1")
    read, files = state_statements("appconfig:abc1234/def5678/ghi9012", ws_arn)
    assert read is not None and files is not None
    actions = ["appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"]
    base = "arn:aws:appconfig:eu-west-1:123456789012:application/abc1234/environment/def5678"
    assert (read["Action"], read["Resource"]) == (actions, f"{base}/configuration/ghi9012")
    assert (files["Action"], files["Resource"]) == (actions, f"{base}/configuration/*")


def _host_policy(location: str, resolve: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    spec = StateSpec.model_validate({"version": 1, "aws": {"region": "eu-west-1"}})
    rc = policy_command(
        spec,
        "host",
        region="eu-west-1",
        account="123456789012",
        gateway=lambda _r: pytest.fail("the account was given"),
        state_location=location,
        appconfig_ids=resolve,
        stdout=out,
        stderr=err,
    )
    return rc, out.getvalue(), err.getvalue()


def test_policy_host_looks_up_the_ids_of_an_appconfig_state_named_by_names() -> None:
    asked: list[tuple[str, str]] = []

    def resolve(location: str, region: str) -> str:
        asked.append((location, region))
        return "appconfig:abc1234/def5678/ghi9012"

    rc, out, _ = _host_policy(REF, resolve)
    assert rc == 0 and asked == [(REF, "eu-west-1")]
    doc = json.loads(out)
    [read] = [s for s in doc["Statement"] if s["Sid"] == "AmpdReadOwnState"]
    assert read["Resource"].endswith(
        ":application/abc1234/environment/def5678/configuration/ghi9012"
    )


def test_policy_host_refuses_names_it_cannot_turn_into_ids() -> None:
    def resolve(location: str, region: str) -> str:
        raise AmpdError("no AppConfig application 'fleet'")

    rc, out, err = _host_policy(REF, resolve)
    assert (rc, out) == (1, "")
    assert "IAM scopes AppConfig by id" in err and "no AppConfig application 'fleet'" in err
    rc, out, err = _host_policy("appconfig:abc1234/def5678/ghi9012", resolve)
    assert rc == 0 and "taking appconfig:abc1234/def5678/ghi9012 as ids" in err
