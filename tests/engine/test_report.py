"""report/: the STATUS= line, exit codes, conditions, the status document, the
remote-write flow verdicts and the printed plan."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from ampd.core import (
    Action,
    Change,
    Condition,
    ConditionStatus,
    FieldDiff,
    Health,
    Kind,
    Outcome,
    Plan,
    ResourceKey,
    ResourceStatus,
    Skipped,
    SyncStatus,
)
from ampd.engine.plantext import plan_json, plan_text
from ampd.engine.status import (
    STATUS_SCHEMA,
    PassSummary,
    exit_code,
    merge_conditions,
    status_document,
    status_line,
)
from ampd.engine.statusview import render_human
from ampd.local.report.flow import FlowTracker

T0 = 1_700_000_000.0
WS_KEY = ResourceKey(Kind.WORKSPACE, "prod-metrics")
PROM_KEY = ResourceKey(Kind.PROCESS, "prometheus")
FILE_KEY = ResourceKey(Kind.FILE, "prometheus.yml")


def ok(key: ResourceKey) -> ResourceStatus:
    return ResourceStatus(key, SyncStatus.SYNCED, Health.HEALTHY)


def summary(**kw: Any) -> PassSummary:
    base = PassSummary(
        reconcile_id="r-1",
        started_at=T0,
        duration_s=0.12,
        plan=Plan(),
        outcomes=(),
        statuses=(ok(WS_KEY), ok(PROM_KEY)),
        conditions={},
        spec_file="/etc/ampd/state.yml",
        spec_generation=3,
        spec_sha256="ab" * 32,
        spec_error=None,
        workspace={"id": "ws-1234", "region": "eu-west-1"},
        targets=3,
        next_pass_at=T0 + 300,
        runtime="supervisor",
    )
    return replace(base, **kw)


def cond(type_: str, status: ConditionStatus, message: str = "", t: float = 0.0) -> Condition:
    return Condition(type_, status, reason=f"{type_}Reason", message=message, last_transition=t)


DRIFT = Change(FILE_KEY, Action.UPDATE, reason="edited by hand")

# (id, summary changes, expected STATUS= line)
LINES = [
    (
        "healthy",
        {},
        "Synced · Healthy · ws-1234 · 3 targets · 0 drift · last pass 120 ms",
    ),
    (
        "healthy-no-workspace-no-targets",
        {"workspace": None, "targets": None, "duration_s": 0.0004},
        "Synced · Healthy · 0 drift · last pass 0 ms",
    ),
    (
        "drift-only",
        {
            "plan": Plan(drift=(DRIFT,)),
            "statuses": (
                ok(WS_KEY),
                ResourceStatus(FILE_KEY, SyncStatus.OUT_OF_SYNC, Health.HEALTHY),
            ),
        },
        "OutOfSync · Healthy · ws-1234 · 3 targets · 1 drift · last pass 120 ms",
    ),
    (
        "spec-invalid",
        {"spec_error": "s.yml:3:5: aws.region: bad\ns.yml:9:1: other"},
        "OutOfSync · Degraded · state file invalid (keeping last good spec): "
        "s.yml:3:5: aws.region: bad",
    ),
    (
        "degraded-resource",
        {
            "statuses": (
                ok(WS_KEY),
                ResourceStatus(PROM_KEY, SyncStatus.SYNCED, Health.DEGRADED, "exited with 1"),
            )
        },
        "Synced · Degraded · Degraded: process/prometheus exited with 1",
    ),
    (
        "missing-resource",
        {
            "statuses": (
                ResourceStatus(WS_KEY, SyncStatus.OUT_OF_SYNC, Health.MISSING, "not created yet"),
                ok(PROM_KEY),
            )
        },
        "OutOfSync · Missing · Missing: aws.workspace/prod-metrics not created yet",
    ),
    (
        "degraded-beats-missing",
        {
            "statuses": (
                ResourceStatus(WS_KEY, SyncStatus.OUT_OF_SYNC, Health.MISSING, "absent"),
                ResourceStatus(PROM_KEY, SyncStatus.SYNCED, Health.DEGRADED, "crash loop"),
            )
        },
        "OutOfSync · Degraded · Degraded: process/prometheus crash loop",
    ),
    (
        "aws-unreachable",
        {"conditions": {"AwsReachable": cond("AwsReachable", ConditionStatus.FALSE, "timeout")}},
        "Synced · Degraded · AwsReachable=False: timeout",
    ),
    (
        "remote-write-not-flowing",
        {
            "conditions": {
                "RemoteWriteFlowing": cond("RemoteWriteFlowing", ConditionStatus.FALSE, "")
            }
        },
        "Synced · Degraded · RemoteWriteFlowing=False: RemoteWriteFlowingReason",
    ),
    (
        "true-condition-is-no-problem",
        {"conditions": {"AwsReachable": cond("AwsReachable", ConditionStatus.TRUE, "ok")}},
        "Synced · Healthy · ws-1234 · 3 targets · 0 drift · last pass 120 ms",
    ),
    (
        "spec-error-beats-conditions",
        {
            "spec_error": "s.yml:1:1: x",
            "conditions": {"AwsReachable": cond("AwsReachable", ConditionStatus.FALSE, "t")},
        },
        "OutOfSync · Degraded · state file invalid (keeping last good spec): s.yml:1:1: x",
    ),
    (
        "progressing",
        {"statuses": (ResourceStatus(WS_KEY, SyncStatus.UNKNOWN, Health.PROGRESSING, "CREATING"),)},
        "Unknown · Progressing · ws-1234 · 3 targets · 0 drift · last pass 120 ms",
    ),
]


@pytest.mark.parametrize(("changes", "line"), [pytest.param(c[1], c[2], id=c[0]) for c in LINES])
def test_status_line(changes: dict[str, Any], line: str) -> None:
    assert status_line(summary(**changes)) == line


def test_status_line_is_bounded() -> None:
    long = "x" * 1000
    line = status_line(summary(spec_error=long))
    assert len(line) == 400
    assert "\n" not in status_line(summary(spec_error="a\nb\nc"))


@pytest.mark.parametrize(
    ("sync", "health", "code"),
    [
        ("Synced", "Healthy", 0),
        ("OutOfSync", "Healthy", 2),
        ("Unknown", "Healthy", 2),
        ("Synced", "Progressing", 2),
        ("OutOfSync", "Progressing", 2),
        ("Synced", "Degraded", 3),
        ("OutOfSync", "Degraded", 3),
        ("Synced", "Missing", 3),
        ("Synced", "Unknown", 3),
    ],
)
def test_exit_code(sync: str, health: str, code: int) -> None:
    assert exit_code({"sync": sync, "health": health}) == code


def test_merge_conditions_keeps_transition_unless_status_flips() -> None:
    previous = {
        "AwsReachable": cond("AwsReachable", ConditionStatus.TRUE, t=100.0),
        "SpecValid": cond("SpecValid", ConditionStatus.TRUE, t=50.0),
        "Gone": cond("Gone", ConditionStatus.TRUE, t=10.0),
    }
    current = [
        cond("AwsReachable", ConditionStatus.TRUE, "still fine"),  # same status
        cond("SpecValid", ConditionStatus.FALSE, "broken"),  # flipped
        cond("RemoteWriteFlowing", ConditionStatus.UNKNOWN),  # new
    ]
    merged = merge_conditions(previous, current, now=200.0)
    assert merged["AwsReachable"].last_transition == 100.0
    assert merged["AwsReachable"].message == "still fine"  # message updates, time does not
    assert merged["SpecValid"].last_transition == 200.0
    assert merged["SpecValid"].status is ConditionStatus.FALSE
    assert merged["RemoteWriteFlowing"].last_transition == 200.0
    assert merged["Gone"] == previous["Gone"]  # not observed this pass: kept as it was
    assert previous["SpecValid"].status is ConditionStatus.TRUE  # inputs untouched


def at(text: str) -> float:
    """An ISO 8601 time in the document, back to a timestamp; it must carry its zone."""
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    return parsed.timestamp()


def test_status_document_shape() -> None:
    outcome_ok = Outcome(Change(FILE_KEY, Action.UPDATE, reason="desired content changed"), True)
    outcome_bad = Outcome(
        Change(PROM_KEY, Action.RELOAD, reason="configuration changed"), False, "500"
    )
    s = summary(
        plan=Plan(
            changes=(outcome_ok.change, outcome_bad.change),
            drift=(DRIFT,),
            skipped=(Skipped(WS_KEY, "observe mode"),),
        ),
        outcomes=(outcome_ok, outcome_bad),
        conditions={
            "SpecValid": cond("SpecValid", ConditionStatus.TRUE, t=T0),
            "AwsReachable": cond("AwsReachable", ConditionStatus.TRUE, t=T0),
        },
        errors=[{"key": "process/prometheus", "message": "500"}],
    )
    doc = status_document(s, pid=4242, now=T0 + 1)
    assert json.loads(json.dumps(doc)) == doc  # JSON all the way down
    assert doc["schema"] == STATUS_SCHEMA == "ampd.status/v1"
    assert set(doc) == {
        "schema",
        "generated_at",
        "pid",
        "runtime",
        "sync",
        "health",
        "line",
        "spec",
        "workspace",
        "targets",
        "resources",
        "conditions",
        "last_pass",
        "next_pass_at",
        "errors",
        "listeners_beyond_loopback",
        "ingest",
    }
    assert doc["ingest"] is None  # no ingest side ran
    assert doc["pid"] == 4242
    assert at(doc["generated_at"]) == T0 + 1
    assert (doc["sync"], doc["health"]) == ("Synced", "Healthy")
    assert doc["line"] == status_line(s)
    assert doc["spec"] == {
        "file": "/etc/ampd/state.yml",
        "generation": 3,
        "sha256": "ab" * 32,
        "version": None,
        "last_look": None,
        "valid": True,
        "error": None,
    }
    assert doc["workspace"] == {"id": "ws-1234", "region": "eu-west-1"}
    assert [(r["kind"], r["name"]) for r in doc["resources"]] == [
        ("aws.workspace", "prod-metrics"),
        ("process", "prometheus"),
    ]
    assert doc["resources"][0] == {
        "kind": "aws.workspace",
        "name": "prod-metrics",
        "sync": "Synced",
        "health": "Healthy",
        "message": "",
        "last_change": None,
    }
    assert [c["type"] for c in doc["conditions"]] == ["AwsReachable", "SpecValid"]
    assert at(doc["conditions"][0]["last_transition"]) == T0
    lp = doc["last_pass"]
    assert lp["id"] == "r-1"
    assert at(lp["started_at"]) == T0
    assert lp["duration_ms"] == 120.0
    assert (lp["applied"], lp["failed"], lp["drift"]) == (1, 1, 1)
    assert lp["changes"][1] == {
        "key": "process/prometheus",
        "action": "reload",
        "ok": False,
        "reason": "configuration changed",
        "message": "500",
    }
    assert lp["skipped"] == [{"key": "aws.workspace/prod-metrics", "reason": "observe mode"}]
    assert at(doc["next_pass_at"]) == T0 + 300
    assert doc["errors"] == [{"key": "process/prometheus", "message": "500"}]
    # The human view reads every field without tripping.
    text = render_human(doc)
    assert "ampd: Synced · Healthy" in text
    assert "FAILED 500" in text


def test_status_document_with_invalid_spec() -> None:
    doc = status_document(summary(spec_error="s.yml:1:1: broken"), pid=1, now=T0)
    assert doc["spec"]["valid"] is False
    assert doc["spec"]["error"] == "s.yml:1:1: broken"
    assert (doc["sync"], doc["health"]) == ("OutOfSync", "Degraded")
    assert exit_code(doc) == 3
    assert "INVALID" in render_human(doc)


# ---------------------------------------------------------------------------------------
# FlowTracker: RemoteWriteFlowing from Prometheus' remote-storage counters


def prom(sent: float, failed: float = 0, retried: float = 0, pending: float = 0) -> str:
    return f"""\
