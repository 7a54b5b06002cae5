"""The fleet examples under config/ are accepted by the real tools: Debian's cloud-init
(``cloud-init schema --config-file``), Debian's packer (``packer validate -syntax-only``)
and ampd itself; the managing examples grant the writer exactly the fleet's parameter, or
the fleet's AppConfig profile and the profiles beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ampd.aws.plan.desired import desired_iam, state_read_statement, writer_policy
from ampd.source.specfile import load_and_check

REPO = Path(__file__).resolve().parents[2]
USER_DATA = REPO / "config/cloud-init/user-data.yml"
USER_DATA_APPCONFIG = REPO / "config/cloud-init/user-data-appconfig.yml"
PACKER = REPO / "config/packer/ampd-fleet.pkr.hcl"
PACKER_APPCONFIG = REPO / "config/packer/appconfig.pkrvars.hcl"
APPCONFIG_STATE = "appconfig:fleet/prod/ampd"
APPCONFIG_READ = ["appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"]
WS_ARN = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"


def tool(name: str) -> str:
    """The tool on PATH, or unpacked into the test cache by scripts/test (Debian 13 has no
    packer package: there it is Debian 12's binary, fetched by scripts/fetch-debs)."""
    cache = Path(os.environ.get("AMPD_TEST_CACHE") or "/var/cache/ampd-test")
    found = shutil.which(name) or next(
        (str(p) for p in sorted(cache.glob(f"*/root/usr/bin/{name}")) if os.access(p, os.X_OK)),
        None,
    )
    assert found, f"{name} is not installed: scripts/test installs it before the tests start"
    return found


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


@pytest.mark.parametrize("user_data", [USER_DATA, USER_DATA_APPCONFIG], ids=lambda p: p.name)
def test_cloud_init_accepts_the_user_data(user_data: Path) -> None:
    r = run([tool("cloud-init"), "schema", "--config-file", str(user_data)])
    assert r.returncode == 0, r.stdout + r.stderr
    # Debian 12's cloud-init says "Valid cloud-config: FILE", Debian 13's "Valid schema FILE"
    assert "Valid cloud-config" in r.stdout or "Valid schema" in r.stdout, r.stdout


def test_cloud_init_really_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        USER_DATA.read_text().replace("write_files:\n  - path:", "write_files:\n  - pth:")
    )
    r = run([tool("cloud-init"), "schema", "--config-file", str(bad)])
    assert r.returncode == 1
    assert "'path' is a required property" in r.stdout + r.stderr


def test_user_data_sets_the_state_source_and_enables_the_unit() -> None:
    text = USER_DATA.read_text()
    assert "path: /etc/default/ampd" in text
    assert "AMPD_STATE=ssm:/fleet/prod/ampd" in text
    assert "[systemctl, enable, --now, ampd.service]" in text


