"""The ``budget`` and ``cost`` sections: bad input is named at its file, line and field."""

from __future__ import annotations

import pytest

from ampd.errors import SpecError
from ampd.spec.load import load_spec

HEAD = "version: 1\n"


def _error(text: str) -> str:
    with pytest.raises(SpecError) as e:
        load_spec(HEAD + text, "/etc/ampd/state.yml")
    return str(e.value)


def test_tiers_that_do_not_ascend_are_named_at_their_region() -> None:
    msg = _error(
        "cost:\n  prices:\n    ca-central-1:\n      as_of: 2026-11-02\n"
        "      per_10m_samples:\n        - {up_to: 5000, usd: 0.98}\n"
        "        - {up_to: 4000, usd: 0.38}\n        - {up_to: null, usd: 0.17}\n"
    )
    assert "/etc/ampd/state.yml:" in msg and "cost.prices.ca-central-1" in msg
    assert "ascend" in msg


def test_the_last_tier_must_be_open() -> None:
    msg = _error(
        "cost:\n  prices:\n    ca-central-1:\n      as_of: 2026-11-02\n"
        "      per_10m_samples:\n        - {up_to: 5000, usd: 0.98}\n"
    )
    assert "up_to: null" in msg and "state.yml:" in msg


def test_budget_and_fleet_size_must_be_positive() -> None:
    assert "budget.samples_per_second" in _error("budget: {samples_per_second: 0}\n")
    assert "cost.fleet_size" in _error("cost: {fleet_size: 0}\n")
    assert "cost.prices.mars-1" in _error(
        "cost:\n  prices:\n    mars-1:\n"
        "      {as_of: 2026-01-01, per_10m_samples: [{up_to: null, usd: 1}]}\n"
    )


def test_a_valid_cost_section_loads() -> None:
    spec = load_spec(
        HEAD + "budget: {samples_per_second: 500, fleet_samples_per_second: 9000}\n"
        "cost:\n  fleet_size: 40\n  prices:\n    ca-central-1:\n      as_of: '2026-11-02'\n"
        "      per_10m_samples: [{up_to: 2000000000, usd: 0.98}, {up_to: null, usd: 0.38}]\n",
        "state.yml",
    ).spec
    assert spec.budget is not None and spec.budget.samples_per_second == 500
    assert spec.cost is not None and spec.cost.fleet_size == 40
