"""The Price List through the emulator (its answers held to botocore's ``pricing``
model): parsed into tiers, cached by apply only, asked at most once a day, and a Region
it does not know shows no dollars."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from ampd.engine.facts import Facts
from ampd.gateways.files import FileWriter
from ampd.gateways.store import Store, StoreView
from ampd.ingest.gateway import Fetched, price_list
from ampd.ingest.model import Tier
from ampd.ingest.observe import PRICES_FILE, Observer
from ampd.ingest.prices import parse_price_list
from ampd.ingest.side import IngestSide
from ampd.spec.load import load_spec
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv


def _spec(region: str, endpoint: str) -> str:
    return (
        f"version: 1\naws: {{region: {region}, endpoint_url: '{endpoint}'}}\n"
        "workspace: {alias: m}\nprometheus:\n  scrape_configs:\n"
        "    - {job: app, targets: ['127.0.0.1:1']}\n"
    )


def test_get_products_is_parsed_into_the_ingestion_tiers(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator
) -> None:
    items = price_list("us-east-1", aws_emulator.endpoint)
    assert len(items) == 3  # storage, ingestion, query: only ingestion is read
    prices = parse_price_list(items, "us-east-1", "2026-12-07")
    assert prices is not None and prices.source == "price-list"
    assert prices.tiers == (Tier(2e9, 0.9), Tier(252e9, 0.35), Tier(None, 0.16))
    assert [r.operation for r in aws_emulator.requests if r.service == "pricing"] == ["GetProducts"]
    assert price_list("eu-south-2", aws_emulator.endpoint) == []


def _observer(tmp: Path, asked: list[str], day: datetime.date) -> Observer:
    def ask(region: str, endpoint: str | None) -> list[str]:
        asked.append(region)
        return price_list(region, endpoint)

    return Observer(
        tmp,
        StoreView(tmp / "ampd.json"),
        metrics=None,
        scrape=lambda _url: Fetched(None, "refused"),
        ask_prices=ask,
        today=lambda: day,
    )


def test_prices_are_cached_by_apply_only_and_asked_at_most_daily(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    spec = load_spec(_spec("us-east-1", aws_emulator.endpoint), "s.yml").spec
    asked: list[str] = []
    day = datetime.date(2026, 12, 7)
    side = IngestSide(_observer(tmp_path, asked, day))
    seen = side.observe(spec, Facts())
    plan = side.plan(spec, Facts(), seen)
    assert plan.estimate.prices is not None and plan.estimate.prices.source == "price-list"
    assert not (tmp_path / PRICES_FILE).exists()  # observe and plan wrote nothing

    class W:
        store = Store(tmp_path / "ampd.json")
        files = FileWriter()

    side.apply(plan, seen, W())
    assert (tmp_path / PRICES_FILE).exists()
    assert StoreView(tmp_path / "ampd.json").load().ingest is not None

    # a new process the same day reads the cache and asks nothing
    again = IngestSide(_observer(tmp_path, asked, day)).observe(spec, Facts())
    assert again.prices is not None and again.prices.source == "cache"
    assert again.prices.as_of == "2026-12-07"
    assert asked == ["us-east-1"]
    # the next day it asks again
    later = IngestSide(_observer(tmp_path, asked, day + datetime.timedelta(days=1)))
    assert later.observe(spec, Facts()).prices is not None
    assert asked == ["us-east-1", "us-east-1"]


@pytest.mark.parametrize("region", ["eu-south-2"])
def test_a_region_without_prices_says_so(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, region: str
) -> None:
    spec = load_spec(_spec(region, aws_emulator.endpoint), "s.yml").spec
    side = IngestSide(_observer(tmp_path, [], datetime.date(2026, 12, 7)))
    seen = side.observe(spec, Facts())
    result = side.report(spec, Facts(), seen, side.plan(spec, Facts(), seen), None)
    assert result.ingest is not None
    assert result.ingest["estimate"]["prices"] is None
    priced = [n for n in result.ingest["notes"] if n.startswith("prices")]
    assert priced == [f"prices for {region} are not known: set cost.prices"]
    assert result.ingest["estimate"]["total"]["after"]["dollars_per_month"] is None
    jobs = {j["job"]: j for j in result.ingest["estimate"]["jobs"]}
    assert jobs["app"]["unreadable"] == ["127.0.0.1:1"]
