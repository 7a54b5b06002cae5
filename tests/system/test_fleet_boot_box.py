"""A fleet image under a real systemd: bake once, boot three instances at once.

The package built from this tree is installed into a bookworm tree (cached,
tests/harness/fleetbox.py). A baking host boots it with ``AMPD_STATE=ssm:/fleet/prod/ampd``
in ``/etc/default/ampd``, runs its first pass with its own IMDS identity, is stopped and
``ampd bake``d; what it leaves in ``/var/lib/ampd`` goes into the image. Three instances
then boot from that image at once (three systemd boxes, each with its own overlay: the
image is a small top layer -- /etc/default/ampd, the network wait, the baked
/var/lib/ampd -- over the installed tree), each answered by its own IMDSv2 identity, all
reading the same SSM state from one AWS emulator.

How the boxes reach the emulator: each box has its own network namespace; the test links
it to its own namespace with a veth pair (``HUB`` = 10.231.0.1 on the test's side, a /32
per box on the other, nothing else routed). The emulator and the IMDS endpoint listen on
``HUB`` only; the IMDS endpoint answers each box from its own stand-in, chosen by the
box's address (every instance uses the same IMDS address, as on EC2). The image's
``/etc/default/ampd`` names both endpoints (``AWS_ENDPOINT_URL``,
``AWS_EC2_METADATA_SERVICE_ENDPOINT``); credentials come from the stand-in's instance role.

The fleet's state is ``aws.mode: observe`` and the workspace exists before the fleet boots
(made by "the manager", here the test): exactly one workspace, whatever the hosts do.

About 15 s, plus about 90 s to build and install the package when a packaged file
changed; skips with the reason when this machine cannot build the package or boot a box.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.debroot import copy_tree, debroot_unavailable_reason
from tests.harness.fleetbox import (
    HUB,
    WAIT_UNIT,
    ImdsByAddress,
    NetBox,
    VethLink,
    ensure_installed_root,
    layered,
)
from tests.harness.imds import ImdsServer
from tests.harness.sysbox import CACHE_DIR, SysBox, unavailable_reason
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.deb, pytest.mark.slow]

PARAMETER = "/fleet/prod/ampd"
ALIAS = "fleet-metrics"
BAKER = "i-0bake0000000000a1"
FLEET = ("i-0f1ee70000000000b1", "i-0f1ee70000000000b2", "i-0f1ee70000000000b3")
STATE = f"""\
version: 1
stack: fleet
aws: {{region: auto, mode: observe}}
workspace: {{alias: {ALIAS}, tags: {{team: platform}}}}
prometheus:
  mode: agent
  listen: 127.0.0.1:9095
  instance_labels: [instance_id]
