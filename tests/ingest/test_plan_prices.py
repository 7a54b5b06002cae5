"""Prices through real ``ampd plan`` and ``ampd apply`` runs against the AWS emulator's
Price List: a plan asks and writes nothing (no cache, no AWS write); an apply keeps the
answer, and the next plan reads it from the cache without asking again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.imds import ImdsServer


def _state() -> dict[str, Any]:
    return {
        "version": 1,
        "aws": {"region": "us-east-1"},
        "workspace": {"alias": "priced-metrics"},
        "prometheus": {
            "listen": f"127.0.0.1:{free_port()}",
            "scrape_configs": [{"job": "app", "targets": [f"127.0.0.1:{free_port()}"]}],
        },
        "metrics": {"enabled": False},
        "runtime": "supervisor",
    }


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _asked(em: AwsEmulator) -> int:
    return sum(1 for r in em.requests if r.service == "pricing" and r.operation == "GetProducts")


def test_a_plan_asks_the_price_list_and_only_apply_caches_it(
    tmp_path: Path, aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, imds: ImdsServer
) -> None:
    aws_emulator.instant()
    p = AmpdProcess(tmp_path)
    p.write_state(_state())
    before = _files(tmp_path)
    plan = p.ampd("plan", "--json")
    assert plan.returncode == 2, plan.stdout + plan.stderr  # the workspace is to be made
    ingest = json.loads(plan.stdout)["ingest"]
    assert ingest["prices"]["source"] == "price-list"
    [app] = [j for j in ingest["jobs"] if j["job"] == "app"]
    assert app["after"]["dollars_per_month"] == 0.0  # the target is down: 0
    assert _files(tmp_path) == before and aws_emulator.writes() == []
    assert _asked(aws_emulator) == 1

    applied = p.ampd("apply", "--once")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    cache = json.loads((p.state_dir / "prices.json").read_text())
    assert cache["us-east-1"]["tiers"][0] == {"up_to": 2e9, "usd_per_10m": 0.9}
    asked = _asked(aws_emulator)

    again = json.loads(p.ampd("plan", "--json").stdout)["ingest"]
    assert again["prices"]["source"] == "cache"
    assert _asked(aws_emulator) == asked  # the same day: the cache answers
