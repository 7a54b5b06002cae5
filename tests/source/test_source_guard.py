"""The destructive-change guard (issue 22): one fleet-wide push of a valid but
destructive state (``version: 1`` alone stops Prometheus everywhere) is held on every
running host until the document acknowledges it (``rollout: {allow_destructive: true}``)
or an operator accepts that version on a host (``ampd apply --accept VERSION``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from ampd import cli
from ampd.core import ConditionStatus
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import SourceFetcher
from ampd.source.guard import destructive_changes
from ampd.source.specfile import file_problems
from ampd.source.state import StateSource
from ampd.spec.models import StateSpec
from tests.harness.fixtures_aws import AwsEnv

NAME = "/fleet/prod/ampd"
JOBS = ["node", "app", "db", "cache"]


def doc(jobs: list[str] | None, *, workspace: bool = False, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"version": 1, "stack": "fleet", "metrics": {"enabled": False}}
    if jobs is not None:
        d["prometheus"] = {"scrape_configs": [{"job": j, "targets": ["127.0.0.1:9"]} for j in jobs]}
    if workspace:
        d["workspace"] = {"id": "ws-fleet"}
    d.update(extra)
    return d


def spec(d: dict[str, Any]) -> StateSpec:
    return StateSpec.model_validate(d)


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        (doc(JOBS), {"version": 1}, "stops Prometheus (no prometheus section)"),
        (doc(JOBS), doc(JOBS) | {"prometheus": {"enabled": False}}, "prometheus.enabled is false"),
        (doc(JOBS, workspace=True), doc(JOBS), "removes the workspace"),
        (
            doc(JOBS, workspace=True),
            doc(JOBS, workspace=True)
            | {
                "prometheus": {
                    "remote_write": None,
                    "scrape_configs": doc(JOBS)["prometheus"]["scrape_configs"],
                }
            },
            "removes prometheus.remote_write",
        ),
        (doc(JOBS), doc(["node"]), "drops 3 of 4 scrape jobs (app, cache, db)"),
    ],
)
def test_destructive_changes_are_named(
    before: dict[str, Any], after: dict[str, Any], reason: str
) -> None:
    reasons = destructive_changes(spec(before), spec(after))
    assert any(reason in r for r in reasons), reasons


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (doc(JOBS), doc([*JOBS, "extra"])),  # a job more
        (doc(JOBS), doc(["node", "app"])),  # half of them: not more than half
        (doc(JOBS), doc(["node", "app", "x", "y"])),  # renamed two of four
        ({"version": 1}, doc(JOBS)),  # Prometheus started
        (doc(JOBS), doc(JOBS, workspace=True)),  # a workspace added
    ],
)
def test_ordinary_changes_pass(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert destructive_changes(spec(before), spec(after)) == []


# -- a fleet of three hosts against the SSM emulator -----------------------------------


def publish(ssm: Any, d: dict[str, Any] | str) -> None:
    text = d if isinstance(d, str) else yaml.safe_dump(d, sort_keys=False)
    ssm.put_parameter(Name=NAME, Value=text, Type="SecureString", Overwrite=True)


def host(state_dir: Path, seed: int) -> StateSource:
    """One host's daemon side of the state source: its own cache under its state dir."""
    return StateSource(
        f"ssm:{NAME}",
        state_dir / "source",
        SourceFetcher(),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        rng=random.Random(seed),
        files=FileWriter(),
    )


def jobs_of(src: StateSource) -> list[str] | None:
    prom = src.current().spec.prometheus
    return None if prom is None else [s.job for s in prom.scrape_configs]


def condition(src: StateSource, ctype: str) -> Any:
    return {c.type: c for c in src.conditions()}[ctype]


def look(src: StateSource) -> bool:
    src.look_now()
    return src.poll()


