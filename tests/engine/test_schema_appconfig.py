"""``ampd schema --appconfig``: a draft-04 schema AppConfig takes as a JSON_SCHEMA
validator, within the size botocore's model allows, that never refuses a document
``ampd validate`` accepts and refuses the structurally bad ones ``ampd validate`` refuses.

Documents are YAML, read with ``yaml.safe_load`` and checked in their JSON form (what a
JSON_SCHEMA validator sees; the state is published as JSON, which ampd reads as YAML)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import botocore.session
import jsonschema
import pytest
import yaml
from botocore.model import StructureShape
from botocore.validate import ParamValidator

from ampd import cli
from ampd.errors import SpecError
from ampd.source.specfile import load_and_check
from ampd.spec.appconfig_schema import (
    DRAFT_04,
    VALIDATOR_MAX_CHARS,
    SchemaTooLarge,
    UnconvertibleKeyword,
    appconfig_schema,
    appconfig_schema_json,
    to_draft_04,
)
from tests.harness.fuzzgen import state_file
from tests.harness.stack import Stack

REPO = Path(__file__).resolve().parents[2]
OBSERVE = REPO / "config/fleet/observe.yml"


def validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json.loads(appconfig_schema_json()))


def as_json(doc: Any) -> Any:
    """The document as AppConfig's validator reads it: JSON (a YAML date is a string)."""
    return json.loads(json.dumps(doc, default=str))


def ampd_accepts(doc: Any, where: Path) -> bool:
    """``ampd validate``'s answer (promtool aside) for ``doc`` written as JSON beside a
    copy of the example's rule and alert manager files."""
    for rel in ("rules/node.yml", "alertmanager.yml"):
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "config" / rel, where / rel)
    path = where / "state.yml"
    path.write_text(json.dumps(as_json(doc)))
    try:
        load_and_check(path, run_promtool=False)
    except SpecError:
        return False
    return True


def schema_accepts(doc: Any) -> bool:
    return bool(validator().is_valid(as_json(doc)))


def demo_state() -> dict[str, Any]:
    """The demo's state (tests/harness/stack.py), with stand-in addresses."""
    stand_ins = SimpleNamespace(
        dataplane=SimpleNamespace(url="http://127.0.0.1:1"),
        app=SimpleNamespace(target="127.0.0.1:2"),
    )
    return Stack.state(cast(Stack, stand_ins), signing="auto")


def good_documents() -> dict[str, Any]:
    docs: dict[str, Any] = {
        p.relative_to(REPO).as_posix(): yaml.safe_load(p.read_text())
        for p in [REPO / "config/state.example.yml", *sorted(REPO.glob("config/fleet/*.yml"))]
    }
    docs["demo"] = demo_state()
    return docs


def observe() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(OBSERVE.read_text())
    return doc


def edit(path: str, value: Any) -> dict[str, Any]:
    """config/fleet/observe.yml with ``path`` (dotted; ``-`` deletes) set to ``value``."""
    doc = observe()
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value == "-":
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


# structurally bad: refused by the schema at deployment and by ampd validate on a host
BAD: dict[str, Any] = {
    "missing version": edit("version", "-"),
    "version 2": edit("version", 2),
    "version as a string": edit("version", "1"),
    "unknown top-level key": {**observe(), "versoin": 1},
    "unknown nested key": edit("prometheus.listn", "127.0.0.1:9090"),
    "bad enum (aws.mode)": edit("aws.mode", "write"),
    "bad enum (runtime)": edit("runtime", "docker"),
    "bad duration pattern": edit("prometheus.scrape_interval", "30 seconds"),
    "duration as a number": edit("prometheus.scrape_interval", 30),
    "bad stack name": edit("stack", "Fleet!"),
    "bad workspace id": edit("workspace.id", "abc"),
    "boolean as a string": edit("prometheus.enabled", "yes"),
    "scrape configs not a list": edit("prometheus.scrape_configs", {"job": "node"}),
    "scrape config without job": edit("prometheus.scrape_configs.0.job", "-"),
    "bad job name": edit("prometheus.scrape_configs.0.job", "node exporter"),
    "budget of zero": {**observe(), "budget": {"samples_per_second": 0}},
    "alias too long": edit("workspace.alias", "a" * 101),
    "not a mapping": ["version", 1],
}

# valid in shape, refused only by ampd validate on the host (cross-field rules)
HOST_ONLY: dict[str, Any] = {
    "workspace without alias or id": edit("workspace.alias", "-"),
    "__replica__ without cluster": edit("prometheus.external_labels", {"__replica__": "a"}),
    "not an AWS region": edit("aws.region", "Europe"),
    "listen without a port": edit("prometheus.listen", "localhost"),
    "not a state location": edit("state_source.location", "ftp://fleet/ampd"),
}


