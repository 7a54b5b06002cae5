"""The JSON Schema of the state file (``ampd schema``; config/state.schema.json)."""

from __future__ import annotations

import json

from ampd.spec.models import StateSpec

SCHEMA_ID = "https://ampd.invalid/schemas/state-v1.json"


def schema() -> dict[str, object]:
    data = StateSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **data}


def schema_json() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"
