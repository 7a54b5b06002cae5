"""What the AppConfig emulator tests share: a world (application ``ampd``, environment
``prod`` monitoring an alarm, hosted profile ``state`` with a JSON Schema validator),
hosts that poll the Data API as a well-behaved client does, and error unpacking."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import REGION

SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["replicas"],
    "properties": {"replicas": {"type": "integer", "minimum": 1}},
}
ALARM = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:ampd-errors"
ALARM_ROLE = "arn:aws:iam::123456789012:role/appconfig-alarms"
LINEAR50 = "AppConfig.Linear50PercentEvery30Seconds"


@dataclass
class World:
    em: AwsEmulator
    ac: Any  # appconfig client
    data: Any  # appconfigdata client
    app: str
    env: str
    profile: str

    def version(self, doc: dict[str, Any], label: str | None = None) -> int:
        extra = {"VersionLabel": label} if label else {}
        r = self.ac.create_hosted_configuration_version(
            ApplicationId=self.app,
            ConfigurationProfileId=self.profile,
            Content=json.dumps(doc).encode(),
            ContentType="application/json",
            **extra,
        )
        r["Content"].read()  # a streamed payload: unread, it would hold its connection
        return int(r["VersionNumber"])

    def deploy(self, version: int, strategy: str = "AppConfig.AllAtOnce") -> dict[str, Any]:
        return dict(
            self.ac.start_deployment(
                ApplicationId=self.app,
                EnvironmentId=self.env,
                DeploymentStrategyId=strategy,
                ConfigurationProfileId=self.profile,
                ConfigurationVersion=str(version),
            )
        )

    def deployment(self, number: int) -> dict[str, Any]:
        return dict(
            self.ac.get_deployment(
                ApplicationId=self.app, EnvironmentId=self.env, DeploymentNumber=number
            )
        )

    def session(self, interval: int = 15, by_name: bool = True) -> str:
        names = ("ampd", "prod", "state") if by_name else (self.app, self.env, self.profile)
        r = self.data.start_configuration_session(
            ApplicationIdentifier=names[0],
            EnvironmentIdentifier=names[1],
            ConfigurationProfileIdentifier=names[2],
            RequiredMinimumPollIntervalInSeconds=interval,
        )
        return str(r["InitialConfigurationToken"])


class Host:
    """One session that polls as a well-behaved client: never before its interval."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.token = w.session()
        self.seen: dict[str, Any] | None = None
        self.interval = 0

    def poll(self) -> bytes:
        r = self.w.data.get_latest_configuration(ConfigurationToken=self.token)
        self.token = r["NextPollConfigurationToken"]
        self.interval = int(r["NextPollIntervalInSeconds"])
        body = bytes(r["Configuration"].read())
        if body:
            self.seen = json.loads(body)
        return body


def settle(w: World) -> None:
    """Every session may poll again (AppConfig's clock moves past the poll interval)."""
    w.em.appconfig.advance(15)


def make_world(aws_emulator: AwsEmulator) -> World:
    """An application ``ampd`` with environment ``prod`` (monitoring ``ALARM``) and a hosted
    profile ``state`` validated by ``SCHEMA``."""
    em = aws_emulator
    ac = em.client("appconfig", REGION)
    data = em.client("appconfigdata", REGION)
    app = ac.create_application(Name="ampd")["Id"]
    env = ac.create_environment(
        ApplicationId=app, Name="prod", Monitors=[{"AlarmArn": ALARM, "AlarmRoleArn": ALARM_ROLE}]
    )["Id"]
    profile = ac.create_configuration_profile(
        ApplicationId=app,
        Name="state",
        LocationUri="hosted",
        Validators=[{"Type": "JSON_SCHEMA", "Content": json.dumps(SCHEMA)}],
    )["Id"]
    return World(em, ac, data, app, env, profile)


def deploy_first(world: World) -> World:
    """``replicas: 1`` (version 1, label ``first``) deployed and COMPLETE; deployments held."""
    world.em.appconfig.hold(True)
    v1 = world.version({"replicas": 1}, label="first")
    world.deploy(v1)
    world.em.appconfig.step(world.app, world.env)  # AllAtOnce: 100 %, BAKING
    assert world.em.appconfig.step(world.app, world.env)["State"] == "COMPLETE"
    return world


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, dict[str, Any]]:
    r = excinfo.value.response
    return r["Error"]["Code"], int(r["ResponseMetadata"]["HTTPStatusCode"]), dict(r)


def start_hosts(w: World, n: int) -> list[Host]:
    hosts = [Host(w) for _ in range(n)]
    for h in hosts:
        h.poll()
    return hosts


def poll_all(w: World, hosts: list[Host]) -> list[int]:
    settle(w)
    for h in hosts:
        h.poll()
    return [h.seen["replicas"] if h.seen else 0 for h in hosts]


def make_strategy(
    ac: Any, name: str, growth: float = 100.0, minutes: int = 0, bake: int = 0
) -> str:
    """A linear deployment strategy of one's own (``growth`` % a step over ``minutes``,
    then ``bake`` minutes of bake time); the default deploys at once, with no bake."""
    return str(
        ac.create_deployment_strategy(
            Name=name,
            DeploymentDurationInMinutes=minutes,
            GrowthType="LINEAR",
            GrowthFactor=growth,
            FinalBakeTimeInMinutes=bake,
            ReplicateTo="NONE",
        )["Id"]
    )
