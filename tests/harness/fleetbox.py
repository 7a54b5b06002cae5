"""Several boxes on one link to the test: the fleet boot test's network and image.

The boxes of ``tests/harness/sysbox.py`` have a network namespace of their own with only
loopback. A fleet test needs them to reach one AWS emulator and each its own IMDS, as EC2
instances reach the regional endpoints and their own 169.254.169.254:

- ``VethLink`` is a veth pair per box. The test's end stays in the test's namespace with
  the address ``HUB`` (/32, the same on every pair) and a /32 route to the box; the box's
  end is moved into the box's namespace as ``eth0`` with its own address and a /32 route
  back to ``HUB``. Nothing else is routed: a box reaches ``HUB`` and nothing beyond it.
  The pair is deleted on close (and vanishes with the box's namespace anyway).
- ``ImdsByAddress`` serves IMDSv2 on ``HUB`` and answers each box from its own
  :class:`~tests.harness.imds.ImdsServer` (its own instance id), chosen by the address
  the request comes from: every box uses the same endpoint, as every instance uses
  169.254.169.254, and gets its own identity.
- ``NetBox`` is a :class:`SysBox` whose link is attached as soon as its PID 1 exists, and
  the image has ``fleet-test-network.service`` (``WAIT_UNIT``), which holds
  ``network-online.target`` (and so ``ampd.service``) until the route to ``HUB`` is
  there: ampd starts with its network, as on an instance.
- ``layered(top, base)``: an image as a small top layer (what the platform team adds,
  then what baking left) over the installed tree, which is never copied or changed.
- ``ensure_installed_root()`` is this machine's release's tree with the .deb installed (apt-get, as
  tests/package/test_deb.py does it), cached under ``/var/cache/ampd-test/fleet-installed-<hash>``
  where the hash covers every file that goes into the package.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.harness.aptrepo import AptRepo
from tests.harness.debroot import build_debs, ensure_base_rootfs, installed_root
from tests.harness.imds import ImdsServer, _Handler
from tests.harness.releases import host_release
from tests.harness.sysbox import CACHE_DIR, REPO, SysBox

HUB = "10.231.0.1"
# 10.231.0.1 as /proc/net/route writes a destination (little-endian hex)
HUB_ROUTE_HEX = "0100E70A"
PACKAGED = ("ampd", "units", "debian", "config", "scripts/build-deb", "pyproject.toml")

# at most 120 s, then the unit fails (and ampd starts anyway, without its network);
# systemd expands $NAME in ExecStart=, so the unit has every $ doubled
WAIT_LOOP = (
    f"i=0; while [ $i -lt 1200 ]; do grep -q {HUB_ROUTE_HEX} /proc/net/route && exit 0; "
    "i=$((i+1)); sleep 0.1; done; exit 1"
)
WAIT_UNIT = f"""\
[Unit]
Description=Wait for the test's link to the emulator (EC2 instances boot with a network)
Before=network-online.target
Wants=network.target
After=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c "{WAIT_LOOP.replace("$", "$$")}"

[Install]
WantedBy=network-online.target
"""


def _ip(*args: str, netns_pid: int | None = None) -> None:
    prefix = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--"] if netns_pid else []
    done = subprocess.run(
        [*prefix, "ip", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class VethLink:
    tag: str  # short and unique to this run: interface names are at most 15 characters
    index: int
    subnet: str = "10.231.0"  # the hub is .1, box i is .(10 + i); another test, another subnet
    prefix: str = "f"  # in the interface names, per kind of test

    @property
    def hub(self) -> str:
        return f"{self.subnet}.1"

    @property
    def host_name(self) -> str:
        return f"vh{self.prefix}{self.tag}{self.index}"

    @property
    def box_name(self) -> str:
        return f"vb{self.prefix}{self.tag}{self.index}"

    @property
    def address(self) -> str:
        return f"{self.subnet}.{10 + self.index}"

    def create(self) -> VethLink:
        _ip("link", "add", self.host_name, "type", "veth", "peer", "name", self.box_name)
        try:
            _ip("addr", "add", f"{self.hub}/32", "dev", self.host_name)
            _ip("link", "set", self.host_name, "up")
            _ip("route", "add", f"{self.address}/32", "dev", self.host_name, "src", self.hub)
        except BaseException:
            self.close()
            raise
        return self

    def attach(self, pid: int) -> None:
        """Move the box's end into the namespace of ``pid`` and configure it there."""
        _ip("link", "set", self.box_name, "netns", str(pid))
        _ip("link", "set", self.box_name, "name", "eth0", netns_pid=pid)
        _ip("addr", "add", f"{self.address}/32", "dev", "eth0", netns_pid=pid)
        _ip("link", "set", "eth0", "up", netns_pid=pid)
        _ip("link", "set", "lo", "up", netns_pid=pid)
        _ip("route", "add", f"{self.hub}/32", "dev", "eth0", "src", self.address, netns_pid=pid)

    def close(self) -> None:
        subprocess.run(
            ["ip", "link", "del", self.host_name], capture_output=True, timeout=30, check=False
        )


@dataclass
class NetBox(SysBox):
    link: VethLink | None = None

    def _wait_for_init(self) -> int:
        pid = super()._wait_for_init()
        if self.link is not None:
            self.link.attach(pid)
        return pid


class _ByAddress(_Handler):
    def _pick(self) -> bool:
        found = getattr(self.server, "by_address", {}).get(self.client_address[0])
        if found is None:
            self.send_error(404)
            return False
        self.imds = found
        return True

    def do_PUT(self) -> None:
        if self._pick():
            super().do_PUT()

    def do_GET(self) -> None:
        if self._pick():
            super().do_GET()


@dataclass
class ImdsByAddress:
    """One IMDSv2 endpoint on ``hub``; each box's requests answered by its own server."""

    by_address: dict[str, ImdsServer] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    hub: str = HUB

    def start(self) -> ImdsByAddress:
        server = ThreadingHTTPServer((self.hub, 0), _ByAddress)
        server.daemon_threads = True
        server.by_address = self.by_address  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, name="imds-hub", daemon=True).start()
        return self

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://{self.hub}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def layered(top: Path, base: Path) -> Path:
    """A rootfs for :class:`SysBox` made of ``top`` over ``base`` without copying ``base``:
    SysBox mounts its rootfs as the overlay's ``lowerdir``, and overlayfs stacks lower
    directories given as ``top:base`` (the image's own files above the installed system)."""
    return Path(f"{top}:{base}")


def package_hash() -> str:
    """Every file that goes into the .deb, as it is in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *PACKAGED],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    h = hashlib.sha256()
    for name in sorted(n for n in listed if n):
        path = REPO / name.decode()
        if path.is_file():
            h.update(name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def ensure_installed_root() -> Path:
    """This machine's release with the package built from this tree installed; cached by
    its hash."""
    dest = CACHE_DIR / f"fleet-installed-{package_hash()}"
    if (dest / "var/lib/dpkg/info/ampd.list").exists():  # installed (usr/bin/ampd: a link)
        return dest
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    base = ensure_base_rootfs()
    work = Path(tempfile.mkdtemp(prefix=".fleet-", dir=CACHE_DIR))
    try:
        (work / "dist").mkdir()
        release = host_release()
        [build] = build_debs([(release, None)], work / "dist")
        repo = AptRepo(work / "repo")
        try:
            repo.publish({release.codename: [build.deb]})
            installed_root(base, repo, work / "root")
        finally:
            repo.close()
        for old in CACHE_DIR.glob("fleet-installed-*"):  # one cached tree is enough
            shutil.rmtree(old, ignore_errors=True)
        (work / "root").rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest
