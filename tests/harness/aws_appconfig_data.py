"""The AppConfig Data API: StartConfigurationSession (names or ids; a profile never
deployed to the environment is answered ResourceNotFoundException, ResourceType
Deployment) and GetLatestConfiguration (single-use tokens valid 24 h; the configuration
when it differs from what the session last received, else an empty body; a poll earlier
than the interval given is refused with ``PollIntervalNotSatisfied`` and recorded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.harness.aws_appconfig import (
    DAY,
    DEFAULT_POLL,
    AppConfig,
    Session,
    bad_request,
    moto_backend,
    new_id,
    not_found,
)
from tests.harness.aws_appconfig_deploy import hosted_profile

__all__ = ["poll", "start_session"]


def _invalid(problem: str, message: str) -> Exception:
    return bad_request(
        message,
        Reason="InvalidParameters",
        Details={"InvalidParameters": {"ConfigurationToken": {"Problem": problem}}},
    )


def start_session(ac: AppConfig, region: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    app_ident = str(doc.get("ApplicationIdentifier", ""))
    env_ident = str(doc.get("EnvironmentIdentifier", ""))
    profile_ident = str(doc.get("ConfigurationProfileIdentifier", ""))
    apps = moto_backend(region).applications.values()
    app = next((a for a in apps if app_ident in (a.id, a.name)), None)
    if app is None:
        raise not_found("Application", app_ident, data=True)
    env = next(
        (
            e
            for e in ac.state.environments.values()
            if (e.region, e.app_id) == (region, app.id) and env_ident in (e.id, e.name)
        ),
        None,
    )
    if env is None:
        raise not_found("Environment", env_ident, data=True)
    profile = hosted_profile(region, app.id, profile_ident)
    if profile is None:
        raise not_found("ConfigurationProfile", profile_ident, data=True)
    deps = ac.state.deployments.get((region, app.id, env.id), [])
    if not any(d.profile_id == profile.id for d in deps):
        raise not_found("Deployment", f"{app_ident}/{env_ident}/{profile_ident}", data=True)
    interval = doc.get("RequiredMinimumPollIntervalInSeconds")
    if interval is not None and not 15 <= int(interval) <= 86400:
        raise bad_request("RequiredMinimumPollIntervalInSeconds must be 15 to 86400")
    session = Session(
        new_id() + new_id(),
        region,
        str(app.id),
        env.id,
        str(profile.id),
        int(interval) if interval is not None else DEFAULT_POLL,
    )
    ac.state.sessions[session.id] = session
    return {"InitialConfigurationToken": ac.token_for(session, ac.now())}


def poll(ac: AppConfig, token: str) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of GetLatestConfiguration with ``token``."""
    found = ac.state.tokens.get(token)
    if found is None:
        raise _invalid("Corrupted", "Invalid or already used ConfigurationToken")
    sid, issued = found
    now = ac.now()
    if now - issued > DAY:
        del ac.state.tokens[token]
        raise _invalid("Expired", "ConfigurationToken has expired")
    session = ac.state.sessions[sid]
    if now < session.not_before:
        ac.state.early.append((sid, session.not_before - now))
        if ac.state.refuse_early:
            raise _invalid("PollIntervalNotSatisfied", "Request too early")
    del ac.state.tokens[token]
    session.last_poll = now
    dep = ac.served(session, now)
    data = b""
    interval = ac.state.poll_interval
    interval = session.interval if interval is None else interval
    headers = {
        "Next-Poll-Configuration-Token": ac.token_for(session, now),
        "Next-Poll-Interval-In-Seconds": str(interval),
        "Content-Type": dep.content_type if dep is not None else "application/octet-stream",
    }
    if dep is not None and dep.version != session.version:
        data = dep.content
        session.version = dep.version
        if dep.version_label:
            headers["Version-Label"] = dep.version_label
    session.not_before = now + interval
    return data, headers
