"""Secrets never reach a log line, and what is not a secret stays readable (ampd.redact).

Both directions are tables: what must go (by field name, by shape, inside exception
text) and what must survive (hashes, ids, ARNs, paths, ordinary sentences).
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import sys

import pytest
import structlog

from ampd.logs import configure_logging, journal_fields
from ampd.redact import REDACTED, redact_event, redact_text, secret_name

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD" + "a1B2c3D4" * 20
OLD_SESSION = "FwoGZXIvYXdzEBYaDH" + "x9Y8z7W6" * 15
GRAFANA_PW = secrets.token_urlsafe(24)
IMDS_TOKEN = "AQAEAPk1Hx" + secrets.token_urlsafe(40)
BLOB = base64.b64encode(secrets.token_bytes(120)).decode()

GONE = [
    # (text, the secret that must not survive)
    (f"aws_secret_access_key={SECRET_KEY}", SECRET_KEY),
    (f"signing failed with {SECRET_KEY} for ws-1", SECRET_KEY),
    (f"token {SESSION} rejected", SESSION),
    (f"ExpiredToken: {OLD_SESSION}", OLD_SESSION),
    (f"An error occurred: body={BLOB}", BLOB),
    (f"password={GRAFANA_PW}", GRAFANA_PW),
    (f"{{'password': '{GRAFANA_PW}'}}", GRAFANA_PW),
    (f'{{"admin_password": "{GRAFANA_PW}"}}', GRAFANA_PW),
    (f"X-aws-ec2-metadata-token: {IMDS_TOKEN}", IMDS_TOKEN),
    (f"headers={{'X-aws-ec2-metadata-token': '{IMDS_TOKEN}'}}", IMDS_TOKEN),
    (
        "Authorization: Basic " + base64.b64encode(f"admin:{GRAFANA_PW}".encode()).decode(),
        base64.b64encode(f"admin:{GRAFANA_PW}".encode()).decode(),
    ),
    (f"?X-Amz-Security-Token={IMDS_TOKEN}&X-Amz-Date=1", IMDS_TOKEN),
]

KEPT = [
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "sha1 " + "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    "SHA1 " + "A94A8FE5CCB19BA61C4C0873D391E987982FBBD3",
    "arn:aws:iam::123456789012:role/ampd-writer",
    "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1234abcd-5678-90ab-cdef-111122223333",
    "instance i-0123456789abcdef0, image ami-0abcdef1234567890",
    "access key id AKIAIOSFODNN7EXAMPLE",
    "/var/lib/ampd/generated/prometheus.yml",
    "ssm:/fleet/prod/ampd/state",
    "could not read credentials: permission denied",
    "token_ttl=21600",
    "reconcile_id=3f2a9c1b7d4e",
    "the session token expired",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
]


@pytest.mark.parametrize(("text", "secret"), GONE, ids=[f"gone{i}" for i in range(len(GONE))])
def test_secrets_in_text_are_redacted(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_survives(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("admin_password", True),
        ("aws_secret_access_key", True),
        ("session_token", True),
        ("Authorization", True),
        ("x-aws-ec2-metadata-token", True),
        ("credentials", True),
        ("token", True),
        ("credentials_file", False),
        ("token_ttl", False),
        ("access_key_id", False),
        ("secret_arn", False),
        ("key", False),
        ("reconcile_id", False),
        ("event", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


def test_the_processor_redacts_by_name_at_any_depth() -> None:
    event = {
        "event": "aws.call",
        "password": "correct horse",
        "headers": {"Authorization": "AWS4-HMAC-SHA256 Credential=x", "Host": "aps"},
        "creds": [{"SecretAccessKey": "plain", "AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}],
        "token_present": True,
        "credentials_file": "/etc/ampd/creds",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    }
    out = redact_event(None, "info", dict(event))
    assert out["password"] == REDACTED
    assert out["headers"] == {"Authorization": REDACTED, "Host": "aps"}
    assert out["creds"] == [{"SecretAccessKey": REDACTED, "AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}]
    assert out["token_present"] is True
    assert out["credentials_file"] == "/etc/ampd/creds"
    assert out["sha256"] == event["sha256"]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_exception_carries_no_secret(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    configure_logging(fmt, "info")
    log = structlog.get_logger()
    try:
        raise RuntimeError(f"signing with {SECRET_KEY} and {SESSION} failed")
    except RuntimeError:
        log.exception("proxy.sign_failed", session_token=SESSION, workspace="ws-1")
    text = err.getvalue()
    assert SECRET_KEY not in text
    assert SESSION not in text
    assert "RuntimeError: signing with [REDACTED]" in text
    assert "ws-1" in text and "proxy.sign_failed" in text
    if fmt == "json":
        doc = json.loads(text.splitlines()[0])
        assert doc["session_token"] == REDACTED


def test_journal_fields_come_from_the_redacted_event() -> None:
    event = redact_event(None, "info", {"event": "grafana.admin", "password": GRAFANA_PW})
    fields = journal_fields(event)
    assert GRAFANA_PW not in json.dumps(fields)
    assert fields["AMPD_PASSWORD"] == REDACTED
