"""The daemon does not scrape every target on every pass: a target's dry scrape is kept
until its job's configuration changes or 10 minutes pass, one that did not answer for a
minute (a fake clock moves them)."""

from __future__ import annotations

from pathlib import Path

from ampd.engine.facts import Facts
from ampd.gateways.store import StoreView
from ampd.ingest.gateway import Fetched
from ampd.ingest.observe import SCRAPE_TTL, UNREADABLE_TTL, Observer
from ampd.spec.load import load_spec
from tests.harness.clock import FakeClock

STATE = """\
version: 1
prometheus:
  scrape_configs:
    - {job: app, targets: ['127.0.0.1:9101', '127.0.0.1:9102'], interval: INTERVAL}
"""


def test_dry_scrapes_are_kept_until_the_job_changes_or_ten_minutes_pass(tmp_path: Path) -> None:
    urls: list[str] = []

    def scrape(url: str) -> Fetched:
        if ":910" in url:  # the app's targets (Prometheus and ampd are scraped too)
            urls.append(url)
        return Fetched("a 1\nb 2\n")

    clock = FakeClock()
    obs = Observer(
        tmp_path, StoreView(tmp_path / "ampd.json"), metrics=None, scrape=scrape, clock=clock
    )
    spec = load_spec(STATE.replace("INTERVAL", "15s"), "s.yml").spec
    first = obs.observe(spec, Facts(), 1)
    assert first.scrapes[("app", "127.0.0.1:9101")] == first.scrapes[("app", "127.0.0.1:9102")] == 2
    assert urls == ["http://127.0.0.1:9101/metrics", "http://127.0.0.1:9102/metrics"]
    clock.advance(SCRAPE_TTL - 1)
    obs.observe(spec, Facts(), 1)
    assert len(urls) == 2  # within 10 minutes: nothing scraped again
    clock.advance(2)
    obs.observe(spec, Facts(), 1)
    assert len(urls) == 4  # 10 minutes passed: both again
    edited = load_spec(STATE.replace("INTERVAL", "30s"), "s.yml").spec
    obs.observe(edited, Facts(), 1)
    assert len(urls) == 6  # the job changed: its targets again at once
    assert first.region == "unknown" and first.prices is None


def test_a_target_that_did_not_answer_is_asked_again_after_a_minute(tmp_path: Path) -> None:
    answers = [Fetched(None, "refused"), Fetched("a 1\n")]
    clock = FakeClock()

    def scrape(url: str) -> Fetched:
        return answers.pop(0) if ":9101" in url else Fetched(None, "not this test's")

    view = StoreView(tmp_path / "ampd.json")
    obs = Observer(tmp_path, view, metrics=None, scrape=scrape, clock=clock)
    spec = load_spec(STATE.replace("INTERVAL", "15s").replace(", '127.0.0.1:9102'", ""), "s").spec
    key = ("app", "127.0.0.1:9101")
    assert obs.observe(spec, Facts(), 1).scrapes[key] is None
    clock.advance(UNREADABLE_TTL - 1)
    assert obs.observe(spec, Facts(), 1).scrapes[key] is None
    clock.advance(2)
    assert obs.observe(spec, Facts(), 1).scrapes[key] == 1
    assert answers == []


def test_the_jobs_ampd_adds_are_read_only_through_their_owners_readers(tmp_path: Path) -> None:
    plain: list[str] = []
    owned: list[str] = []

    def scrape(url: str) -> Fetched:
        plain.append(url)
        return Fetched("a 1\n")

    def prometheus(url: str) -> Fetched:
        owned.append(url)
        return Fetched("p 1\nq 2\n")

    view = StoreView(tmp_path / "ampd.json")
    obs = Observer(tmp_path, view, metrics=prometheus, own_metrics=None, scrape=scrape)
    spec = load_spec(STATE.replace("INTERVAL", "15s"), "s.yml").spec
    seen = obs.observe(spec, Facts(), 1)
    assert seen.scrapes[("prometheus", "127.0.0.1:9090")] == 2
    # no owner known: not read, so estimated from ampd's registry (and named as such)
    assert ("ampd", "127.0.0.1:9795") in seen.modeled
    assert ("prometheus", "127.0.0.1:9090") not in seen.modeled
    assert all(":910" in url for url in plain)  # the plain GET only for the state's jobs
    assert "http://127.0.0.1:9090/metrics" in owned
