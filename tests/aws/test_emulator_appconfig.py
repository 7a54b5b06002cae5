"""The AWS emulator's AppConfig control plane and Data API answer as AppConfig does,
held to botocore's ``appconfig`` and ``appconfigdata`` models by the fixture: status
codes, predefined strategies, sessions and polls, single-use tokens that expire, unknown
identifiers, early polls refused and recorded."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.harness.appconfig_world import (
    ALARM,
    ALARM_ROLE,
    LINEAR50,
    Host,
    World,
    error_of,
    settle,
)
from tests.harness.model_check import check_response

# -- control plane ----------------------------------------------------------------------


def test_control_plane_status_codes_and_predefined_strategies(world: World) -> None:
    ac = world.ac
    r = ac.create_environment(ApplicationId=world.app, Name="staging")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert r["State"] == "READY_FOR_DEPLOYMENT"
    env = ac.get_environment(ApplicationId=world.app, EnvironmentId=world.env)
    assert env["Monitors"] == [{"AlarmArn": ALARM, "AlarmRoleArn": ALARM_ROLE}]
    names = {e["Name"] for e in ac.list_environments(ApplicationId=world.app)["Items"]}
    assert names == {"prod", "staging"}
    strategies = {s["Id"]: s for s in ac.list_deployment_strategies()["Items"]}
    linear = strategies[LINEAR50]
    assert (linear["DeploymentDurationInMinutes"], linear["GrowthFactor"]) == (1, 50.0)
    assert (linear["FinalBakeTimeInMinutes"], linear["GrowthType"]) == (1, "LINEAR")
    canary = strategies["AppConfig.Canary10Percent20Minutes"]
    assert (canary["GrowthType"], canary["DeploymentDurationInMinutes"]) == ("EXPONENTIAL", 20)
    assert strategies["AppConfig.AllAtOnce"]["DeploymentDurationInMinutes"] == 0
    assert strategies["AppConfig.Linear20PercentEvery6Minutes"]["FinalBakeTimeInMinutes"] == 30
    own = ac.create_deployment_strategy(
        Name="slow", DeploymentDurationInMinutes=10, GrowthFactor=25.0, GrowthType="LINEAR"
    )
    assert own["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert ac.get_deployment_strategy(DeploymentStrategyId=own["Id"])["Name"] == "slow"


def test_hosted_version_and_profile_answer_the_models_status(world: World) -> None:
    r = world.ac.create_hosted_configuration_version(
        ApplicationId=world.app,
        ConfigurationProfileId=world.profile,
        Content=b'{"replicas": 2}',
        ContentType="application/json",
    )
    assert r["Content"].read() == b'{"replicas": 2}'
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert r["VersionNumber"] == 1
    assert "VersionLabel" not in r


@pytest.mark.parametrize(
    "content",
    [json.dumps({"description": " " * 32769}), "{not json", json.dumps({"type": 12})],
    ids=["longer-than-the-model-allows", "not-json", "not-a-draft-04-schema"],
)
def test_a_bad_validator_is_refused(world: World, content: str) -> None:
    with pytest.raises(ClientError) as e:
        world.ac.create_configuration_profile(
            ApplicationId=world.app,
            Name="big",
            LocationUri="hosted",
            Validators=[{"Type": "JSON_SCHEMA", "Content": content}],
        )
    assert error_of(e)[:2] == ("BadRequestException", 400)
    names = [
        p["Name"] for p in world.ac.list_configuration_profiles(ApplicationId=world.app)["Items"]
    ]
    assert names == ["state"]


def test_unknown_environment_of_the_control_plane_is_not_found(world: World) -> None:
    with pytest.raises(ClientError) as e:
        world.ac.get_environment(ApplicationId=world.app, EnvironmentId="nope123")
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)


# -- Data API -----------------------------------------------------------------------------


def test_session_first_poll_returns_content_interval_and_label(deployed: World) -> None:
    r = deployed.data.get_latest_configuration(ConfigurationToken=deployed.session(interval=30))
    assert json.loads(r["Configuration"].read()) == {"replicas": 1}
    assert r["NextPollIntervalInSeconds"] == 30
    assert r["ContentType"] == "application/json"
    assert r["VersionLabel"] == "first"
    assert r["NextPollConfigurationToken"]


def test_default_poll_interval_is_sixty_seconds(deployed: World) -> None:
    token = deployed.data.start_configuration_session(
        ApplicationIdentifier=deployed.app,
        EnvironmentIdentifier=deployed.env,
        ConfigurationProfileIdentifier=deployed.profile,
    )["InitialConfigurationToken"]
    r = deployed.data.get_latest_configuration(ConfigurationToken=token)
    r["Configuration"].read()  # an unread body would hold its connection
    assert r["NextPollIntervalInSeconds"] == 60


def test_unchanged_poll_returns_an_empty_body(deployed: World) -> None:
    host = Host(deployed)
    assert host.poll()
    settle(deployed)
    assert host.poll() == b""
    assert host.seen == {"replicas": 1}


def test_token_is_single_use(deployed: World) -> None:
    token = deployed.session()
    deployed.data.get_latest_configuration(ConfigurationToken=token)["Configuration"].read()
    settle(deployed)
    with pytest.raises(ClientError) as e:
        deployed.data.get_latest_configuration(ConfigurationToken=token)
    assert error_of(e)[:2] == ("BadRequestException", 400)


def test_token_expires_after_a_day(deployed: World) -> None:
    token = deployed.session()
    deployed.em.appconfig.advance(86400 + 1)
    with pytest.raises(ClientError) as e:
        deployed.data.get_latest_configuration(ConfigurationToken=token)
    code, _, r = error_of(e)
    assert code == "BadRequestException"
    assert r["Details"]["InvalidParameters"]["ConfigurationToken"]["Problem"] == "Expired"


@pytest.mark.parametrize(
    ("names", "kind"),
    [
        (("nope", "prod", "state"), "Application"),
        (("ampd", "nope", "state"), "Environment"),
        (("ampd", "prod", "nope"), "ConfigurationProfile"),
    ],
)
def test_unknown_identifiers_are_not_found(
    deployed: World, names: tuple[str, str, str], kind: str
) -> None:
    with pytest.raises(ClientError) as e:
        deployed.data.start_configuration_session(
            ApplicationIdentifier=names[0],
            EnvironmentIdentifier=names[1],
            ConfigurationProfileIdentifier=names[2],
        )
    code, status, r = error_of(e)
    assert (code, status, r["ResourceType"]) == ("ResourceNotFoundException", 404, kind)


def test_profile_never_deployed_has_no_session(world: World) -> None:
    with pytest.raises(ClientError) as e:
        world.session()
    code, _, r = error_of(e)
    assert (code, r["ResourceType"]) == ("ResourceNotFoundException", "Deployment")


def test_early_poll_is_refused_and_recorded(deployed: World) -> None:
    host = Host(deployed)
    host.poll()
    with pytest.raises(ClientError) as e:
        host.poll()
    code, _, r = error_of(e)
    assert code == "BadRequestException"
    problem = r["Details"]["InvalidParameters"]["ConfigurationToken"]["Problem"]
    assert problem == "PollIntervalNotSatisfied"
    [(sid, early)] = deployed.em.appconfig.early_polls()
    assert 10 < early <= 15
    assert sid in {s[0] for s in deployed.em.appconfig.sessions()}
    settle(deployed)
    assert host.poll() == b""  # the refused token stays usable


def test_what_moto_keeps_answers_as_the_model_says(world: World) -> None:
    ac = world.ac
    arn = f"arn:aws:appconfig:eu-west-1:123456789012:application/{world.app}"
    assert [a["Name"] for a in ac.list_applications()["Items"]] == ["ampd"]
    ac.update_application(ApplicationId=world.app, Description="fleet state")
    [summary] = ac.list_configuration_profiles(ApplicationId=world.app)["Items"]
    assert summary["ValidatorTypes"] == ["JSON_SCHEMA"]
    assert "Validators" not in summary  # a ConfigurationProfileSummary
    v = world.version({"replicas": 1}, label="first")
    got = ac.get_hosted_configuration_version(
        ApplicationId=world.app, ConfigurationProfileId=world.profile, VersionNumber=v
    )
    assert (got["Content"].read(), got["VersionLabel"]) == (b'{"replicas": 1}', "first")
    ac.tag_resource(ResourceArn=arn, Tags={"team": "obs"})
    assert ac.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "obs"}
    with pytest.raises(ClientError) as e:
        ac.get_application(ApplicationId="zzzzzzz")
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)
    deleted = ac.delete_application(ApplicationId=world.app)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_data_api_is_recorded_and_checked_as_appconfigdata(deployed: World) -> None:
    deployed.em.reset_requests()
    Host(deployed).poll()
    seen = {(r.service, r.operation, r.status) for r in deployed.em.requests}
    assert seen == {
        ("appconfigdata", "StartConfigurationSession", 201),
        ("appconfigdata", "GetLatestConfiguration", 200),
    }
    assert deployed.em.writes() == []  # reading a configuration changes nothing
    # the checker holds these answers to the appconfigdata model: a 200 would be a violation
    found = check_response(
        "appconfigdata", "StartConfigurationSession", 200, {}, b'{"InitialConfigurationToken":"t"}'
    )
    assert found == ["StartConfigurationSession: status 200, the model says 201"]


def test_throttled_poll_is_the_models_429(deployed: World) -> None:
    host = Host(deployed)
    deployed.em.throttle("GetLatestConfiguration", times=None)  # through botocore's retries
    with pytest.raises(ClientError) as e:
        host.w.data.get_latest_configuration(ConfigurationToken=host.token)
    deployed.em.clear_faults()
    assert error_of(e)[:2] == ("ThrottlingException", 429)


def test_lists_are_paged(world: World) -> None:
    for name in ("a", "b", "c"):
        world.ac.create_environment(ApplicationId=world.app, Name=name)
    first = world.ac.list_environments(ApplicationId=world.app, MaxResults=3)
    assert len(first["Items"]) == 3
    rest = world.ac.list_environments(ApplicationId=world.app, NextToken=first["NextToken"])
    assert [e["Name"] for e in rest["Items"]] == ["c"] and "NextToken" not in rest
    paginator = world.ac.get_paginator("list_deployment_strategies")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    assert len(pages) == 2 and sum(len(p["Items"]) for p in pages) == 4


def test_poll_interval_override_paces_a_fast_fleet(deployed: World) -> None:
    deployed.em.appconfig.poll_interval(1)
    host = Host(deployed)
    host.poll()
    assert host.interval == 1
    deployed.em.appconfig.advance(1)
    assert host.poll() == b""  # one second later is on time
    assert deployed.em.appconfig.early_polls() == []


def test_reset_forgets_appconfig(deployed: World) -> None:
    Host(deployed).poll()
    deployed.ac.create_deployment_strategy(
        Name="mine", DeploymentDurationInMinutes=1, GrowthFactor=50.0
    )
    deployed.em.appconfig.poll_interval(1)
    deployed.em.reset()
    assert deployed.em.appconfig.sessions() == []
    assert len(deployed.ac.list_deployment_strategies()["Items"]) == 4  # the predefined
    assert deployed.ac.list_applications()["Items"] == []
    host_interval = deployed.em.appconfig.state.poll_interval
    assert host_interval is None


def test_environments_update_and_delete(world: World) -> None:
    ac = world.ac
    updated = ac.update_environment(ApplicationId=world.app, EnvironmentId=world.env, Monitors=[])
    assert updated["Monitors"] == []
    gone = ac.delete_environment(ApplicationId=world.app, EnvironmentId=world.env)
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert ac.list_environments(ApplicationId=world.app)["Items"] == []


def test_hosted_versions_are_listed_newest_first(world: World) -> None:
    world.version({"replicas": 1}, label="one")
    world.version({"replicas": 2})
    items = world.ac.list_hosted_configuration_versions(
        ApplicationId=world.app, ConfigurationProfileId=world.profile
    )["Items"]
    assert [(v["VersionNumber"], v.get("VersionLabel")) for v in items] == [(2, None), (1, "one")]