def test_appconfig_user_data_reads_appconfig() -> None:
    """The same user data but for the state's source (and the comments saying so)."""
    text = USER_DATA_APPCONFIG.read_text()
    assert f"      AMPD_STATE={APPCONFIG_STATE}" in text.splitlines()
    assert "ssm:" not in text
    assert "[systemctl, enable, --now, ampd.service]" in text
    code = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    ssm_code = [ln for ln in USER_DATA.read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert [ln.replace(APPCONFIG_STATE, "ssm:/fleet/prod/ampd") for ln in code] == ssm_code


def test_packer_accepts_the_template(tmp_path: Path) -> None:
    r = run([tool("packer"), "validate", "-syntax-only", PACKER.name], cwd=PACKER.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Syntax-only check passed" in r.stdout
    broken = tmp_path / "broken.pkr.hcl"
    broken.write_text(PACKER.read_text().replace("region        = var.region", "region ="))
    r = run([tool("packer"), "validate", "-syntax-only", broken.name], cwd=tmp_path)
    assert r.returncode == 1


def test_packer_accepts_the_appconfig_variables(tmp_path: Path) -> None:
    """The AppConfig build is the same template with a variable file; packer parses the
    file and knows every variable it sets (an unknown one only warns: look for it)."""
    argv = ["validate", "-syntax-only", f"-var-file={PACKER_APPCONFIG.name}", PACKER.name]
    r = run([tool("packer"), *argv], cwd=PACKER.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Syntax-only check passed" in r.stdout
    assert "Undefined variable" not in r.stdout + r.stderr
    shutil.copyfile(PACKER, tmp_path / PACKER.name)
    broken = tmp_path / PACKER_APPCONFIG.name
    broken.write_text(PACKER_APPCONFIG.read_text().replace(f'"{APPCONFIG_STATE}"', APPCONFIG_STATE))
    r = run([tool("packer"), *argv], cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    unknown = tmp_path / "unknown.pkrvars.hcl"
    unknown.write_text(f'stat = "{APPCONFIG_STATE}"\n')
    r = run(
        [tool("packer"), "validate", "-syntax-only", f"-var-file={unknown.name}", PACKER.name],
        cwd=tmp_path,
    )
    assert "Undefined variable" in r.stdout + r.stderr  # what the first check looks for


def test_appconfig_variables_set_the_state() -> None:
    lines = [ln for ln in PACKER_APPCONFIG.read_text().splitlines() if not ln.startswith("#")]
    assert lines == [f'state = "{APPCONFIG_STATE}"']
    assert 'variable "state"' in PACKER.read_text()


def test_packer_template_bakes_after_stopping_ampd() -> None:
    text = PACKER.read_text()
    assert text.index("sudo systemctl stop ampd.service") < text.rindex("ampd bake")
    assert "AMPD_STATE=$AMPD_STATE" in text


@pytest.mark.parametrize("name", ["observe.yml", "manage.yml", "manage-appconfig.yml"])
def test_fleet_states_are_valid(name: str) -> None:
    load_and_check(REPO / "config/fleet" / name)


def test_fleet_hosts_observe_and_the_manager_manages() -> None:
    observe = load_and_check(REPO / "config/fleet/observe.yml").spec
    manage = load_and_check(REPO / "config/fleet/manage.yml").spec
    assert observe.aws_or_default.mode == "observe"
    assert observe.iam is None
    assert manage.aws_or_default.mode == "manage"
    assert observe.workspace is not None and manage.workspace is not None
    assert observe.workspace.alias == manage.workspace.alias
    assert observe.stack == manage.stack


def test_appconfig_examples_name_one_profile() -> None:
    """The /etc/default/ampd, the user data and the packer variables of the AppConfig
    examples name the same profile; the manager is manage.yml with the location by ids."""
    text = (REPO / "config/fleet/default-ampd-appconfig").read_text()
    assert f"AMPD_STATE={APPCONFIG_STATE}" in text.splitlines()
    assert f"      AMPD_STATE={APPCONFIG_STATE}" in USER_DATA_APPCONFIG.read_text().splitlines()
    manage = load_and_check(REPO / "config/fleet/manage.yml").spec
    appconfig = load_and_check(REPO / "config/fleet/manage-appconfig.yml").spec
    assert appconfig.state_source.location == "appconfig:abc1234/def5678/ghi9012"
    assert appconfig.model_copy(update={"state_source": manage.state_source}) == manage


def test_default_file_names_the_same_parameter() -> None:
    text = (REPO / "config/fleet/default-ampd").read_text()
    assert "AMPD_STATE=ssm:/fleet/prod/ampd" in text.splitlines()
    unit = (REPO / "units/ampd.service").read_text()
    assert "EnvironmentFile=-/etc/default/ampd" in unit.splitlines()


@pytest.mark.parametrize(
    ("location", "actions", "resource"),
    [
        (
            "ssm:/fleet/prod/ampd",
            ["ssm:GetParameter", "ssm:GetParameters"],
            "arn:aws:ssm:eu-west-1:123456789012:parameter/fleet/prod/ampd",
        ),
        (
            "ssm:ampd-prod",
            ["ssm:GetParameter", "ssm:GetParameters"],
            "arn:aws:ssm:eu-west-1:123456789012:parameter/ampd-prod",
        ),
        (
            "s3://fleet-config/prod/ampd.yml",
            ["s3:GetObject"],
            "arn:aws:s3:::fleet-config/prod/ampd.yml",
        ),
        (
            "appconfig:abc1234/def5678/ghi9012",
            APPCONFIG_READ,
            "arn:aws:appconfig:eu-west-1:123456789012:application/abc1234"
            "/environment/def5678/configuration/ghi9012",
        ),
    ],
)
def test_writer_reads_exactly_the_state(location: str, actions: list[str], resource: str) -> None:
    st = state_read_statement(location, WS_ARN)
    assert st["Action"] == actions
    assert st["Resource"] == resource
    assert writer_policy(WS_ARN)["Statement"][0]["Action"] == ["aps:RemoteWrite"]
    assert len(writer_policy(WS_ARN)["Statement"]) == 1  # no location: nothing more


def test_managed_writer_policy_carries_the_state_location() -> None:
    spec = load_and_check(REPO / "config/fleet/manage.yml").spec
    desired = desired_iam(spec, account="123456789012", ws_arn=WS_ARN)
    docs = [
        d.fields["document"]
        for d in desired.resources
        if d.key.name == "ampd-fleet-writer/ampd-remote-write"
    ]
    assert len(docs) == 1
    resources = [s["Resource"] for s in docs[0]["Statement"]]
    assert resources == [
        WS_ARN,
        "arn:aws:ssm:eu-west-1:123456789012:parameter/fleet/prod/ampd",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/fleet/prod/*",  # the files beside it
    ]


def test_managed_writer_policy_carries_the_appconfig_location() -> None:
    spec = load_and_check(REPO / "config/fleet/manage-appconfig.yml").spec
    desired = desired_iam(spec, account="123456789012", ws_arn=WS_ARN)
    docs = [
        d.fields["document"]
        for d in desired.resources
        if d.key.name == "ampd-fleet-writer/ampd-remote-write"
    ]
    assert len(docs) == 1
    env = "arn:aws:appconfig:eu-west-1:123456789012:application/abc1234/environment/def5678"
    assert [(s["Action"], s["Resource"]) for s in docs[0]["Statement"]] == [
        (["aps:RemoteWrite"], WS_ARN),
        (APPCONFIG_READ, f"{env}/configuration/ghi9012"),
        (APPCONFIG_READ, f"{env}/configuration/*"),  # the profiles beside it: its files
    ]
