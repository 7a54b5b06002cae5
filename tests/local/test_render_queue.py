"""The remote-write section and external labels of prometheus.yml are byte-stable across
edits that do not concern them: Prometheus rebuilds its queue (and drops what it held)
whenever either changes on a reload."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
import yaml

from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import queue_fingerprint, queue_sections, render_prometheus
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec

STATE = "/etc/ampd/state.yml"
BASE = "https://aps-workspaces.eu-west-1.amazonaws.com"
FACTS = WorkspaceFacts(
    id="ws-1234",
    region="eu-west-1",
    remote_write_url=f"{BASE}/workspaces/ws-1234/api/v1/remote_write",
    query_url=f"{BASE}/workspaces/ws-1234/api/v1/query",
)
CTX = RenderContext(
    source=STATE,
    state_dir="/var/lib/ampd",
    workspace=FACTS,
    instance_labels={"instance_id": "i-0abc", "availability_zone": "eu-west-1a"},
)
BASE_STATE: dict[str, Any] = {
    "version": 1,
    "workspace": {"alias": "w"},
    "proxy": {},
    "prometheus": {
        "scrape_interval": "15s",
        "external_labels": {"cluster": "prod"},
        "instance_labels": ["instance_id", "availability_zone"],
        "scrape_configs": [{"job": "app", "targets": ["127.0.0.1:8080"]}],
        "remote_write": {"queue": {"capacity": 10000, "max_samples_per_send": 2000}},
    },
}


def spec(data: dict[str, Any]) -> StateSpec:
    return load_spec(yaml.safe_dump(data, sort_keys=False), STATE).spec


def edited(path: str, value: Any) -> dict[str, Any]:
    """BASE_STATE with the dotted ``path`` set to ``value``."""
    data = copy.deepcopy(BASE_STATE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


def render(data: dict[str, Any], ctx: RenderContext = CTX) -> bytes:
    return render_prometheus(spec(data), ctx)


# Edits that must leave the queue alone: (id, dotted path, new value)
UNRELATED = [
    ("job-added", "prometheus.scrape_configs", [
        {"job": "app", "targets": ["127.0.0.1:8080"]},
        {"job": "node", "targets": ["127.0.0.1:9100"], "interval": "5s"},
    ]),
    ("jobs-removed", "prometheus.scrape_configs", []),
    ("job-target-and-labels", "prometheus.scrape_configs", [
        {"job": "app", "targets": ["127.0.0.1:8081"], "labels": {"tier": "a"}},
    ]),
    ("scrape-interval", "prometheus.scrape_interval", "1s"),
    ("ampd-self-scrape-off", "metrics", {"scrape": False}),
    ("drift-policy-header", "aws", {"drift": "report"}),
    ("workspace-tags", "workspace.tags", {"team": "platform"}),
    ("rule-groups", "workspace.rule_groups", [{"name": "node", "file": "/etc/ampd/node.yml"}]),
    ("prometheus-listen", "prometheus.listen", "127.0.0.1:19090"),
]  # fmt: skip

# Edits that do rebuild the queue, and which of the two sections they change.
REBUILDING = [
    ("external-label-value", "prometheus.external_labels", {"cluster": "staging"}, (1, 0)),
    ("external-label-added", "prometheus.external_labels", {"cluster": "prod", "env": "x"}, (1, 0)),
    ("instance-label-dropped", "prometheus.instance_labels", ["instance_id"], (1, 0)),
    ("queue-capacity", "prometheus.remote_write.queue", {"capacity": 20000}, (0, 1)),
    ("queue-max-shards", "prometheus.remote_write.queue", {"max_shards": 4}, (0, 1)),
    ("proxy-port", "proxy", {"listen": "127.0.0.1:18005"}, (0, 1)),
    ("signing-native", "prometheus.remote_write.signing", "native", (0, 1)),
]


@pytest.mark.parametrize(("path", "value"), [pytest.param(p, v, id=i) for i, p, v in UNRELATED])
def test_unrelated_edit_keeps_queue_bytes(path: str, value: Any) -> None:
    before, after = render(BASE_STATE), render(edited(path, value))
    # the edit changed the file (workspace-only edits do not touch prometheus.yml at all)...
    assert (before != after) == (not path.startswith("workspace."))
    assert queue_sections(after) == queue_sections(before)  # ...but never these bytes
    assert queue_fingerprint(after) == queue_fingerprint(before)


@pytest.mark.parametrize(
    ("path", "value", "changed"), [pytest.param(p, v, c, id=i) for i, p, v, c in REBUILDING]
)
def test_queue_edits_change_the_fingerprint(
    path: str, value: Any, changed: tuple[int, int]
) -> None:
    before, after = queue_sections(render(BASE_STATE)), queue_sections(render(edited(path, value)))
    assert tuple(int(a != b) for a, b in zip(before, after, strict=True)) == changed
    assert queue_fingerprint(render(edited(path, value))) != queue_fingerprint(render(BASE_STATE))


def test_workspace_change_rebuilds_the_queue() -> None:
    other = WorkspaceFacts(
        id="ws-5678",
        region="eu-west-1",
        remote_write_url=f"{BASE}/workspaces/ws-5678/api/v1/remote_write",
        query_url=f"{BASE}/workspaces/ws-5678/api/v1/query",
    )
    a, b = render(BASE_STATE), render(BASE_STATE, replace(CTX, workspace=other))
    assert queue_sections(a)[0] == queue_sections(b)[0]
    assert b"ws-5678" in queue_sections(b)[1]
    assert queue_fingerprint(a) != queue_fingerprint(b)


def test_sections_are_the_exact_rendered_blocks() -> None:
    labels, remote_write = queue_sections(render(BASE_STATE))
    assert labels == (
        b"  external_labels:\n"
        b'    availability_zone: "eu-west-1a"\n'
        b'    cluster: "prod"\n'
        b'    instance_id: "i-0abc"\n'
    )
    assert remote_write.startswith(b"remote_write:\n  - name: amp\n")
    assert remote_write.endswith(b"      retry_on_http_429: true\n")
    doc = yaml.safe_load(remote_write)
    assert doc["remote_write"][0]["queue_config"] == {
        "capacity": 10000,
        "max_samples_per_send": 2000,
        "retry_on_http_429": True,
    }


def test_no_remote_write_no_labels() -> None:
    data = edited("prometheus.remote_write", None)
    data["prometheus"]["external_labels"] = {}
    data["prometheus"]["instance_labels"] = []
    assert queue_sections(render(data)) == (b"", b"")


def test_fingerprint_separates_the_two_sections() -> None:
    # moving bytes from one section to the other must not give the same fingerprint
    a = b"global:\n  external_labels:\n    a: 1\nremote_write:\n  - x\n"
    b = b"global:\n  external_labels:\n    a: 1\n    b: 2\nremote_write:\n  - x\n"
    assert queue_fingerprint(a) != queue_fingerprint(b)
    assert queue_sections(a) == (b"  external_labels:\n    a: 1\n", b"remote_write:\n  - x\n")
