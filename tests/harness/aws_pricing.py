"""The emulator's AWS Price List (``pricing:GetProducts``, JSON 1.1, ``AWSPriceListService``):
AmazonPrometheus' products as the real Price List answers them -- one JSON document per
product, as a string: ``product`` (productFamily, sku, attributes with regionCode and
usagetype) and ``terms.OnDemand.SKU.OFFER.priceDimensions.RATE`` (beginRange, endRange,
unit, pricePerUnit.USD per sample).

Only Regions whose prices are known exactly are held (us-east-1); any other Region's
filter matches nothing, as a Region the service is not sold in does. A test may hand the
emulator other tiers with :func:`set_tiers`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["get_products", "set_tiers"]

# (endRange in samples or None, USD per 10M samples), per Region
_TIERS: dict[str, list[tuple[int | None, float]]] = {
    "us-east-1": [(2_000_000_000, 0.90), (252_000_000_000, 0.35), (None, 0.16)],
}
_PREFIX = {"us-east-1": "USE1", "ca-central-1": "CAN1", "eu-west-1": "EU"}
_lock = threading.Lock()


def set_tiers(region: str, tiers: Sequence[tuple[int | None, float]] | None) -> None:
    """What the emulated Price List says of ``region`` (None: nothing)."""
    with _lock:
        if tiers is None:
            _TIERS.pop(region, None)
        else:
            _TIERS[region] = list(tiers)


def _product(region: str, sku: str, family: str, usage: str, dims: list[dict[str, Any]]) -> str:
    offer = f"{sku}.JRTCKXETXF"
    doc = {
        "product": {
            "productFamily": family,
            "attributes": {
                "regionCode": region,
                "servicecode": "AmazonPrometheus",
                "usagetype": usage,
                "location": region,
                "locationType": "AWS Region",
                "operation": "",
                "servicename": "Amazon Managed Service for Prometheus",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonPrometheus",
        "terms": {
            "OnDemand": {
                offer: {
                    "priceDimensions": {f"{offer}.{d['rate']}": d["dim"] for d in dims},
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    }
    return json.dumps(doc)


def _dimension(
    sku: str, rate: str, begin: int, end: int | None, usd: float, unit: str, what: str
) -> dict[str, Any]:
    return {
        "rate": rate,
        "dim": {
            "rateCode": f"{sku}.JRTCKXETXF.{rate}",
            "description": what,
            "beginRange": str(begin),
            "endRange": "Inf" if end is None else str(end),
            "unit": unit,
            "pricePerUnit": {"USD": f"{usd:.10f}"},
            "appliesTo": [],
        },
    }


def _products(region: str) -> list[str]:
    with _lock:
        tiers = list(_TIERS.get(region, []))
    if not tiers:
        return []
    prefix = _PREFIX.get(region, region.upper())
    dims, begin = [], 0
    for i, (end, per_10m) in enumerate(tiers):
        what = f"${per_10m} per 10M samples ingested ({begin} to {end or 'Inf'})"
        dims.append(
            _dimension("AMPINGEST1", f"{i:010d}", begin, end, per_10m / 1e7, "Samples", what)
        )
        begin = end or begin
    ingest = _product(
        region, "AMPINGEST1", "Metric Ingestion", f"{prefix}-AMP:MetricSampleCount", dims
    )
    storage = _product(
        region,
        "AMPSTORAGE1",
        "Metric Storage",
        f"{prefix}-AMP:MetricStorageByteHrs",
        [_dimension("AMPSTORAGE1", "6YS6EN2CT7", 0, None, 0.03, "GB-Mo", "$0.03 per GB-month")],
    )
    query = _product(
        region,
        "AMPQUERY1",
        "Metric Query",
        f"{prefix}-AMP:MetricQuerySamples",
        [_dimension("AMPQUERY1", "8EEUB22XNJ", 0, None, 0.10 / 1e9, "Samples", "$0.10 per B")],
    )
    return [storage, ingest, query]


def get_products(body: bytes) -> tuple[int, dict[str, Any]]:
    """The answer (status, JSON document) to one GetProducts request."""
    try:
        req: Mapping[str, Any] = json.loads(body or b"{}")
    except ValueError:
        return 400, {"__type": "InvalidParameterException", "Message": "not JSON"}
    if req.get("ServiceCode") != "AmazonPrometheus":
        return 200, {"FormatVersion": "aws_v1", "PriceList": []}
    region = next(
        (
            str(f.get("Value"))
            for f in req.get("Filters", [])
            if f.get("Field") == "regionCode" and f.get("Type") == "TERM_MATCH"
        ),
        None,
    )
    items = _products(region) if region is not None else []
    return 200, {"FormatVersion": "aws_v1", "PriceList": items}
