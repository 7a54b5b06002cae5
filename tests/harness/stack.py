"""The whole embedded default, on loopback: AWS emulator, IMDS stand-in, a SigV4-verifying
AMP data plane backed by a real Prometheus receiver, and a sample app. Used by the demo
(``scripts/demo``) and by the end-to-end tests."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.imds import ImdsServer
from tests.harness.prom import Prometheus
from tests.harness.sample_app import SampleApp

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.imds = ImdsServer(region=REGION, role="ampd-writer")
        self.receiver = Prometheus(mode="server", remote_write_receiver=True)
        self.aws = AwsEmulator()
        self.dataplane: DataPlane | None = None
        self.static_keys: dict[str, str] = {}  # more keys the data plane accepts
        self.app = SampleApp()
        self.ampd = AmpdProcess(workdir)
        self._stack = contextlib.ExitStack()

    def start(self) -> Self:
        s = self._stack
        s.enter_context(self.imds)
        s.enter_context(self.receiver)
        s.enter_context(self.aws)
        self.aws.reset()  # moto keeps its state per Python process: start from an empty account
        self.dataplane = DataPlane(
            lambda akid: self.static_keys.get(akid) or self.imds.secret_for(akid),
            lambda ws: ws in self.aws.workspace_ids(REGION),
            self.receiver.url,
            region=REGION,
        )
        s.enter_context(self.dataplane)
        s.enter_context(self.app)
        # ampd sees only the emulators: no static keys, credentials come from the IMDS role.
        self.ampd.extra_env.update(
            {
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint + "/",
                "AWS_ENDPOINT_URL": self.aws.endpoint,
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            }
        )
        for var in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
        ):
            self.ampd.extra_env[var] = ""  # unset
        s.callback(self.ampd.stop)
        return self

    def state(self, *, signing: str = "proxy", **overrides: Any) -> dict[str, Any]:
        """config/state.example.yml, pointed at the stand-ins and at free ports.

        ``signing`` is ``proxy`` unless a caller asks for another: what the tests of the
        signed path exercise is ampd's proxy, on either release (with ``auto``, Debian 13's
        Prometheus 2.53 would sign natively and no proxy would run). The demo and the
        tests of ``auto`` itself pass ``signing="auto"``, the example file's own value."""
        assert self.dataplane is not None
        data: dict[str, Any] = yaml.safe_load((REPO / "config" / "state.example.yml").read_text())
        data["stack"] = "demo"
        data["aws"]["data_plane_url"] = self.dataplane.url
        data["aws"]["resync"] = "30s"
        ws = data["workspace"]
        ws["alias"] = "demo-metrics"
        ws["rule_groups"] = [{"name": "node", "file": str(REPO / "config" / "rules" / "node.yml")}]
        ws["alertmanager"] = {"file": str(REPO / "config" / "alertmanager.yml")}
        prom = data["prometheus"]
        prom["listen"] = f"127.0.0.1:{free_port()}"
        prom["scrape_interval"] = "1s"
        prom["external_labels"] = {"cluster": "demo"}
        prom["scrape_configs"] = [{"job": "app", "targets": [self.app.target], "interval": "1s"}]
        prom["remote_write"]["queue"] = {"capacity": 10000, "max_samples_per_send": 500}
        prom["remote_write"]["signing"] = signing
        data["proxy"]["listen"] = f"127.0.0.1:{free_port()}"
        data["grafana"]["enabled"] = False  # Grafana is not packaged by Debian
        data["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
        data["runtime"] = "supervisor"
        for key, value in overrides.items():
            data[key] = value
        return data

    def stop(self, *, check: bool = True) -> None:
        """Stops everything; then, with ``check``, fails when the AWS emulator answered
        unlike botocore's model of an operation (end-to-end tests hold it to AWS too)."""
        found = self.aws.violations() if self.aws._server is not None else []
        self._stack.close()
        if found and check:
            raise AssertionError(
                "the AWS emulator answered unlike AWS's model:\n  " + "\n  ".join(found[:20])
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(check=e is None)  # a failing test's own error is the one to see