# HELP prometheus_remote_storage_samples_total Total number of samples sent to remote storage.
# TYPE prometheus_remote_storage_samples_total counter
prometheus_remote_storage_samples_total{{remote_name="amp",url="http://x"}} {sent}
# TYPE prometheus_remote_storage_samples_failed_total counter
prometheus_remote_storage_samples_failed_total{{remote_name="amp",url="http://x"}} {failed}
# TYPE prometheus_remote_storage_samples_retried_total counter
prometheus_remote_storage_samples_retried_total{{remote_name="amp",url="http://x"}} {retried}
# TYPE prometheus_remote_storage_samples_pending gauge
prometheus_remote_storage_samples_pending{{remote_name="amp",url="http://x"}} {pending}
"""


def proxy(codes: dict[str, float], kind: str = "remote_write") -> str:
    lines = ["# TYPE ampd_proxy_requests_total counter"]
    lines += [
        f'ampd_proxy_requests_total{{code="{c}",path_kind="{kind}"}} {n}' for c, n in codes.items()
    ]
    lines.append('ampd_proxy_requests_total{code="500",path_kind="query"} 9.0')
    return "\n".join(lines) + "\n"


# (id, [(prom text, proxy text, signing)] fed in order, expected (status, reason, fragment)
#  of the last verdict, native_unsigned)
FLOWS = [
    (
        "no-metrics",
        [(None, None, "proxy")],
        (ConditionStatus.UNKNOWN, "NoMetrics", "did not answer"),
        False,
    ),
    (
        "no-samples-yet",
        [(prom(0), None, "proxy")],
        (ConditionStatus.UNKNOWN, "NoSamplesYet", "no samples sent yet"),
        False,
    ),
    (
        "accepted",
        [(prom(100), proxy({"200": 4}), "proxy"), (prom(250), proxy({"200": 9}), "proxy")],
        (ConditionStatus.TRUE, "SamplesAccepted", "150 samples accepted since the last check"),
        False,
    ),
    (
        "rejected-403-via-proxy",
        [
            (prom(100), proxy({"200": 4}), "proxy"),
            (prom(200, failed=100), proxy({"200": 4, "403": 3}), "proxy"),
        ],
        (
            ConditionStatus.FALSE,
            "SamplesRejected",
            "100 samples failed, 0 retried since the last check; upstream answered 3x HTTP 403 "
            "(AMP refused the signature or the role lacks aps:RemoteWrite)",
        ),
        False,
    ),
    (
        "rejected-native-unsigned",
        [(prom(50, failed=50), None, "native")],
        (ConditionStatus.FALSE, "SamplesRejected", "50 samples failed, 0 retried"),
        True,
    ),
    (
        "retrying-only",
        [(prom(0, retried=30, pending=30), proxy({"503": 2}), "proxy")],
        (ConditionStatus.FALSE, "SamplesRejected", "upstream answered 2x HTTP 503"),
        False,
    ),
    (
        "query-errors-are-not-remote-write",
        [(prom(10), proxy({"200": 1}, kind="remote_write"), "proxy")],
        (ConditionStatus.TRUE, "SamplesAccepted", "10 samples accepted"),
        False,
    ),
    (
        "stalled",
        [(prom(100), None, "proxy"), (prom(100, pending=500), None, "proxy")],
        (
            ConditionStatus.FALSE,
            "Stalled",
            "500 samples pending and none sent since the last check",
        ),
        False,
    ),
    (
        "counter-reset-after-restart",
        [(prom(10_000), None, "proxy"), (prom(40), None, "proxy")],
        (ConditionStatus.TRUE, "SamplesAccepted", "40 samples accepted since the last check"),
        False,
    ),
    (
        "old-403s-do-not-count-again",
        [
            (prom(100, failed=100), proxy({"403": 5}), "proxy"),
            (prom(300, failed=100), proxy({"403": 5, "200": 2}), "proxy"),
        ],
        (ConditionStatus.TRUE, "SamplesAccepted", "200 samples accepted"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("feed", "verdict", "unsigned"), [pytest.param(*f[1:], id=f[0]) for f in FLOWS]
)
def test_flow_tracker(
    feed: list[tuple[str | None, str | None, str]],
    verdict: tuple[ConditionStatus, str, str],
    unsigned: bool,
) -> None:
    tracker = FlowTracker()
    results = [tracker.observe(p, x, signing=s) for p, x, s in feed]
    last = results[-1]
    assert (last.status, last.reason) == verdict[:2]
    assert verdict[2] in last.message
    assert last.native_unsigned is unsigned


def test_flow_tracker_unanswered_scrape_keeps_the_baseline() -> None:
    tracker = FlowTracker()
    tracker.observe(prom(100), None, signing="proxy")
    tracker.observe(None, None, signing="proxy")
    verdict = tracker.observe(prom(130), None, signing="proxy")
    assert verdict.message == "30 samples accepted since the last check"


# ---------------------------------------------------------------------------------------
# the printed plan


def test_plan_text_symbols() -> None:
    diff = (FieldDiff("retention_days", 30, 150),)
    plan = Plan(
        changes=(
            Change(WS_KEY, Action.CREATE, reason="missing"),
            Change(ResourceKey(Kind.WORKSPACE_CONFIGURATION, "w"), Action.UPDATE, diffs=diff),
            Change(ResourceKey(Kind.RULE_GROUP, "old"), Action.DELETE, reason="removed"),
        ),
        drift=(DRIFT,),
        skipped=(Skipped(ResourceKey(Kind.IAM_ROLE, "ampd-writer"), "observe mode"),),
    )
    text = plan_text(plan, color=False)
    assert text.splitlines() == [
        "+ aws.workspace/prod-metrics (create): missing",
        "~ aws.workspace_configuration/w (update)",
        "    retention_days: 30 -> 150",
        "- aws.rule_group/old (delete): removed",
        "! file/prometheus.yml (update): edited by hand",
        "    (drift reported, not corrected)",
        "· aws.iam_role/ampd-writer skipped: observe mode",
        "Plan: 3 to change, 1 drifted, 1 skipped.",
    ]


def test_plan_text_corrected_drift_is_listed_once_with_outcome() -> None:
    plan = Plan(changes=(DRIFT,), drift=(DRIFT,))
    text = plan_text(plan, color=False, outcomes=[Outcome(DRIFT, False, "disk full")])
    assert text.splitlines() == [
        "~ file/prometheus.yml (update): edited by hand",
        "    => FAILED: disk full",
        "Plan: 1 to change, 1 drifted, 0 skipped.",
    ]


def test_plan_text_in_sync_and_color() -> None:
    assert plan_text(Plan(), color=True) == "No changes. Everything is in sync.\n"
    colored = plan_text(Plan(changes=(Change(WS_KEY, Action.CREATE),)), color=True)
    assert colored.startswith("\x1b[32m+ aws.workspace/prod-metrics (create)\x1b[0m\n")
    long = Change(FILE_KEY, Action.UPDATE, diffs=(FieldDiff("x", "a" * 200, None),))
    diff_line = plan_text(Plan(changes=(long,)), color=False).splitlines()[1]
    assert diff_line.endswith("... -> null")
    assert len(diff_line) < 120


def test_plan_json() -> None:
    diff = (FieldDiff("sha256", None, "abc"),)
    created = Change(FILE_KEY, Action.CREATE, None, {"sha256": "abc"}, diff, "missing")
    plan = Plan(changes=(created,), skipped=(Skipped(WS_KEY, "retain"),))
    data = plan_json(plan, [Outcome(created, True)])
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "schema": "ampd.plan/v1",
        "in_sync": False,
        "changes": [
            {
                "key": "file/prometheus.yml",
                "kind": "file",
                "name": "prometheus.yml",
                "action": "create",
                "reason": "missing",
                "diffs": [{"field": "sha256", "before": None, "after": "abc"}],
            }
        ],
        "drift": [],
        "skipped": [{"key": "aws.workspace/prod-metrics", "reason": "retain"}],
        "outcomes": [{"key": "file/prometheus.yml", "action": "create", "ok": True, "message": ""}],
    }
    assert plan_json(Plan())["in_sync"] is True


@pytest.mark.parametrize("ctype", ["RemoteWriteFlowing", "AwsReachable", "WorkspaceActive"])
def test_false_delivery_condition_degrades_health(ctype: str) -> None:
    s = summary(conditions={ctype: cond(ctype, ConditionStatus.FALSE, "why")})
    doc = status_document(s, pid=1, now=T0)
    assert (doc["sync"], doc["health"]) == ("Synced", "Degraded")
    assert exit_code(doc) == 3
    healthy = status_document(
        summary(conditions={ctype: cond(ctype, ConditionStatus.TRUE)}), pid=1, now=T0
    )
    assert exit_code(healthy) == 0


def test_flow_tracker_needs_a_whole_window_of_silence_to_call_it_stalled() -> None:
    tracker = FlowTracker(window=30.0)
    first = tracker.observe(prom(100), None, signing="proxy", now=0.0)
    assert first.status == ConditionStatus.TRUE
    # Prometheus sends in batches: a few quiet seconds keep the last verdict
    quiet = tracker.observe(prom(100, pending=50), None, signing="proxy", now=5.0)
    assert (quiet.status, quiet.reason) == (ConditionStatus.TRUE, "SamplesAccepted")
    stalled = tracker.observe(prom(100, pending=50), None, signing="proxy", now=31.0)
    assert (stalled.status, stalled.reason) == (ConditionStatus.FALSE, "Stalled")
    assert "in 31s" in stalled.message
    # a failure is reported at once, whatever the window
    failed = tracker.observe(prom(150, failed=50), None, signing="proxy", now=32.0)
    assert (failed.status, failed.reason) == (ConditionStatus.FALSE, "SamplesRejected")
