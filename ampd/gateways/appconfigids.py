"""AppConfig names to ids, for IAM: a policy scopes the Data API to
``application/APP_ID/environment/ENV_ID/configuration/PROFILE_ID``, but a host may name its
state ``appconfig:fleet/prod/ampd``. ``ampd policy`` asks the control plane
(``appconfig:ListApplications``, ``ListEnvironments``, ``ListConfigurationProfiles``: the
administrator's permissions, not the host's) which ids those names have."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ampd.errors import AmpdError

__all__ = ["is_ids", "resolve_ids"]

_ID = re.compile(r"^[a-z0-9]{7}$")  # the ids AppConfig gives (a name may look like one)


def is_ids(location: str) -> bool:
    """``appconfig:`` followed by three AppConfig ids (what IAM needs)."""
    parts = location.removeprefix("appconfig:").split("/")
    return len(parts) == 3 and all(_ID.match(p) for p in parts)


def _items(client: Any, op: str, key: str, **args: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(op).paginate(**args):
        yield from page.get(key, [])


def _pick(items: Iterator[dict[str, Any]], wanted: str, what: str, where: str) -> str:
    found = [i for i in items if wanted in (i.get("Id"), i.get("Name"))]
    by_id = [i for i in found if i.get("Id") == wanted]
    if by_id:
        return str(by_id[0]["Id"])
    if len(found) == 1:
        return str(found[0]["Id"])
    if not found:
        raise AmpdError(f"no AppConfig {what} {wanted!r}{where}")
    raise AmpdError(f"more than one AppConfig {what} is named {wanted!r}{where}: name it by id")


def resolve_ids(location: str, region: str, endpoint: str | None = None) -> str:
    """``appconfig:APP/ENV/PROFILE`` with each name replaced by its id. AmpdError (one line)
    when a name is unknown, ambiguous, or the control plane cannot be read."""
    import boto3  # noqa: PLC0415 (lazy)
    import botocore.exceptions as bx  # noqa: PLC0415

    app, env, profile = location.removeprefix("appconfig:").split("/", 2)
    client = boto3.session.Session().client("appconfig", region_name=region, endpoint_url=endpoint)
    try:
        app_id = _pick(_items(client, "list_applications", "Items"), app, "application", "")
        in_app = f" in application {app_id}"
        env_id = _pick(
            _items(client, "list_environments", "Items", ApplicationId=app_id),
            env,
            "environment",
            in_app,
        )
        profile_id = _pick(
            _items(client, "list_configuration_profiles", "Items", ApplicationId=app_id),
            profile,
            "configuration profile",
            in_app,
        )
    except (bx.BotoCoreError, bx.ClientError) as e:
        raise AmpdError(f"{location}: cannot read AppConfig's ids: {e}") from e
    return f"appconfig:{app_id}/{env_id}/{profile_id}"
