"""AppConfig's pure parts: deployment strategies (AWS's predefined ones and the
percentages a strategy steps through), a deployment's progress and event log, and the
JSON Schema validation StartDeployment runs on a hosted version's content.

Progress: a strategy of ``n`` steps reaches step ``k`` (``1..n``) after ``k/n`` of its
DeploymentDurationInMinutes; at step ``n`` (100 %) the deployment BAKES for
FinalBakeTimeInMinutes, then is COMPLETE. Before step 1 its percentage is 0 (sent as no
PercentageComplete: the model's minimum is 1.0). LINEAR steps are ``G, 2G, ...``;
EXPONENTIAL ones ``G, 2G, 4G, ...`` (AppConfig's ``G*2^N``), both capped at 100.

Validation: JSON_SCHEMA validators are JSON Schema draft-04 (AppConfig's dialect,
checked with jsonschema's Draft4Validator). Content whose ContentType names YAML is
parsed as YAML and the resulting document validated (AppConfig validates YAML
free-form configurations against JSON Schema validators the same way); any other
content is parsed as JSON. LAMBDA validators are not run (no Lambda here): they pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PREDEFINED",
    "Deployment",
    "Strategy",
    "invalid_details",
    "iso",
    "steps",
    "validator_problem",
]

VALIDATOR_MAX = 32768  # the model's max length of a Validator's Content


@dataclass(frozen=True)
class Strategy:
    id: str
    name: str
    duration: int  # DeploymentDurationInMinutes
    growth_factor: float
    growth_type: str = "LINEAR"
    bake: int = 0  # FinalBakeTimeInMinutes
    description: str | None = None
    replicate_to: str = "NONE"

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Id": self.id,
            "Name": self.name,
            "DeploymentDurationInMinutes": self.duration,
            "GrowthType": self.growth_type,
            "GrowthFactor": float(self.growth_factor),
            "FinalBakeTimeInMinutes": self.bake,
            "ReplicateTo": self.replicate_to,
        }
        if self.description is not None:
            out["Description"] = self.description
        return out


def _predefined(
    name: str, duration: int, factor: float, kind: str, bake: int, what: str
) -> Strategy:
    return Strategy(name, name, duration, factor, kind, bake, what)


# AWS's predefined strategies (their Id is their name), with their published parameters
PREDEFINED: Mapping[str, Strategy] = {
    s.id: s
    for s in (
        _predefined(
            "AppConfig.Linear20PercentEvery6Minutes",
            30,
            20.0,
            "LINEAR",
            30,
            "AWS Recommended. Deploys to 20% of targets every 6 minutes for 30 minutes, "
            "then monitors alarms for 30 minutes.",
        ),
        _predefined(
            "AppConfig.Canary10Percent20Minutes",
            20,
            10.0,
            "EXPONENTIAL",
            10,
            "AWS Recommended. Exponential growth of 10% over 20 minutes, then monitors "
            "alarms for 10 minutes.",
        ),
        _predefined(
            "AppConfig.AllAtOnce",
            0,
            100.0,
            "LINEAR",
            10,
            "Quick. Deploys to all targets at once, then monitors alarms for 10 minutes.",
        ),
        _predefined(
            "AppConfig.Linear50PercentEvery30Seconds",
            1,
            50.0,
            "LINEAR",
            1,
            "Testing/Demonstration. Deploys to 50% of targets every 30 seconds over one "
            "minute, then monitors alarms for 1 minute.",
        ),
    )
}


def steps(growth_type: str, factor: float) -> list[float]:
    """The percentages a deployment steps through, the last being 100."""
    out: list[float] = []
    k = 0
    while not out or out[-1] < 100.0:
        k += 1
        p = factor * k if growth_type == "LINEAR" else factor * 2 ** (k - 1)
        out.append(min(100.0, round(p, 2)))
    return out


def iso(t: float) -> str:
    """An ISO 8601 UTC timestamp with milliseconds, as AppConfig's JSON carries them."""
    import datetime  # noqa: PLC0415 (only here)

    d = datetime.datetime.fromtimestamp(t, tz=datetime.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass
class Event:
    kind: str
    by: str
    description: str
    at: float

    def doc(self) -> dict[str, Any]:
        return {
            "EventType": self.kind,
            "TriggeredBy": self.by,
            "Description": self.description,
            "OccurredAt": iso(self.at),
        }


@dataclass
class Deployment:
    """One StartDeployment; ``stage`` 0..n+1 (n: the strategy's step count)."""

    region: str
    app_id: str
    env_id: str
    number: int
    profile_id: str
    profile_name: str
    location_uri: str
    version: int
    version_label: str | None
    content: bytes
    content_type: str
    strategy: Strategy
    description: str | None
    started: float
    held: bool
    stage: int = 0
    ended: str | None = None  # ROLLED_BACK | REVERTED once stopped
    completed_at: float | None = None
    events: list[Event] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)  # session ids, in admission order

    @property
    def percents(self) -> list[float]:
        return steps(self.strategy.growth_type, self.strategy.growth_factor)

    def stage_offset(self, stage: int, minute: float) -> float:
        """Seconds after the start at which ``stage`` is reached (clock-driven)."""
        n = len(self.percents)
        total = self.strategy.duration * minute
        if stage <= n:
            return total * stage / n
        return total + self.strategy.bake * minute

    def clock_stage(self, now: float, minute: float) -> int:
        n = len(self.percents)
        elapsed = now - self.started
        return max((k for k in range(n + 2) if self.stage_offset(k, minute) <= elapsed), default=0)

    @property
    def state(self) -> str:
        if self.ended is not None:
            return self.ended
        n = len(self.percents)
        if self.stage > n or (self.stage == n and self.strategy.bake == 0):
            return "COMPLETE"
        return "BAKING" if self.stage == n else "DEPLOYING"

    @property
    def in_progress(self) -> bool:
        return self.state in ("DEPLOYING", "BAKING")

    @property
    def percent(self) -> float:
        if self.stage == 0:
            return 0.0
        return self.percents[min(self.stage, len(self.percents)) - 1]

    def advance_to(self, stage: int, at: float) -> None:
        """Move to ``stage`` (never back), logging each step as AppConfig does."""
        n = len(self.percents)
        while self.in_progress and self.stage < min(stage, n + 1):
            self.stage += 1
            if self.stage <= n:
                p = self.percents[self.stage - 1]
                self.log("PERCENTAGE_UPDATED", "APPCONFIG", f"Deployed to {p:.2f}% of targets", at)
            if self.stage == n and self.strategy.bake > 0:
                self.log("BAKE_TIME_STARTED", "APPCONFIG", "Final bake time started", at)
            elif self.stage == n + 1 or (self.stage == n and self.strategy.bake == 0):
                self.stage = n + 1
                self.completed_at = at
                self.log("DEPLOYMENT_COMPLETED", "APPCONFIG", "Deployment completed", at)

    def log(self, kind: str, by: str, description: str, at: float) -> None:
        self.events.append(Event(kind, by, description, at))

    def admitted_count(self, active: int) -> int:
        """How many of ``active`` sessions the current percentage admits."""
        if self.state == "COMPLETE":
            return active
        return math.ceil(self.percent / 100.0 * active - 1e-9)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "DeploymentNumber": self.number,
            "ConfigurationProfileId": self.profile_id,
            "ConfigurationName": self.profile_name,
            "ConfigurationVersion": str(self.version),
            "DeploymentDurationInMinutes": self.strategy.duration,
            "GrowthType": self.strategy.growth_type,
            "GrowthFactor": float(self.strategy.growth_factor),
            "FinalBakeTimeInMinutes": self.strategy.bake,
            "State": self.state,
            "StartedAt": iso(self.started),
        }
        if self.percent >= 1.0:
            out["PercentageComplete"] = self.percent
        if self.completed_at is not None:
            out["CompletedAt"] = iso(self.completed_at)
        if self.version_label:
            out["VersionLabel"] = self.version_label
        return out

    def doc(self) -> dict[str, Any]:
        out = self.summary()
        out.update(
            {
                "ApplicationId": self.app_id,
                "EnvironmentId": self.env_id,
                "DeploymentStrategyId": self.strategy.id,
                "ConfigurationLocationUri": self.location_uri,
                "EventLog": [e.doc() for e in reversed(self.events)],  # newest first
                "AppliedExtensions": [],
            }
        )
        if self.description is not None:
            out["Description"] = self.description
        return out


