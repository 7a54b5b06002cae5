"""Two faults that must not leak: a rule file that turned invalid never reaches AMP, and
a read-only state directory heals by itself, without reloading Prometheus meanwhile."""

from __future__ import annotations

import base64
from typing import Any

from tests.engine.test_faults import BROKEN_RULES, RULES, Rig, failing_file, read_only, rig
from tests.harness.wait import wait_for

__all__ = ["rig"]  # the fixture, shared with tests/engine/test_faults.py


def summaries(r: Rig) -> list[dict[str, Any]]:
    return r.proc.events("reconcile.summary")


def wait_passes(r: Rig, n: int, timeout: float = 60.0) -> None:
    """Wait until ampd finished ``n`` more passes than it had now."""
    start = len(summaries(r))
    wait_for(lambda: len(summaries(r)) >= start + n, timeout, what=f"{n} more passes")


def test_a_rule_file_turned_invalid_never_reaches_aws(rig: Rig) -> None:
    pid = rig.start()
    amp = rig.aws.client("amp", "eu-west-1")
    ws = rig.aws.workspace_ids("eu-west-1")[0]
    rig.rules.write_text(BROKEN_RULES)
    rig.condition("SpecValid", "False")
    wait_passes(rig, 3)  # with an AWS resync of 2 s: the AWS side ran on the last good spec
    group = amp.describe_rule_groups_namespace(workspaceId=ws, name="node")
    data = group["ruleGroupsNamespace"]["data"]
    if isinstance(data, str):
        data = base64.b64decode(data)
    assert data == RULES.encode(), data
    rig.still_running(pid)


def test_read_only_state_dir_heals_by_itself_without_reloading_prometheus(rig: Rig) -> None:
    pid = rig.start()
    generated = rig.proc.state_dir / "generated"
    with read_only(generated):
        rig.jobs = [*rig.jobs, {"job": "later", "targets": ["127.0.0.1:2"]}]
        rig.write()
        failing_file(rig, ("Read-only file system",))
        n = len(rig.proc.events("change.applied"))
        wait_passes(rig, 3)
        reloads = [
            e
            for e in rig.proc.events("change.applied")[n:]
            if e.get("key") == "process/prometheus" and e.get("action") == "reload"
        ]
        assert reloads == [], f"{len(reloads)} reloads of a file that was not written"
    wait_for(lambda: "later" in rig.jobs_live(), 90, what="the edit live once writable")
    rig.still_running(pid)
