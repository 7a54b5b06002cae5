"""``appconfig:APP/ENV/PROFILE`` against the AWS emulator's AppConfig (its Data API and
deployments, held to botocore's models): ampd's real fetcher and state source, on a fake
monotonic clock that moves together with AppConfig's (``em.appconfig.advance``).

- a deployed version is read, a new one arrives only when deployed, and only at the
  server's pace (no early poll, ever);
- a version that passes AppConfig's validator but not ``ampd validate`` never replaces the
  good one (StateSourceValid=False, the last good keeps running);
- files come from sibling profiles of the same application and environment, or from the
  document itself (``content``: no other profile is read);
- an unknown application and an unreachable AppConfig say so, and the cached copy runs;
- ``ampd validate --state appconfig:...`` reads through the Data API;
- ``ampd policy host`` looks the names' ids up, and the policy it prints allows exactly the
  calls a host makes (the emulator's SimulatePrincipalPolicy decides).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import SourceFetcher
from ampd.source.specfile import file_problems
from ampd.source.state import StateSource
from tests.harness.appconfig_world import make_strategy
from tests.harness.aws_emulator import ACCOUNT_ID, AwsEmulator
from tests.harness.clock import FakeClock
from tests.harness.fixtures_aws import REGION, AwsEnv
from tests.harness.iam_calls import authorizations
from tests.harness.iam_eval import Request, decide

REF = "appconfig:fleet/prod/ampd"
RULES = "groups:\n  - name: node\n    rules:\n      - record: up:sum\n        expr: sum(up)\n"


def state(interval: str = "15s", *, rules: bool = False, extra: str = "") -> bytes:
    doc: dict[str, Any] = {
        "version": 1,
        "stack": "fleet",
        "prometheus": {"enabled": False},
        "state_source": {"poll_interval": interval},
    }
    if rules:
        doc["workspace"] = {"id": "ws-1", "rule_groups": [{"name": "node", "file": "rules.yml"}]}
    text = json.dumps(doc)
    return (text[:-1] + extra + "}").encode() if extra else text.encode()


@dataclass
class World:
    em: AwsEmulator
    ac: Any
    app: str
    env: str
    profiles: dict[str, str]  # name -> id
    strategy: str

    def profile(self, name: str) -> str:
        if name not in self.profiles:
            self.profiles[name] = self.ac.create_configuration_profile(
                ApplicationId=self.app, Name=name, LocationUri="hosted"
            )["Id"]
        return self.profiles[name]

    def deploy(self, name: str, content: bytes, label: str, kind: str = "json") -> int:
        profile = self.profile(name)
        v = self.ac.create_hosted_configuration_version(
            ApplicationId=self.app,
            ConfigurationProfileId=profile,
            Content=content,
            ContentType=f"application/{kind}",
            VersionLabel=label,
        )
        v["Content"].read()
        d = self.ac.start_deployment(
            ApplicationId=self.app,
            EnvironmentId=self.env,
            DeploymentStrategyId=self.strategy,
            ConfigurationProfileId=profile,
            ConfigurationVersion=str(v["VersionNumber"]),
        )
        return int(d["DeploymentNumber"])


@pytest.fixture
def world(aws_emulator: AwsEmulator, aws_emulator_env: AwsEnv) -> Iterator[World]:
    ac = aws_emulator.client("appconfig", REGION)
    app = ac.create_application(Name="fleet")["Id"]
    env = ac.create_environment(ApplicationId=app, Name="prod")["Id"]
    yield World(aws_emulator, ac, app, env, {}, make_strategy(ac, "now"))
    assert aws_emulator.appconfig.early_polls() == [], "a poll before the server's interval"


def source(clock: FakeClock, cache: Path | None = None) -> tuple[StateSource, SourceFetcher]:
    fetcher = SourceFetcher(REGION, clock=clock)
    src = StateSource(
        REF,
        cache,
        fetcher,
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        clock=clock,
        files=FileWriter() if cache is not None else None,
    )
    return src, fetcher


def advance(w: World, clock: FakeClock, seconds: float) -> None:
    """Time passes for the host and for AppConfig alike."""
    clock.advance(seconds)
    w.em.appconfig.advance(seconds)


def data_calls(w: World) -> list[str]:
    return [r.operation for r in w.em.requests if r.service == "appconfigdata"]


def test_a_host_reads_what_is_deployed_and_polls_at_the_servers_pace(world: World) -> None:
    w, clock = world, FakeClock()
    w.deploy("ampd", state("15s"), "v1")
    src, _ = source(clock)
    assert src.current().spec.stack == "fleet" and src.version() == "v1"
    assert data_calls(w) == ["StartConfigurationSession", "GetLatestConfiguration"]
    # published but not deployed: nothing changes for the host
    v = w.ac.create_hosted_configuration_version(
        ApplicationId=w.app,
        ConfigurationProfileId=w.profiles["ampd"],
        Content=state("20s"),
        ContentType="application/json",
        VersionLabel="v2",
    )
    v["Content"].read()
    for _ in range(3):
        advance(w, clock, src.next_poll_in())
        src.current()
    assert src.version() == "v1"
    # an operator's reload never makes it poll sooner than AppConfig allows
    src.look_now()
    src.current()
    assert data_calls(w).count("GetLatestConfiguration") == 4
    assert src.next_poll_in() >= 15 * 0.99  # what is left of the server's interval, or more
    w.deploy("ampd", state("20s"), "v2")
    advance(w, clock, src.next_poll_in())
    assert src.current().spec.state_source.poll_interval == "20s"
    assert src.version() == "v2"
    # the state asks for 20 s now: one new session asks the server for it
    advance(w, clock, src.next_poll_in())
    src.current()
    sessions = [r.params for r in w.em.requests if r.operation == "StartConfigurationSession"]
    assert [p["RequiredMinimumPollIntervalInSeconds"] for p in sessions] == [15, 20]


def test_a_server_that_stretches_the_interval_is_obeyed(world: World) -> None:
    """AppConfig may answer a longer NextPollIntervalInSeconds than the session asked for
    (a throttled account): the host waits that long, whatever its own interval says."""
    w, clock = world, FakeClock()
    w.deploy("ampd", state("15s"), "v1")
    w.em.appconfig.poll_interval(300)
    src, _ = source(clock)
    src.current()
    assert src.next_poll_in() >= 300
    advance(w, clock, 299)
    src.look_now()  # an operator's reload: still not before the server's time
    src.current()
    assert data_calls(w).count("GetLatestConfiguration") == 1
    advance(w, clock, src.next_poll_in())
    src.current()
    assert data_calls(w).count("GetLatestConfiguration") == 2


def test_a_version_ampd_refuses_never_replaces_the_good_one(world: World) -> None:
    w, clock = world, FakeClock()
    w.deploy("ampd", state(), "v1")
    src, _ = source(clock)
    src.current()
    # valid JSON, a valid-looking document, but a listener beyond loopback without opt-in
    bad = state(extra=', "metrics": {"listen": "0.0.0.0:9795"}')
    w.deploy("ampd", bad, "v2-bad")
    advance(w, clock, src.next_poll_in())
    assert src.current().spec.stack == "fleet" and src.version() == "v1"
    valid = {c.type: c for c in src.conditions()}["StateSourceValid"]
    assert valid.status.value == "False" and "metrics.listen" in valid.message, valid


def test_files_come_from_sibling_profiles_of_the_same_environment(world: World) -> None:
    w, clock = world, FakeClock()
    w.deploy("rules.yml", RULES.encode(), "r1", kind="x-yaml")
    w.deploy("ampd", state(rules=True), "v1")
    src, _ = source(clock)
    loaded = src.current()
    assert loaded.spec.workspace is not None
    assert src.pushed_files() and RULES.encode() in src.pushed_files().values()
    ids = {p.get("_ids") for p in (r.params for r in w.em.requests) if p.get("_ids")}
    assert {i[2] for i in ids} == {w.profiles["ampd"], w.profiles["rules.yml"]}  # type: ignore[index]


def test_rules_written_in_the_state_need_no_sibling_profile(world: World) -> None:
    w, clock = world, FakeClock()
    doc = json.loads(state())
    doc["workspace"] = {"id": "ws-1", "rule_groups": [{"name": "node", "content": RULES}]}
    w.deploy("ampd", json.dumps(doc).encode(), "v1")
    src, _ = source(clock)
    ws = src.current().spec.workspace
    assert ws is not None and ws.rule_groups[0].content == RULES
    sessions = [r.params for r in w.em.requests if r.operation == "StartConfigurationSession"]
    assert [p["ConfigurationProfileIdentifier"] for p in sessions] == ["ampd"]


def test_an_unknown_profile_and_an_unreachable_appconfig_say_so(
    world: World, tmp_path: Path
) -> None:
    w, clock = world, FakeClock()
    src, _ = source(clock)
    with pytest.raises(Exception, match="no such application, environment or configuration"):
        src.current()
    w.deploy("ampd", state(), "v1")
    cache = tmp_path / "source"
    cache.mkdir()
    good, _ = source(clock, cache)
    good.current()
    # AppConfig goes away: a new host (a restart) runs the cached copy
    w.em.fail("StartConfigurationSession", status=500, code="InternalServerException", times=5)
    again, _ = source(clock, cache)
    assert again.current().spec.stack == "fleet" and again.version() == "v1"
    reach = {c.type: c for c in again.conditions()}["StateSourceReachable"]
    assert reach.status.value == "False", reach


def test_ampd_validate_reads_an_appconfig_state(world: World) -> None:
    world.deploy("ampd", state(), "v1")
    done = subprocess.run(
        [sys.executable, "-m", "ampd", "--state", REF, "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert REF in done.stdout and "valid" in done.stdout


def test_the_host_policy_allows_exactly_the_calls_a_host_makes(
    world: World, tmp_path: Path
) -> None:
    w, clock = world, FakeClock()
    w.deploy("rules.yml", RULES.encode(), "r1", kind="x-yaml")
    w.deploy("ampd", state(rules=True), "v1")
    done = subprocess.run(
        [sys.executable, "-m", "ampd", "--state", REF, "policy", "host", "--account", ACCOUNT_ID],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    policy = json.loads(done.stdout)
    w.em.reset_requests()
    src, _ = source(clock)
    src.current()
    advance(w, clock, src.next_poll_in())
    src.current()
    calls = [r for r in w.em.requests if r.service == "appconfigdata"]
    assert len(calls) == 6  # two profiles: a session and two polls each
    for call in calls:
        for request in authorizations(call):
            assert decide([policy], request) == "allowed", (call.operation, request)
    # ...and not one profile more: another environment's is refused
    other = authorizations(calls[0])[0]
    elsewhere = other.resource.replace(f"environment/{w.env}", "environment/zzzzzzz")
    assert decide([policy], Request(other.action, elsewhere)) == "implicitDeny"
