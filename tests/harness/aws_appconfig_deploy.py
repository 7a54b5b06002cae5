"""AppConfig's StartDeployment and StopDeployment: what they check (the strategy, the
hosted version by number or VersionLabel, a deployment already in progress, the
profile's validators), what they answer, and how a stop rolls back (DEPLOYING; BAKING
too with AllowRevert) or, with AllowRevert, reverts the COMPLETE deployment in effect
(within 72 hours)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.harness.aws_appconfig import (
    AppConfig,
    AppConfigError,
    Environment,
    bad_request,
    moto_backend,
    not_found,
)
from tests.harness.aws_appconfig_plan import Deployment, invalid_details

__all__ = ["hosted_profile", "start_deployment", "stop_deployment"]

_REVERT_WINDOW = 72 * 3600.0


def hosted_profile(region: str, app_id: str, ident: str) -> Any:
    """moto's configuration profile ``ident`` (id, or name) of ``app_id``, or None."""
    app = moto_backend(region).applications.get(app_id)
    profiles = app.config_profiles.values() if app is not None else []
    return next((p for p in profiles if ident in (p.id, p.name)), None)


def _content(raw: Any) -> bytes:
    return raw if isinstance(raw, bytes) else str(raw or "").encode()


def _version(profile: Any, wanted: str) -> Any:
    """The hosted version ``wanted`` names: its number, or its VersionLabel."""
    versions = profile.config_versions
    if wanted.isdigit():
        return versions.get(int(wanted))
    return next((v for v in versions.values() if v.version_label == wanted), None)


def start_deployment(ac: AppConfig, env: Environment, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The new deployment's document, or the AppConfigError AppConfig answers."""
    region = env.region
    profile_ident = str(doc.get("ConfigurationProfileId", ""))
    profile = hosted_profile(region, env.app_id, profile_ident)
    if profile is None or profile.id != profile_ident:  # the control plane takes ids only
        raise not_found("ConfigurationProfile", profile_ident)
    strategy = ac.strategy(region, str(doc.get("DeploymentStrategyId", "")))
    wanted = str(doc.get("ConfigurationVersion", ""))
    version = _version(profile, wanted)
    if version is None:
        raise not_found("HostedConfigurationVersion", wanted)
    deps = ac.state.deployments.setdefault((region, env.app_id, env.id), [])
    ac.refresh_all()
    latest = doc.get("LatestDeploymentNumber")
    if latest is not None and int(latest) != len(deps):
        raise AppConfigError(
            409,
            "ConflictException",
            f"LatestDeploymentNumber {latest} is not the latest ({len(deps)})",
        )
    if any(d.in_progress for d in deps):
        raise AppConfigError(
            409, "ConflictException", f"Environment {env.id} already has a deployment in progress"
        )
    content = _content(version.content)
    content_type = str(version.content_type or "application/octet-stream")
    details = invalid_details(profile.validators or [], content, content_type)
    if details:
        raise bad_request(
            "The configuration did not pass its validators",
            Reason="InvalidConfiguration",
            Details={"InvalidConfiguration": details},
        )
    now = ac.now()
    dep = Deployment(
        region=region,
        app_id=env.app_id,
        env_id=env.id,
        number=len(deps) + 1,
        profile_id=str(profile.id),
        profile_name=str(profile.name),
        location_uri=str(profile.location_uri or "hosted"),
        version=int(version.version),
        version_label=version.version_label or None,
        content=content,
        content_type=content_type,
        strategy=strategy,
        description=doc.get("Description"),
        started=now,
        held=ac.state.hold,
    )
    dep.log("DEPLOYMENT_STARTED", "USER", "Deployment started", now)
    deps.append(dep)
    ac.refresh_all()
    return dep.doc()


def stop_deployment(ac: AppConfig, dep: Deployment, allow_revert: bool) -> dict[str, Any]:
    """StopDeployment's answer: ROLLED_BACK, REVERTED, or a BadRequestException."""
    now = ac.now()
    state = dep.state
    if state == "DEPLOYING" or (state == "BAKING" and allow_revert):
        ac.roll_back(dep, "USER", "Deployment stopped by the user", now)
        return dep.doc()
    if state == "COMPLETE" and allow_revert:
        deps = ac.state.deployments.get((dep.region, dep.app_id, dep.env_id), [])
        current = next(
            (d for d in reversed(deps) if d.profile_id == dep.profile_id and d.state == "COMPLETE"),
            None,
        )
        done = dep.completed_at if dep.completed_at is not None else now
        if current is dep and now - done <= _REVERT_WINDOW:
            dep.ended = "REVERTED"
            dep.log("REVERT_COMPLETED", "USER", "Reverted to the previous configuration", now)
            return dep.doc()
        raise bad_request(
            f"Deployment {dep.number} can no longer be reverted: only the configuration in "
            "effect can be, within 72 hours of its completion"
        )
    raise bad_request(
        f"Deployment {dep.number} is {state}: only a DEPLOYING deployment can be stopped "
        "unless AllowRevert is set"
    )
