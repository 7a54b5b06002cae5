"""Pure: where an estimate's prices come from, and the AWS Price List's answer read into
tiers.

In order: the state file's ``cost.prices`` for the Region; the Price List (asked at most
once a day, its answer cached under the state directory); the cache when the Price List
cannot be asked; the built-in table, for the Regions whose prices are known exactly. A
Region with none of these has no price: an estimate then shows no dollars.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ampd.ingest.model import PRICE_UNIT, Prices, Tier
from ampd.spec.cost import CostSpec

__all__ = [
    "BUILT_IN",
    "decode_cache",
    "encode_cache",
    "parse_price_list",
    "state_prices",
    "unknown_note",
]

# AMP's metric-sample ingestion, from the Price List (AmazonPrometheus). Only Regions
# read exactly are here: no price is ever guessed.
BUILT_IN: Mapping[str, Prices] = {
    "us-east-1": Prices(
        "us-east-1",
        "2026-12-01",
        "built-in",
        (Tier(2e9, 0.90), Tier(252e9, 0.35), Tier(None, 0.16)),
    ),
}


def unknown_note(region: str) -> str:
    return f"prices for {region} are not known: set cost.prices"


def state_prices(cost: CostSpec | None, region: str) -> Prices | None:
    if cost is None or region not in cost.prices:
        return None
    spec = cost.prices[region]
    tiers = tuple(
        Tier(None if t.up_to is None else float(t.up_to), t.usd) for t in spec.per_10m_samples
    )
    return Prices(region, spec.as_of.isoformat(), "state", tiers)


def _is_ingestion(product: Mapping[str, Any]) -> bool:
    """The metric-sample ingestion usage type (``USE1-AMP:MetricSampleCount``), not
    storage or query samples."""
    usage = str(product.get("attributes", {}).get("usagetype", ""))
    kind = usage.rpartition(":")[2].lower()
    return "sample" in kind and "query" not in kind


def _dimensions(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for term in item.get("terms", {}).get("OnDemand", {}).values():
        out.extend(term.get("priceDimensions", {}).values())
    return out


def _tier(dim: Mapping[str, Any]) -> tuple[float, Tier] | None:
    try:
        begin = float(dim.get("beginRange", "0"))
        end_text = str(dim.get("endRange", "Inf"))
        end = None if end_text.lower() in ("inf", "") else float(end_text)
        per_sample = float(dim["pricePerUnit"]["USD"])
    except (KeyError, TypeError, ValueError):
        return None
    return begin, Tier(end, round(per_sample * PRICE_UNIT, 10))


def parse_price_list(items: Sequence[str], region: str, as_of: str) -> Prices | None:
    """``pricing:GetProducts``' PriceList (one JSON document per product) -> the
    ingestion tiers of ``region``, or None when the answer holds none."""
    found: list[tuple[float, Tier]] = []
    for text in items:
        try:
            item = json.loads(text)
        except ValueError:
            continue
        product = item.get("product", {}) if isinstance(item, dict) else {}
        if product.get("attributes", {}).get("regionCode") not in (region, None):
            continue
        if not _is_ingestion(product):
            continue
        found.extend(t for t in map(_tier, _dimensions(item)) if t is not None)
    found.sort(key=lambda bt: bt[0])
    tiers = tuple(t for _, t in found)
    if not tiers or tiers[-1].up_to is not None:
        return None
    return Prices(region, as_of, "price-list", tiers)


def encode_cache(cache: Mapping[str, Prices]) -> bytes:
    data = {
        region: {
            "as_of": p.as_of,
            "tiers": [{"up_to": t.up_to, "usd_per_10m": t.usd_per_10m} for t in p.tiers],
        }
        for region, p in sorted(cache.items())
    }
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def decode_cache(raw: bytes | None) -> dict[str, Prices]:
    """The cached Price List answers (a torn or foreign file: none)."""
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
        return {
            str(region): Prices(
                str(region),
                str(entry["as_of"]),
                "cache",
                tuple(
                    Tier(None if t["up_to"] is None else float(t["up_to"]), float(t["usd_per_10m"]))
                    for t in entry["tiers"]
                ),
            )
            for region, entry in data.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