def test_a_fleet_holds_a_destructive_push_until_it_is_acknowledged(
    aws_emulator_env: AwsEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ssm = boto3.client("ssm")
    publish(ssm, doc(JOBS))
    dirs = [tmp_path / f"host{i}" / "state" for i in range(3)]
    for d in dirs:
        d.mkdir(parents=True)
    hosts = [host(d, i) for i, d in enumerate(dirs)]
    assert [jobs_of(h) for h in hosts] == [JOBS] * 3
    running = [(d / "source" / "state.yml").read_text() for d in dirs]

    # the push: `version: 1` alone would stop Prometheus on the whole fleet
    publish(ssm, "version: 1\n")
    for h, d, before in zip(hosts, dirs, running, strict=True):
        assert look(h) is False
        assert jobs_of(h) == JOBS  # the last good version keeps running
        assert (d / "source" / "state.yml").read_text() == before
        held = condition(h, "StateSourceHeld")
        assert held.status == ConditionStatus.TRUE
        assert held.reason == "Destructive"
        assert held.message.startswith(f"ssm:{NAME} version 2 held: stops Prometheus")
        assert "running the last good version (1)" in held.message
        assert "ampd apply --accept 2" in held.message
        assert condition(h, "StateSourceValid").status == ConditionStatus.TRUE
        assert look(h) is False  # still held at the next look

    # an operator accepts version 2 on host 0 only
    monkeypatch.setenv("STATE_DIRECTORY", str(dirs[0]))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "host0" / "run"))
    monkeypatch.setenv("AMPD_STATE", f"ssm:{NAME}")
    monkeypatch.setenv("AMPD_RUNTIME", "supervisor")
    assert cli.main(["apply", "--accept", "2"]) == 0
    assert "StateSourceHeld" not in capsys.readouterr().err
    assert (dirs[0] / "source" / "state.yml").read_text() == "version: 1\n"
    assert look(hosts[0]) is True  # the daemon finds the acceptance and applies it
    assert jobs_of(hosts[0]) is None
    assert condition(hosts[0], "StateSourceHeld").status == ConditionStatus.FALSE
    for h in hosts[1:]:
        assert look(h) is False
        assert jobs_of(h) == JOBS
        assert condition(h, "StateSourceHeld").status == ConditionStatus.TRUE

    # a CLI run on a host that has not accepted it applies the last good version, and says so
    monkeypatch.setenv("STATE_DIRECTORY", str(dirs[1]))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "host1" / "run"))
    assert cli.main(["apply"]) == 0
    assert f"StateSourceHeld: ssm:{NAME} version 2 held" in capsys.readouterr().err
    assert 'job_name: "node"' in (dirs[1] / "generated" / "prometheus.yml").read_text()

    # the same cut, acknowledged in the document: applied by all three
    publish(ssm, doc(["node"], rollout={"allow_destructive": True}))
    for h in hosts:
        assert look(h) is True
        assert jobs_of(h) == ["node"]
        assert condition(h, "StateSourceHeld").status == ConditionStatus.FALSE
    # and an ordinary change is applied as before
    publish(ssm, doc(["node", "app"]))
    assert [look(h) for h in hosts] == [True] * 3


def test_accept_is_for_the_version_named(
    aws_emulator_env: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm = boto3.client("ssm")
    publish(ssm, doc(JOBS))
    h = host(tmp_path, 0)
    h.current()
    publish(ssm, "version: 1\n")
    assert look(h) is False
    h.accept("7")  # another version than the one held
    assert look(h) is False
    assert condition(h, "StateSourceHeld").status == ConditionStatus.TRUE
    monkeypatch.setenv("AMPD_STATE", "/etc/ampd/state.yml")
    assert cli.main(["apply", "--accept", "2"]) == 1  # a local file has no versions


def test_an_s3_version_is_accepted_by_its_etag_as_printed(
    aws_emulator_env: AwsEnv, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket="cfg", CreateBucketConfiguration={"LocationConstraint": aws_emulator_env.region}
    )
    s3.put_object(Bucket="cfg", Key="fleet/state.yml", Body=yaml.safe_dump(doc(JOBS)).encode())
    h = StateSource(
        "s3://cfg/fleet/state.yml",
        tmp_path / "source",
        SourceFetcher(),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        files=FileWriter(),
    )
    assert jobs_of(h) == JOBS
    etag = s3.put_object(Bucket="cfg", Key="fleet/state.yml", Body=b"version: 1\n")["ETag"]
    assert look(h) is False
    bare = etag.strip('"')
    held = condition(h, "StateSourceHeld")
    assert f"version {bare} held" in held.message
    assert f"ampd apply --accept {bare}" in held.message
    h.accept(bare)  # as the operator copies it from the message
    assert look(h) is True
    assert jobs_of(h) is None


def test_going_back_to_a_version_a_host_ran_is_a_rollback_not_held(
    aws_emulator_env: AwsEnv, tmp_path: Path
) -> None:
    """An AppConfig alarm (or an operator's revert) takes the fleet back to the version
    it ran: that is not the surprise the guard is for. A host that never ran it holds it."""
    ssm = boto3.client("ssm")
    grown = [*JOBS, "a", "b", "c", "d", "e", "f"]
    publish(ssm, doc(JOBS))
    old = host(tmp_path / "old", 0)
    assert jobs_of(old) == JOBS
    publish(ssm, doc(grown))
    assert look(old) is True and jobs_of(old) == grown
    new = host(tmp_path / "new", 1)  # booted while the grown version was out
    assert jobs_of(new) == grown

    publish(ssm, doc(JOBS))  # six of ten jobs gone: destructive, unless it is a rollback
    assert look(old) is True and jobs_of(old) == JOBS
    assert condition(old, "StateSourceHeld").status == ConditionStatus.FALSE
    assert look(new) is False and jobs_of(new) == grown
    held = condition(new, "StateSourceHeld")
    assert held.status == ConditionStatus.TRUE and "drops 6 of 10 scrape jobs" in held.message, (
        held.message
    )
