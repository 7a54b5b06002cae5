"""A fleet of 20 hosts takes a staged AppConfig deployment, an alarm rolls it back, and a
version that fails the validator reaches none of them.

Each host is a network namespace of its own (tests/harness/netns.py): its own loopback,
so all 20 run the same state document, ports and all, as instances do; one link to the
test's hub, where the AWS emulator (AppConfig's Data API and deployments, AMP), the
SigV4-verifying data plane and instance metadata (each host its own instance id) answer.
On each host: ``ampd run --state appconfig:fleet/prod/ampd`` (supervisor runtime), the
Prometheus and signing proxy it runs, and a sample app whose counter reads k at its k-th
scrape (tests/harness/loss.py), so that a missing sample is seen.

What is proven:
- a linear 50 %-per-step deployment reaches exactly half the hosts (every host has polled
  since the step and reports its version), then all of them;
- the rollout is visible as the fleet dashboard shows it: its panel's query, run against
  the receiver that the hosts' own metrics reach, counts the hosts per version;
- a CloudWatch alarm rolls the deployment back during its bake time, and every host returns
  to the previous version, with no sample of any host lost from before the deployment to
  after the rollback;
- a version that ``ampd schema --appconfig`` refuses is refused at StartDeployment and no
  host ever runs it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ampd.spec.appconfig_schema import appconfig_schema_json
from tests.harness.appconfig_world import make_strategy
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_local import AmpdProcess
from tests.harness.fleetbox import ImdsByAddress, VethLink
from tests.harness.imds import ImdsServer
from tests.harness.loss import METRIC, Phase, failed_scrapes, runs
from tests.harness.netns import NetHost
from tests.harness.prom import Prometheus, prometheus_available
from tests.harness.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.skipif(not prometheus_available(), reason="needs /usr/bin/prometheus"),
]

HOSTS = 20
SUBNET = "10.232.0"  # the fleet boot box test uses 10.231.0
REGION = "eu-west-1"
APP, ENV, PROFILE = "fleet", "prod", "ampd"
SOURCE = f"appconfig:{APP}/{ENV}/{PROFILE}"
ALARM = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:fleet-health"
ALARM_ROLE = "arn:aws:iam::123456789012:role/appconfig-alarms"
APP_PORT = 9101
# the fleet dashboard's rollout panel (ampd/local/render/dashboards/ampd.json), all hosts
DASHBOARD = Path(__file__).resolve().parents[2] / "ampd/local/render/dashboards/ampd.json"


def rollout_query() -> str:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    [panel] = [p for p in panels if "hosts per state version" in p["title"]]
    return str(panel["targets"][0]["expr"]).replace('"$instance_id"', '".*"')


def document(ws_id: str, data_plane: str, *, extra_job: bool = False) -> bytes:
    """The fleet's state, as JSON (what AppConfig's JSON Schema validator reads)."""
    jobs: list[dict[str, Any]] = [
        {"job": "app", "targets": [f"127.0.0.1:{APP_PORT}"], "interval": "1s"}
    ]
    if extra_job:  # v2: one more job (its target answers nothing: up == 0)
        jobs.append({"job": "extra", "targets": ["127.0.0.1:9"], "interval": "5s"})
    doc = {
        "version": 1,
        "stack": "fleet",
        "aws": {"region": REGION, "mode": "observe", "data_plane_url": data_plane},
        "workspace": {"id": ws_id},
        "prometheus": {
            "mode": "agent",
            "listen": "127.0.0.1:9090",
            "scrape_interval": "1s",
            "external_labels": {"fleet": "prod"},
            "instance_labels": ["instance_id"],
            "scrape_configs": jobs,
            "remote_write": {
                "signing": "proxy",
                "queue": {"capacity": 10000, "max_samples_per_send": 500},
            },
        },
        "proxy": {"listen": "127.0.0.1:8005"},
        "grafana": {"enabled": False},
        "metrics": {"listen": "127.0.0.1:9795", "scrape": True},
        "state_source": {"poll_interval": "15s"},
        "runtime": "supervisor",
    }
    return json.dumps(doc, indent=1).encode()


@dataclass
class Fleet:
    em: AwsEmulator
    receiver: Prometheus
    hosts: list[NetHost]
    ampds: list[AmpdProcess]
    instance_ids: list[str]
    appconfig: Any  # boto3 appconfig client
    ids: dict[str, str]  # application, environment, profile, strategy -> id
    data_plane: str
    ws_id: str

    def publish(self, content: bytes, label: str) -> str:
        v = self.appconfig.create_hosted_configuration_version(
            ApplicationId=self.ids["app"],
            ConfigurationProfileId=self.ids["profile"],
            Content=content,
            ContentType="application/json",
            VersionLabel=label,
        )
        return str(v["VersionNumber"])

    def deploy(self, version: str, strategy: str) -> int:
        d = self.appconfig.start_deployment(
            ApplicationId=self.ids["app"],
            EnvironmentId=self.ids["env"],
            DeploymentStrategyId=strategy,
            ConfigurationProfileId=self.ids["profile"],
            ConfigurationVersion=version,
        )
        return int(d["DeploymentNumber"])

    def deployment(self, number: int) -> dict[str, Any]:
        return dict(
            self.appconfig.get_deployment(
                ApplicationId=self.ids["app"],
                EnvironmentId=self.ids["env"],
                DeploymentNumber=number,
            )
        )

    def versions(self) -> list[str | None]:
        """The state version each host reports in ``ampd status`` (None: no status yet)."""
        out: list[str | None] = []
        for a in self.ampds:
            status = a.status()
            out.append(status["spec"].get("version") if status else None)
        return out

    def settled_since(self, t: float) -> bool:
        """Every host looked at AppConfig after ``t`` and wrote the status of that pass:
        what the hosts report now is what AppConfig gave them since."""
        for a in self.ampds:
            status = a.status()
            look = status["spec"].get("last_look") if status else None
            if look is None or _epoch(look) <= t:
                return False
        return True

    def laggards(self, version: str) -> str:
        """The hosts not on ``version`` yet, each with its status and the end of its log."""
        out = [str(counts(self.versions()))]
        for a, v in zip(self.ampds, self.versions(), strict=True):
            if v != version:
                log = a.log_path.read_text(errors="replace") if a.log_path.exists() else ""
                alive = a.proc is not None and a.proc.poll() is None
                out.append(f"{a.tmp.name} ({'running' if alive else 'exited'}): {v}")
                out += [f"  {line[:300]}" for line in log.splitlines()[-15:]]
        return "\n".join(out)

    def describe(self, t: float) -> str:
        """Sessions and statuses, for a failure's message."""
        lines = [f"t={t:.1f} now={self.em.appconfig.now():.1f}"]
        for s in self.em.appconfig.sessions():
            lines.append(f"session {s[0][:8]} profile {s[3]} version {s[4]} last poll {s[5]}")
        for a in self.ampds:
            status = a.status()
            lines.append(
                f"{a.tmp.name}: {status['spec'].get('version')} looked at"
                f" {status['spec'].get('last_look')}, status at {status['generated_at']}"
                if status
                else f"{a.tmp.name}: no status"
            )
        return "\n".join(lines)

    def dashboard(self) -> dict[str, int]:
        """The rollout panel's query, at the receiver: hosts per version, now."""
        return {
            r["metric"].get("version", ""): int(float(r["value"][1]))
            for r in self.receiver.query(rollout_query())
            if r["metric"].get("source") == SOURCE
        }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def counts(versions: list[str | None]) -> dict[str | None, int]:
    out: dict[str | None, int] = {}
    for v in versions:
        out[v] = out.get(v, 0) + 1
    return out


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    tag = f"{int(time.time() * 1000) % 0xFFFF:04x}"
    with contextlib.ExitStack() as stack:
        hosts: list[NetHost] = []
        for i in range(HOSTS):
            host = NetHost(VethLink(tag, i, subnet=SUBNET, prefix="a"))
            stack.callback(host.close)
            hosts.append(host.start())
        hub = hosts[0].hub
        imds = ImdsByAddress(hub=hub)
        instance_ids = [f"i-0f1ee7{i:011x}" for i in range(HOSTS)]
        for host, instance_id in zip(hosts, instance_ids, strict=True):
            imds.by_address[host.address] = ImdsServer(instance_id=instance_id, region=REGION)
        imds.start()
        stack.callback(imds.stop)
        em = stack.enter_context(AwsEmulator(host=hub))
        em.reset()  # moto keeps its resources per process
        em.instant()
        receiver = stack.enter_context(Prometheus(mode="server", remote_write_receiver=True))
        servers = list(imds.by_address.values())
        dataplane = DataPlane(
            lambda akid: next((s for s in (m.secret_for(akid) for m in servers) if s), None),
            lambda ws: ws in em.workspace_ids(REGION),
            receiver.url,
            region=REGION,
        )
        dataplane.host = hub
        stack.enter_context(dataplane)
        ws_id = em.client("amp", REGION).create_workspace(alias="fleet-metrics")["workspaceId"]

        appconfig = em.client("appconfig", REGION)
        app = appconfig.create_application(Name=APP)["Id"]
        env = appconfig.create_environment(
            ApplicationId=app,
            Name=ENV,
            Monitors=[{"AlarmArn": ALARM, "AlarmRoleArn": ALARM_ROLE}],
        )["Id"]
        profile = appconfig.create_configuration_profile(
            ApplicationId=app,
            Name=PROFILE,
            LocationUri="hosted",
            Validators=[{"Type": "JSON_SCHEMA", "Content": appconfig_schema_json()}],
        )["Id"]
        linear = make_strategy(appconfig, "linear-50", growth=50, minutes=2, bake=10)
        at_once = make_strategy(appconfig, "at-once")
        f = Fleet(
            em,
            receiver,
            hosts,
            [],
            instance_ids,
            appconfig,
            {"app": app, "env": env, "profile": profile, "linear": linear, "at_once": at_once},
            dataplane.url,
            ws_id,
        )
        v1 = f.publish(document(ws_id, dataplane.url), "v1")
        first = f.deploy(v1, at_once)
        wait_for(lambda: f.deployment(first)["State"] == "COMPLETE", 30, what="v1 deployed")

        for i, host in enumerate(hosts):
            host.popen(
                [sys.executable, "-m", "tests.harness.sample_app", "--port", str(APP_PORT)],
                cwd=str(Path(__file__).resolve().parents[2]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            ampd = AmpdProcess(tmp_path / f"h{i:02d}", env=_host_env(em, imds))
            ampd.state_file = Path(SOURCE)  # what AmpdProcess passes as --state
            ampd.wrap = host.enter
            stack.callback(ampd.stop)
            f.ampds.append(ampd)
            ampd.start()
        yield f
        found = em.violations()
        assert not found, "the AWS emulator answered unlike AWS's model:\n" + "\n".join(found)


def _host_env(em: AwsEmulator, imds: ImdsByAddress) -> dict[str, str]:
    env = {
        "AMPD_STATE": SOURCE,
        "AWS_ENDPOINT_URL": em.endpoint,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint + "/",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env[var] = ""  # unset: credentials come from each host's instance role
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        env[var] = ""  # the region comes from instance metadata, as on EC2
    return env


def scrape_values(receiver: Prometheus, instance_id: str) -> list[tuple[float, int]]:
    """(timestamp, value) of the host's app counter, as the receiver holds them."""
    data = receiver.api(
        "query", {"query": f'{METRIC}{{job="app",instance_id="{instance_id}"}}[900s]'}
    )
    out = [(float(t), int(float(v))) for s in data["result"] for t, v in s["values"]]
    return sorted(out)


def value_at(values: list[tuple[float, int]], t: float) -> int:
    before = [v for ts, v in values if ts <= t]
    assert before, f"no sample before {t}"
    return before[-1]


def test_a_staged_deployment_an_alarm_rollback_and_an_invalid_version(fleet: Fleet) -> None:
    f = fleet
    wait_for(
        lambda: f.versions() == ["v1"] * HOSTS,
        300,
        what="every host on v1",
        detail=lambda: f.laggards("v1"),
    )
    wait_for(
        lambda: f.dashboard() == {"v1": HOSTS},
        120,
        what="the dashboard: 20 on v1",
        detail=lambda: str(f.dashboard()),
    )
    wait_for(
        lambda: all(len(scrape_values(f.receiver, i)) > 5 for i in f.instance_ids),
        120,
        what="every host's samples arriving",
    )
    t_before = time.time()

    # -- a linear 50 % deployment, held between steps ---------------------------------------
    v2 = f.publish(document(f.ws_id, f.data_plane, extra_job=True), "v2")
    f.em.appconfig.hold(True)
    number = f.deploy(v2, f.ids["linear"])
    step = f.em.appconfig.step(f.ids["app"], f.ids["env"], number)
    assert step["PercentageComplete"] == 50.0, step
    t_step = f.em.appconfig.now()
    wait_for(
        lambda: f.settled_since(t_step),
        120,
        what="every host polled after the step",
        detail=lambda: f.describe(t_step),
    )
    assert counts(f.versions()) == {"v1": HOSTS // 2, "v2": HOSTS // 2}
    wait_for(
        lambda: f.dashboard() == {"v1": HOSTS // 2, "v2": HOSTS // 2},
        120,
        what="the dashboard: half on v2",
        detail=lambda: str(f.dashboard()),
    )

    step = f.em.appconfig.step(f.ids["app"], f.ids["env"], number)
    assert step["PercentageComplete"] == 100.0 and step["State"] == "BAKING", step
    wait_for(
        lambda: f.versions() == ["v2"] * HOSTS,
        120,
        what="every host on v2",
        detail=lambda: str(counts(f.versions())),
    )
    wait_for(
        lambda: f.dashboard() == {"v2": HOSTS},
        120,
        what="the dashboard: all on v2",
        detail=lambda: str(f.dashboard()),
    )

    # -- the fleet's health alarm fires during the bake: AppConfig rolls back ----------------
    f.em.appconfig.set_alarm(ALARM, "ALARM")
    assert f.deployment(number)["State"] == "ROLLED_BACK"
    t_rollback = f.em.appconfig.now()

    # -- a version the validator refuses is not deployed at all -------------------------------
    bad = json.loads(document(f.ws_id, f.data_plane))
    bad["prometheus"]["scrape_interval"] = 15  # a number, not a duration
    v3 = f.publish(json.dumps(bad).encode(), "v3-bad")
    f.em.appconfig.set_alarm(ALARM, "OK")
    with pytest.raises(ClientError) as refused:
        f.deploy(v3, f.ids["at_once"])
    assert refused.value.response["Error"]["Code"] == "BadRequestException"

    wait_for(
        lambda: f.settled_since(t_rollback),
        120,
        what="every host polled after both",
        detail=lambda: f.describe(t_rollback),
    )
    assert f.versions() == ["v1"] * HOSTS
    wait_for(
        lambda: f.dashboard() == {"v1": HOSTS},
        120,
        what="the dashboard: all back on v1",
        detail=lambda: str(f.dashboard()),
    )
    t_after = time.time()

    # -- nothing lost on any host, from before the deployment to after the rollback ----------
    wait_for(
        lambda: all(scrape_values(f.receiver, i)[-1][0] > t_after + 5 for i in f.instance_ids),
        120,
        what="every host's samples past the rollback",
    )
    for instance_id in f.instance_ids:
        values = scrape_values(f.receiver, instance_id)
        phase = Phase(
            instance_id, value_at(values, t_before), value_at(values, t_after), t_after - t_before
        )
        missing = phase.missing(v for _, v in values)
        # a scrape that timed out on a loaded machine was counted by the app but gave
        # Prometheus no sample (up == 0, which does arrive): not a sample lost on the way
        failed = failed_scrapes(
            f.receiver, f'job="app",instance_id="{instance_id}"', t_before, t_after
        )
        assert phase.expected > 30 and len(missing) == failed, (
            f"{instance_id}: lost {runs(missing)} of {phase.expected} ({failed} failed scrapes)"
        )

    # the dashboard's history: hosts on v2 went to half, then all, then none
    history = f.receiver.api(
        "query_range",
        {"query": rollout_query(), "start": str(t_before), "end": str(time.time()), "step": "1"},
    )
    on_v2 = {
        int(float(v))
        for series in history["result"]
        if series["metric"].get("version") == "v2"
        for _, v in series["values"]
    }
    assert {HOSTS // 2, HOSTS} <= on_v2, on_v2
    deployed = f.appconfig.list_deployments(ApplicationId=f.ids["app"], EnvironmentId=f.ids["env"])
    assert v3 not in [d["ConfigurationVersion"] for d in deployed["Items"]]
    # and no host ever asked AppConfig sooner than it was told it may
    assert f.em.appconfig.early_polls() == []