state_source: {{poll_interval: 60s}}
"""
GENERATED = "/var/lib/ampd/generated/prometheus.yml"
MARKER = "/var/lib/ampd/data/prometheus/baking-host-wal-marker"


@pytest.fixture(scope="module")
def installed() -> Path:
    reason = debroot_unavailable_reason() or unavailable_reason()
    if reason is not None:
        pytest.skip(f"cannot build the package or boot a systemd box here: {reason}")
    return ensure_installed_root()


def wait_until(what: str, check: Callable[[], bool], timeout: float, box: SysBox) -> None:
    wait_for(check, timeout, 0.2, what, retry_on=(), detail=lambda: diagnosis(box))


def diagnosis(box: SysBox) -> str:
    status = box.run(
        "systemctl",
        "status",
        "--no-pager",
        "-n",
        "0",
        "ampd.service",
        "fleet-test-network.service",
        "network-online.target",
    ).stdout
    jobs = box.run("systemctl", "list-jobs", "--no-pager").stdout
    route = box.run("cat", "/proc/net/route").stdout
    return f"{status}\n{jobs}\n{route}\n{box.journal('ampd.service', lines=60)}"


def generated_has(box: SysBox, text: str) -> bool:
    path = box.path(GENERATED)
    try:
        return text in path.read_text()
    except OSError:
        return False


def is_active(box: SysBox) -> bool:
    return box.run("systemctl", "is-active", "ampd.service").stdout.strip() == "active"


def wait_for_host(box: SysBox, instance_id: str) -> None:
    wait_until(
        f"{instance_id}: prometheus.yml with its own instance id",
        lambda: generated_has(box, instance_id),
        120,
        box,
    )
    wait_until(f"{instance_id}: ampd active", lambda: is_active(box), 60, box)


@pytest.fixture
def links() -> Iterator[list[VethLink]]:
    tag = f"{int(time.time() * 1000) % 0xFFFF:04x}"
    made: list[VethLink] = []
    try:
        for i in range(1 + len(FLEET)):
            made.append(VethLink(tag, i).create())
        yield made
    finally:
        for link in made:
            link.close()


def test_three_instances_boot_from_one_baked_image(installed: Path, links: list[VethLink]) -> None:
    hub = ImdsByAddress()
    for link, instance_id in zip(links, (BAKER, *FLEET), strict=True):
        hub.by_address[link.address] = ImdsServer(instance_id=instance_id, region="eu-west-1")
    image = Path(tempfile.mkdtemp(prefix=".fleet-image-", dir=CACHE_DIR))
    boxes: list[SysBox] = []
    pool = ThreadPoolExecutor(len(FLEET))
    with AwsEmulator(host=HUB) as em:
        # moto keeps its resources per process: what an earlier test of this process left
        # (its emulator is reset only when a test uses it) would be counted here too
        em.reset()
        hub.start()
        try:
            em.client("ssm").put_parameter(
                Name=PARAMETER, Value=STATE, Type="SecureString", Overwrite=True
            )
            ws = em.client("amp").create_workspace(
                alias=ALIAS,
                tags={"team": "platform", "ampd:managed": "true", "ampd:stack": "fleet"},
            )
            make_image(image, em.endpoint, hub.endpoint)
            rootfs = layered(image, installed)
            bake_into(rootfs, image, links[0])

            em.reset_requests()
            # Booted at once, from the pool's threads; the pool is shut down only after the
            # boxes are closed: a box's launcher dies with the thread that started it
            # (PR_SET_PDEATHSIG), and a finished pool's threads exit.
            started = [
                pool.submit(NetBox(rootfs, link=link, boot_timeout=150).boot) for link in links[1:]
            ]
            for f in started:
                boxes.append(f.result())
            for box, instance_id in zip(boxes, FLEET, strict=True):
                wait_for_host(box, instance_id)

            assert em.workspace_ids() == [ws["workspaceId"]]  # one workspace, the manager's
            for box, instance_id in zip(boxes, FLEET, strict=True):
                config = box.read_file(GENERATED)
                assert f'instance_id: "{instance_id}"' in config
                others = [i for i in (BAKER, *FLEET) if i != instance_id]
                assert not any(i in config for i in others), config
                assert instance_id in box.read_file("/var/lib/ampd/ampd.json")
                # the baking host's WAL did not come with the image
                assert not box.path(MARKER).exists()
                assert box.run("systemctl", "is-active", "ampd.service").stdout.strip() == (
                    "active"
                )
            ops = [f"{r.service}:{r.operation}" for r in em.requests]
            assert "sts:GetCallerIdentity" not in ops  # the account came from IMDS
            # the workspace record the image kept: one DescribeWorkspace per host
            assert ops.count("aps:DescribeWorkspace") == len(FLEET), ops
            assert ops.count("aps:ListWorkspaces") == 0, ops
            assert ops.count("ssm:GetParameters") >= len(FLEET), ops
        finally:
            for box in boxes:
                box.close()
            pool.shutdown()
            hub.stop()
            shutil.rmtree(image, ignore_errors=True)


def make_image(image: Path, aws_endpoint: str, imds_endpoint: str) -> None:
    """What the platform team adds to the installed system before baking: the fleet's
    source in /etc/default/ampd (and the test's network wait, see the module docstring)."""
    image.chmod(0o755)
    (image / "etc/default").mkdir(parents=True)
    (image / "etc/default/ampd").write_text(
        f"AMPD_STATE=ssm:{PARAMETER}\n"
        f"AWS_ENDPOINT_URL={aws_endpoint}\n"
        f"AWS_EC2_METADATA_SERVICE_ENDPOINT={imds_endpoint}\n"
    )
    unit = image / "etc/systemd/system/fleet-test-network.service"
    wants = image / "etc/systemd/system/network-online.target.wants"
    wants.mkdir(parents=True)
    unit.write_text(WAIT_UNIT)
    (wants / unit.name).symlink_to("/etc/systemd/system/fleet-test-network.service")


def bake_into(rootfs: Path, image: Path, link: VethLink) -> None:
    """Boot the image as the baking host, let ampd run its first pass, stop it, ``ampd
    bake``, and keep its /var/lib/ampd in the image (its top layer)."""
    staging = Path(tempfile.mkdtemp(prefix=".fleet-baked-", dir=CACHE_DIR))
    try:
        with NetBox(rootfs, link=link, boot_timeout=150) as box:
            wait_until("baking host: first pass", lambda: generated_has(box, BAKER), 120, box)
            box.run("systemctl", "stop", "ampd.service", timeout=90).check()
            box.run("install", "-d", "-o", "ampd", "-g", "ampd", str(Path(MARKER).parent)).check()
            box.write_file(MARKER, "samples labelled with the baking host's instance id")
            baked = box.run("ampd", "bake", timeout=60).check()
            assert "data" in baked.stdout, baked.stdout
            assert not box.path("/var/lib/ampd/data").exists()
            assert BAKER not in box.read_file("/var/lib/ampd/ampd.json")
            copy_tree(box.path("/var/lib/ampd"), staging)
        target = image / "var/lib/ampd"
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
