"""The AWS emulator's AppConfig deployments: validators at StartDeployment, staged
deployments (linear, exponential; held and stepped, or on a scaled clock) admitting
sessions by percentage, and rollbacks (stopped, reverted, or by a CloudWatch alarm on
the environment's monitors), with the controls under ``/_emulator/appconfig/``."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.harness.appconfig_world import (
    ALARM,
    LINEAR50,
    Host,
    World,
    error_of,
    poll_all,
    settle,
    start_hosts,
)
from tests.harness.wait import wait_for

# -- deployments --------------------------------------------------------------------------


def test_validator_refuses_a_bad_version_and_nothing_changes(deployed: World) -> None:
    host = Host(deployed)
    host.poll()
    bad = deployed.version({"replicas": "many"})
    with pytest.raises(ClientError) as e:
        deployed.deploy(bad)
    code, status, r = error_of(e)
    assert (code, status, r["Reason"]) == ("BadRequestException", 400, "InvalidConfiguration")
    detail = r["Details"]["InvalidConfiguration"][0]
    assert (detail["Constraint"], detail["Location"]) == ("type", "$.replicas")
    items = deployed.ac.list_deployments(ApplicationId=deployed.app, EnvironmentId=deployed.env)
    assert [d["DeploymentNumber"] for d in items["Items"]] == [1]
    settle(deployed)
    assert host.poll() == b""
    assert [s[4] for s in deployed.em.appconfig.sessions()] == [1]


def test_yaml_content_is_validated_as_its_document(deployed: World) -> None:
    r = deployed.ac.create_hosted_configuration_version(
        ApplicationId=deployed.app,
        ConfigurationProfileId=deployed.profile,
        Content=b"replicas: 0\n",
        ContentType="application/x-yaml",
    )
    r["Content"].read()
    with pytest.raises(ClientError) as e:
        deployed.deploy(r["VersionNumber"])
    detail = error_of(e)[2]["Details"]["InvalidConfiguration"][0]
    assert detail["Constraint"] == "minimum"


def test_linear_fifty_percent_held_admits_half_then_all(deployed: World) -> None:
    hosts = start_hosts(deployed, 4)
    v2 = deployed.version({"replicas": 2})
    started = deployed.deploy(v2, LINEAR50)
    assert (started["State"], started["DeploymentNumber"]) == ("DEPLOYING", 2)
    assert poll_all(deployed, hosts) == [1, 1, 1, 1]  # held at 0 %
    assert deployed.em.appconfig.step(deployed.app, "prod")["PercentageComplete"] == 50.0
    assert sorted(poll_all(deployed, hosts)) == [1, 1, 2, 2]
    assert sorted(poll_all(deployed, hosts)) == [1, 1, 2, 2]  # admitted hosts stay
    step2 = deployed.em.appconfig.step(deployed.app, deployed.env)
    assert (step2["State"], step2["PercentageComplete"]) == ("BAKING", 100.0)
    assert poll_all(deployed, hosts) == [2, 2, 2, 2]
    done = deployed.em.appconfig.step(deployed.app, deployed.env)
    assert done["State"] == "COMPLETE"
    kinds = [e["EventType"] for e in done["EventLog"]]
    assert kinds[0] == "DEPLOYMENT_COMPLETED" and kinds[-1] == "DEPLOYMENT_STARTED"
    assert kinds.count("PERCENTAGE_UPDATED") == 2


def test_exponential_strategy_doubles_its_share(deployed: World) -> None:
    strategy = deployed.ac.create_deployment_strategy(
        Name="canary",
        DeploymentDurationInMinutes=4,
        GrowthFactor=25.0,
        GrowthType="EXPONENTIAL",
        FinalBakeTimeInMinutes=0,
    )["Id"]
    hosts = start_hosts(deployed, 8)
    deployed.deploy(deployed.version({"replicas": 3}), strategy)
    counts = []
    for _ in range(3):
        deployed.em.appconfig.step(deployed.app, deployed.env)
        counts.append(poll_all(deployed, hosts).count(3))
    assert counts == [2, 4, 8]  # 25 %, 50 %, 100 %
    assert deployed.deployment(2)["State"] == "COMPLETE"  # no bake time


def test_scaled_clock_drives_a_deployment_to_complete(deployed: World) -> None:
    em = deployed.em.appconfig
    em.hold(False)
    em.minute_seconds(0.2)
    deployed.deploy(deployed.version({"replicas": 4}), LINEAR50)
    wait_for(lambda: deployed.deployment(2)["State"] == "COMPLETE", 10, what="COMPLETE")
    kinds = [e["EventType"] for e in deployed.deployment(2)["EventLog"]]
    assert "BAKE_TIME_STARTED" in kinds


def test_stop_deployment_rolls_sessions_back(deployed: World) -> None:
    hosts = start_hosts(deployed, 2)
    deployed.deploy(deployed.version({"replicas": 5}), LINEAR50)
    deployed.em.appconfig.step(deployed.app, deployed.env)
    assert sorted(poll_all(deployed, hosts)) == [1, 5]
    r = deployed.ac.stop_deployment(
        ApplicationId=deployed.app, EnvironmentId=deployed.env, DeploymentNumber=2
    )
    assert (r["ResponseMetadata"]["HTTPStatusCode"], r["State"]) == (202, "ROLLED_BACK")
    assert poll_all(deployed, hosts) == [1, 1]
    env = deployed.ac.get_environment(ApplicationId=deployed.app, EnvironmentId=deployed.env)
    assert env["State"] == "ROLLED_BACK"


def test_revert_of_a_complete_deployment_needs_allow_revert(deployed: World) -> None:
    hosts = start_hosts(deployed, 1)
    deployed.deploy(deployed.version({"replicas": 6}))
    deployed.em.appconfig.step(deployed.app, deployed.env)
    deployed.em.appconfig.step(deployed.app, deployed.env)
    assert poll_all(deployed, hosts) == [6]
    args = {"ApplicationId": deployed.app, "EnvironmentId": deployed.env, "DeploymentNumber": 2}
    with pytest.raises(ClientError) as e:
        deployed.ac.stop_deployment(**args)
    assert error_of(e)[0] == "BadRequestException"
    assert deployed.ac.stop_deployment(**args, AllowRevert=True)["State"] == "REVERTED"
    assert poll_all(deployed, hosts) == [1]


def test_alarm_rolls_back_a_monitored_deployment(deployed: World) -> None:
    hosts = start_hosts(deployed, 2)
    deployed.deploy(deployed.version({"replicas": 7}), LINEAR50)
    deployed.em.appconfig.step(deployed.app, deployed.env)
    deployed.em.appconfig.step(deployed.app, deployed.env)  # BAKING
    assert poll_all(deployed, hosts) == [7, 7]
    deployed.em.appconfig.set_alarm(ALARM, "ALARM")
    dep = deployed.deployment(2)
    assert dep["State"] == "ROLLED_BACK"
    started = [e for e in dep["EventLog"] if e["EventType"] == "ROLLBACK_STARTED"]
    assert started[0]["TriggeredBy"] == "CLOUDWATCH_ALARM" and ALARM in started[0]["Description"]
    assert poll_all(deployed, hosts) == [1, 1]


def test_a_second_deployment_in_progress_is_a_conflict(deployed: World) -> None:
    deployed.deploy(deployed.version({"replicas": 8}), LINEAR50)
    with pytest.raises(ClientError) as e:
        deployed.deploy(deployed.version({"replicas": 9}), LINEAR50)
    assert error_of(e)[:2] == ("ConflictException", 409)


def test_controls_over_http(deployed: World) -> None:
    host = Host(deployed)
    host.poll()
    base = deployed.em.endpoint + "/_emulator/appconfig/"

    def call(name: str, spec: dict[str, Any] | None = None) -> Any:
        data = None if spec is None else json.dumps(spec).encode()
        with urllib.request.urlopen(urllib.request.Request(base + name, data=data)) as r:
            return json.loads(r.read())

    call("hold", {"on": True})
    deployed.deploy(deployed.version({"replicas": 10}), LINEAR50)
    assert call("step", {"app": "ampd", "env": "prod"})["PercentageComplete"] == 50.0
    call("advance", {"seconds": 15})
    host.poll()
    assert host.seen == {"replicas": 10}
    [row] = call("sessions")["sessions"]
    assert row["version"] == 2
    call("alarm", {"arn": ALARM, "state": "ALARM"})
    assert deployed.deployment(2)["State"] == "ROLLED_BACK"
    assert call("early_polls") == {"early_polls": []}


def test_a_held_deployment_ignores_the_clock_until_released(deployed: World) -> None:
    ac = deployed.em.appconfig
    deployed.deploy(deployed.version({"replicas": 11}), LINEAR50)
    ac.step(deployed.app, deployed.env)
    ac.advance(3600)  # an hour of AppConfig's clock: a held deployment stays at 50 %
    held = deployed.deployment(2)
    assert (held["State"], held["PercentageComplete"]) == ("DEPLOYING", 50.0)
    ac.minute_seconds(0.2)
    ac.hold(False, deployed.app, deployed.env)
    wait_for(lambda: deployed.deployment(2)["State"] == "COMPLETE", 10, what="COMPLETE")
    kinds = [e["EventType"] for e in deployed.deployment(2)["EventLog"]]
    assert kinds.count("PERCENTAGE_UPDATED") == 2


def test_a_version_is_deployed_by_its_label(deployed: World) -> None:
    host = Host(deployed)
    host.poll()
    deployed.version({"replicas": 12}, label="twelve")
    r = deployed.ac.start_deployment(
        ApplicationId=deployed.app,
        EnvironmentId=deployed.env,
        DeploymentStrategyId="AppConfig.AllAtOnce",
        ConfigurationProfileId=deployed.profile,
        ConfigurationVersion="twelve",
    )
    assert (r["ConfigurationVersion"], r["VersionLabel"]) == ("2", "twelve")
    assert deployed.em.appconfig.step(deployed.app, deployed.env)["State"] == "BAKING"
    settle(deployed)
    host.poll()
    assert host.seen == {"replicas": 12}