_YAML_TYPES = ("yaml",)


def _parse(content: bytes, content_type: str) -> tuple[Any, str | None]:
    """The document in ``content`` (YAML when its type says so, else JSON), or an error."""
    text = content.decode("utf-8", errors="replace")
    if any(t in content_type.lower() for t in _YAML_TYPES):
        import yaml  # noqa: PLC0415 (only YAML content needs it)

        try:
            return yaml.safe_load(text), None
        except yaml.YAMLError as e:
            return None, f"content is not valid YAML: {e}"
    try:
        return json.loads(text), None
    except ValueError as e:
        return None, f"content is not valid JSON: {e}"


def validator_problem(validators: Sequence[Mapping[str, Any]]) -> str | None:
    """Why CreateConfigurationProfile/UpdateConfigurationProfile refuse ``validators``
    (Content over the model's maximum; a JSON_SCHEMA that is no draft-04 schema), or None."""
    from jsonschema import Draft4Validator, SchemaError  # noqa: PLC0415 (only here)

    for v in validators:
        content = str(v.get("Content", ""))
        if len(content) > VALIDATOR_MAX:
            return f"Validator Content is longer than {VALIDATOR_MAX} characters"
        if v.get("Type") != "JSON_SCHEMA":
            continue
        try:
            Draft4Validator.check_schema(json.loads(content))
        except (ValueError, SchemaError) as e:
            return f"Validator Content is not a valid JSON Schema: {str(e).splitlines()[0]}"
    return None


def invalid_details(
    validators: Sequence[Mapping[str, Any]], content: bytes, content_type: str
) -> list[dict[str, str]]:
    """The InvalidConfiguration details of every JSON_SCHEMA validator ``content`` fails
    ([] when it passes them all)."""
    from jsonschema import Draft4Validator  # noqa: PLC0415 (only StartDeployment needs it)

    out: list[dict[str, str]] = []
    for validator in validators:
        if validator.get("Type") != "JSON_SCHEMA":
            continue
        schema = json.loads(str(validator.get("Content") or "{}"))
        doc, problem = _parse(content, content_type)
        if problem is not None:
            out.append({"Type": "Syntax", "Reason": problem, "Location": "$"})
            continue
        for err in sorted(Draft4Validator(schema).iter_errors(doc), key=str):
            where = "$" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path
            )
            out.append(
                {
                    "Constraint": str(err.validator),
                    "Location": where,
                    "Reason": err.message,
                    "Type": "JSON_SCHEMA",
                    "Value": json.dumps(err.instance)[:1024],
                }
            )
    return out
