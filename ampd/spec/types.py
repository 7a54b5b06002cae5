"""The state file's value types: durations, listen addresses, regions, ARNs, names, and
the strict base every section model derives from."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

_DURATION_RE = re.compile(r"^(?P<n>\d+)(?P<unit>ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(text: str) -> float:
    """``15s`` -> 15.0. Raises ValueError for anything else."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 15s, 5m, 1h")
    return int(m.group("n")) * _UNIT_SECONDS[m.group("unit")]


def _check_duration(text: str) -> str:
    if duration_seconds(text) <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return text


Duration = Annotated[
    str,
    StringConstraints(pattern=r"^\d+(ms|s|m|h|d)$"),
    AfterValidator(_check_duration),
    Field(json_schema_extra={"examples": ["15s", "5m", "1h"]}),
]


def split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:9090")
    host = host.strip("[]")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address or 'localhost'") from None
    n = int(port)
    if not 1 <= n <= 65535:
        raise ValueError(f"port {n} is out of range 1-65535")
    return host, n


def _check_listen(text: str) -> str:
    split_listen(text)
    return text


Listen = Annotated[
    str, AfterValidator(_check_listen), Field(json_schema_extra={"examples": ["127.0.0.1:9090"]})
]

_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


def _check_region(text: str) -> str:
    if text != "auto" and not _REGION_RE.match(text):
        raise ValueError(f"{text!r} is not an AWS region (e.g. eu-west-1) or 'auto'")
    return text


Region = Annotated[str, AfterValidator(_check_region)]

_ARN_RE = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$")


def _check_arn(text: str) -> str:
    if not _ARN_RE.match(text):
        raise ValueError(f"{text!r} is not an ARN (arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)")
    return text


Arn = Annotated[str, AfterValidator(_check_arn)]

# AMP: alias 1-100 characters; IAM role names 1-64 of [\w+=,.@-].
Alias = Annotated[str, StringConstraints(min_length=1, max_length=100)]
IamName = Annotated[str, StringConstraints(pattern=r"^[\w+=,.@-]{1,64}$")]
StackName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
AbsPath = Annotated[str, StringConstraints(pattern=r"^/")]
# Files the state file refers to: absolute, or relative to the state file's directory.
FilePath = Annotated[str, StringConstraints(min_length=1)]
# A local user name, as useradd(8) accepts it on Debian (NAME_REGEX).
UserName = Annotated[
    str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,30}\$?$", min_length=1, max_length=32)
]


class Strict(BaseModel):
    # strict: YAML already gives real types, so "yes" for a boolean or "15" for a number
    # is a mistake (and the JSON Schema says so too)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
