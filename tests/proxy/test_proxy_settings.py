"""Whom the rendered proxy settings sign for (#23): the state's ``proxy.allowed_users``,
else the user Prometheus runs as plus Grafana's when Grafana is on; never root by
default. The rendered file is what the real proxy parses and resolves."""

from __future__ import annotations

import json
import pwd
from dataclasses import replace
from typing import Any

import pytest
import yaml

from ampd.core import PROCESS_USERS
from ampd.gateways import users
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import proxy_settings
from ampd.proxy.config import parse
from ampd.proxy.peers import resolve_allowed
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec

BASE = "https://aps-workspaces.eu-west-1.amazonaws.com"
FACTS = WorkspaceFacts(
    id="ws-1234",
    region="eu-west-1",
    remote_write_url=f"{BASE}/workspaces/ws-1234/api/v1/remote_write",
    query_url=f"{BASE}/workspaces/ws-1234/api/v1/query",
)
CTX = RenderContext(source="/etc/ampd/state.yml", state_dir="/var/lib/ampd", workspace=FACTS)
NOBODY = pwd.getpwnam("nobody").pw_uid


def spec(**sections: Any) -> StateSpec:
    text = yaml.safe_dump({"version": 1, "workspace": {"alias": "w"}, **sections})
    return load_spec(text, "/etc/ampd/state.yml").spec


@pytest.mark.parametrize(
    ("sections", "process_users", "expected"),
    [
        ({"prometheus": {}, "proxy": {}}, {}, ["ampd-prometheus"]),
        (
            {"prometheus": {}, "proxy": {}, "grafana": {"enabled": True}},
            {},
            ["ampd-prometheus", "ampd-grafana"],
        ),
        ({"prometheus": {}, "proxy": {}, "grafana": {"enabled": False}}, {}, ["ampd-prometheus"]),
        # the users the processes really run as (a host without the packaged users)
        (
            {"prometheus": {}, "proxy": {}, "grafana": {"enabled": True}},
            {"prometheus": "svc-prom", "grafana": "svc-prom"},
            ["svc-prom"],
        ),
        (
            {"prometheus": {}, "proxy": {"allowed_users": ["nobody", "root"]}},
            {"prometheus": "svc-prom"},
            ["nobody", "root"],
        ),
        ({"prometheus": {}, "proxy": {"allowed_users": []}}, {}, []),
    ],
    ids=["prometheus", "with-grafana", "grafana-off", "process-users", "named", "none"],
)
def test_allowed_users_are_rendered(
    sections: dict[str, Any], process_users: dict[str, str], expected: list[str]
) -> None:
    settings = proxy_settings(spec(**sections), replace(CTX, process_users=process_users))
    assert settings["allowed_uids"] == expected
    # and the proxy reads the file ampd writes
    config = parse(json.loads(json.dumps(settings)))
    assert config.allowed_uids == tuple(expected)


def test_root_only_when_named() -> None:
    default = proxy_settings(spec(prometheus={}, proxy={}, grafana={"enabled": True}), CTX)
    assert "root" not in default["allowed_uids"]
    allowed = resolve_allowed(parse(default).allowed_uids)
    assert allowed is not None and 0 not in allowed
    named = proxy_settings(spec(prometheus={}, proxy={"allowed_users": ["nobody"]}), CTX)
    assert resolve_allowed(parse(named).allowed_uids) == frozenset({NOBODY})


def test_the_packaged_names_have_one_home() -> None:
    """render reads ampd.core's mapping; gateways.users re-exports the same object."""
    assert users.PROCESS_USERS is PROCESS_USERS
    assert PROCESS_USERS["prometheus"] == "ampd-prometheus"
