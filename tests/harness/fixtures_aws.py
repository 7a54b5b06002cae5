"""pytest fixtures for the AWS side: the emulator, IMDS, and an environment pointing at them.

- ``aws_emulator``: the session's emulator (moto server + our layer), reset before each
  test (resources, faults, recorded requests), and failing the test after it when an
  answer did not match botocore's model. Transitions take ``DEFAULT_DELAY`` as on AWS;
  a test whose subject is not a transition calls ``aws_emulator.instant()``.
- ``imds``: a fresh IMDSv2 stand-in per test.
- ``aws_emulator_env``: environment for botocore: AWS_ENDPOINT_URL -> emulator, fake keys,
  AWS_DEFAULT_REGION, AWS_EC2_METADATA_SERVICE_ENDPOINT -> the stand-in, and no profile
  or shared config, so nothing can reach real AWS.
- ``role_session()``: a boto3 session acting as a role created in moto with given
  policies (and permissions boundary), as an instance carrying that role would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.imds import ImdsServer

REGION = "eu-west-1"
DATA_PLANE_URL = "http://127.0.0.1:9"  # nothing listens: AWS tests need only the URLs

_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_ENDPOINT_URL_AMP",
    "AWS_ENDPOINT_URL_IAM",
    "AWS_ENDPOINT_URL_STS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@dataclass(frozen=True)
class AwsEnv:
    endpoint_url: str
    region: str
    imds_endpoint: str


@pytest.fixture(scope="session")
def aws_emulator_session() -> Iterator[AwsEmulator]:
    em = AwsEmulator(data_plane_url=DATA_PLANE_URL).start()
    try:
        yield em
    finally:
        em.stop()


@pytest.fixture
def aws_emulator(aws_emulator_session: AwsEmulator) -> Iterator[AwsEmulator]:
    """Reset before the test; after it, every response that departed from botocore's
    model of its operation fails the test (``AwsEmulator.violations``)."""
    aws_emulator_session.reset()
    yield aws_emulator_session
    found = aws_emulator_session.violations()
    if found:
        shown = "\n  ".join(found[:20])
        more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
        pytest.fail(f"the AWS emulator answered unlike AWS's model:\n  {shown}{more}")


@pytest.fixture
def imds() -> Iterator[ImdsServer]:
    server = ImdsServer(region=REGION).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_emulator_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aws_emulator: AwsEmulator, imds: ImdsServer
) -> AwsEnv:
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_emulator.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return AwsEnv(endpoint_url=aws_emulator.endpoint, region=REGION, imds_endpoint=imds.endpoint)


# an inline policy whose content does not matter to the test
ANY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def role_session(
    em: AwsEmulator,
    role: str,
    policies: Mapping[str, Mapping[str, Any]],
    *,
    boundary: Mapping[str, Any] | None = None,
    region: str = REGION,
) -> Any:
    """A boto3 session that calls the emulator as role ``role`` (created in moto with the
    inline ``policies`` and, when given, a permissions boundary), as an instance with that
    role would: ``sts:GetCallerIdentity`` names ``assumed-role/<role>/...``."""
    iam = em.client("iam", region)
    kwargs: dict[str, Any] = {}
    if boundary is not None:
        arn = iam.create_policy(PolicyName=f"{role}-boundary", PolicyDocument=json.dumps(boundary))[
            "Policy"
        ]["Arn"]
        kwargs["PermissionsBoundary"] = arn
    role_arn = iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), **kwargs
    )["Role"]["Arn"]
    for name, doc in policies.items():
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(doc))
    return assume(em, role_arn, region)


def assume(em: AwsEmulator, role_arn: str, region: str = REGION) -> Any:
    """A boto3 session acting as the existing role ``role_arn`` (moto does not check the
    role's trust policy)."""
    import boto3  # noqa: PLC0415 (only tests need it)

    creds = em.client("sts", region).assume_role(RoleArn=role_arn, RoleSessionName="i-0test")[
        "Credentials"
    ]
    return boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
