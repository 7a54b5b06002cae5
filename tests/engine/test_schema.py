"""The JSON Schema of the state file: valid Draft 2020-12, identical to the committed
config/state.schema.json, and the example state file passes both it and the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from ampd.cli import main
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec
from ampd.spec.schema import SCHEMA_ID, schema, schema_json

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "config/state.schema.json"
EXAMPLE = REPO / "config/state.example.yml"
REGENERATE = (
    "config/state.schema.json is stale: regenerate with `ampd schema > config/state.schema.json`"
)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def test_schema_is_valid_json_schema() -> None:
    data = schema()
    Draft202012Validator.check_schema(data)
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert data["$id"] == SCHEMA_ID
    assert data["required"] == ["version"]
    assert data["additionalProperties"] is False


def test_committed_schema_matches_byte_for_byte() -> None:
    assert SCHEMA_FILE.read_bytes() == schema_json().encode(), REGENERATE


def test_ampd_schema_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out.encode() == SCHEMA_FILE.read_bytes(), REGENERATE
    Draft202012Validator.check_schema(json.loads(out))


def test_example_validates_against_models_and_schema(validator: Draft202012Validator) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    spec = StateSpec.model_validate(data)
    assert spec.stack == "prod"
    errors = sorted(validator.iter_errors(data), key=str)
    assert errors == [], [e.message for e in errors]
    # And through the loader, which adds the semantic checks.
    loaded = load_spec(EXAMPLE.read_text(), str(EXAMPLE))
    assert loaded.spec.workspace is not None
    assert loaded.spec.workspace.alias == "prod-metrics"


def test_every_model_forbids_unknown_keys() -> None:
    defs: dict[str, Any] = json.loads(schema_json())["$defs"]
    assert defs, "the schema defines its sections"
    for name, d in defs.items():
        if d.get("type") == "object" and "properties" in d:
            assert d.get("additionalProperties") is False, name


@pytest.mark.parametrize(
    ("doc", "valid"),
    [
        pytest.param({"version": 1}, True, id="minimal"),
        pytest.param({}, False, id="no-version"),
        pytest.param({"version": 2}, False, id="version-2"),
        pytest.param({"version": 1, "promethues": {}}, False, id="unknown-key"),
        pytest.param({"version": 1, "aws": {"mode": "dry"}}, False, id="bad-enum"),
        pytest.param({"version": 1, "aws": {"resync": "5 minutes"}}, False, id="bad-duration"),
        pytest.param({"version": 1, "aws": {"resync": "5m"}}, True, id="duration"),
        pytest.param({"version": 1, "workspace": {"alias": "a" * 101}}, False, id="alias-101"),
        pytest.param({"version": 1, "proxy": {"enabled": "auto"}}, True, id="auto-or-bool"),
        pytest.param({"version": 1, "proxy": {"enabled": False}}, True, id="bool"),
        pytest.param({"version": 1, "proxy": {"enabled": "maybe"}}, False, id="neither"),
    ],
)
def test_schema_agrees_with_models(
    validator: Draft202012Validator, doc: dict[str, Any], valid: bool
) -> None:
    assert validator.is_valid(doc) is valid
    models_ok = True
    try:
        StateSpec.model_validate(doc)
    except ValueError:
        models_ok = False
    assert models_ok is valid