def test_the_schema_is_draft_04_and_fits_appconfig() -> None:
    text = appconfig_schema_json()
    doc = json.loads(text)
    jsonschema.Draft4Validator.check_schema(doc)
    assert doc["$schema"] == DRAFT_04
    model = botocore.session.get_session().get_service_model("appconfig")
    shape = cast(StructureShape, model.shape_for("Validator"))
    limit = shape.members["Content"].metadata["max"]
    assert limit == VALIDATOR_MAX_CHARS
    assert len(text) <= limit
    request = {
        "ApplicationId": "abc1234",
        "Name": "ampd",
        "LocationUri": "hosted",
        "Type": "AWS.Freeform",
        "Validators": [{"Type": "JSON_SCHEMA", "Content": text}],
    }
    op = model.operation_model("CreateConfigurationProfile")
    assert op.input_shape is not None
    report = ParamValidator().validate(request, op.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert "\n" not in text.rstrip("\n")  # minified
    assert "$defs" not in text and "#/$defs/" not in text
    for gone in ('"const"', '"title"', '"description"', '"examples"', '"propertyNames"'):
        assert gone not in text, gone


def test_sections_forbid_unknown_keys() -> None:
    doc = appconfig_schema()
    assert doc["additionalProperties"] is False
    assert all(d["additionalProperties"] is False for d in doc["definitions"].values())
    assert doc["required"] == ["version"]


@pytest.mark.parametrize("name", sorted(good_documents()))
def test_accepted_by_ampd_and_by_the_schema(name: str, tmp_path: Path) -> None:
    doc = good_documents()[name]
    assert ampd_accepts(doc, tmp_path)
    errors = [e.message for e in validator().iter_errors(as_json(doc))]
    assert errors == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_structurally_bad_refused_by_both(name: str, tmp_path: Path) -> None:
    doc = BAD[name]
    assert not schema_accepts(doc)
    assert not ampd_accepts(doc, tmp_path)


@pytest.mark.parametrize("name", sorted(HOST_ONLY))
def test_cross_field_rules_are_the_hosts(name: str, tmp_path: Path) -> None:
    """What docs/fleet.md says the validator cannot see: such a version deploys, and every
    host refuses it (the last good version keeps running)."""
    doc = HOST_ONLY[name]
    assert schema_accepts(doc)
    assert not ampd_accepts(doc, tmp_path)


def test_no_false_refusals_on_drawn_documents(tmp_path: Path) -> None:
    """Documents drawn from the schema and broken (tests/harness/fuzzgen.py), seeded: each
    one ampd accepts, the AppConfig schema accepts too; and most broken ones it refuses."""
    rng = random.Random(27)
    both = refused_by_both = 0
    kinds = ("valid", "valid", "wrong_type", "unknown_key", "huge_number")
    for i in range(500):
        kind = kinds[i % len(kinds)]
        try:
            doc = yaml.safe_load(state_file(rng, kind))
        except yaml.YAMLError:
            continue
        ampd_ok = ampd_accepts(doc, tmp_path / str(i))
        schema_ok = schema_accepts(doc)
        if ampd_ok:
            assert schema_ok, (kind, doc)
            both += 1
        elif not schema_ok:
            refused_by_both += 1
    assert both >= 20, both  # the check above ran on real accepted documents
    assert refused_by_both >= 100, refused_by_both


def test_conversion_table() -> None:
    src = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "x",
        "$defs": {"A": {"const": "auto", "title": "A", "examples": ["auto"]}},
        "properties": {
            "a": {"$ref": "#/$defs/A", "default": "auto"},
            "n": {"exclusiveMinimum": 0, "type": "number", "description": "d"},
            "m": {"exclusiveMaximum": 9, "type": "integer"},
            "t": {"propertyNames": {"maxLength": 3}, "format": "date", "type": "string"},
        },
    }
    assert to_draft_04(src) == {
        "$schema": DRAFT_04,
        "definitions": {"A": {"enum": ["auto"]}},
        "properties": {
            "a": {"$ref": "#/definitions/A"},
            "n": {"minimum": 0, "exclusiveMinimum": True, "type": "number"},
            "m": {"maximum": 9, "exclusiveMaximum": True, "type": "integer"},
            "t": {"type": "string"},
        },
    }


@pytest.mark.parametrize(
    "src",
    [
        {"if": {"type": "string"}},
        {"properties": {"x": {"prefixItems": [{"type": "string"}]}}},
        {"exclusiveMinimum": 0, "minimum": 1},
    ],
)
def test_a_keyword_without_a_draft_04_form_is_an_error(src: dict[str, Any]) -> None:
    with pytest.raises(UnconvertibleKeyword):
        to_draft_04(src)


def test_cli_prints_the_schema_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema", "--appconfig"]) == 0
    out, err = capsys.readouterr()
    assert out == appconfig_schema_json()
    assert err == ""
    assert cli.main(["schema"]) == 0
    assert (
        "2020-12" in json.loads(capsys.readouterr().out)["$schema"]
    )  # without the flag: as before


def test_over_the_limit_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SchemaTooLarge, match="over AppConfig's 100"):
        appconfig_schema_json(limit=100)
    monkeypatch.setattr("ampd.spec.appconfig_schema.VALIDATOR_MAX_CHARS", 100)
    assert cli.main(["schema", "--appconfig"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "characters, over AppConfig's 100" in err
