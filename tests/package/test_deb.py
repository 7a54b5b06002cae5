"""The Debian package, end to end, for each supported release (Debian 12 and 13): build
with that release's python3, lintian, one signed apt repository with a suite per release,
install into a fresh tree of that release, boot it under that release's systemd (252, 257),
upgrade, purge (docs/packaging.md).

Slow (a few minutes with warm caches; the first run also debootstraps a tree and a build
tree per release); marked ``deb``. Skips with the reason when this machine cannot build or
boot (not root, no debootstrap, no cgroup2).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.aptrepo import APT_UPDATE_TEST_REPO, REPO_IN_ROOT, AptRepo
from tests.harness.debroot import (
    APT_ENV,
    Build,
    build_debs,
    changelog_version,
    chroot_sh,
    debroot_unavailable_reason,
    ensure_base_rootfs,
    export_revision,
    installed_root,
    lintian,
    stat_of,
)
from tests.harness.releases import RELEASES, Release
from tests.harness.sysbox import CACHE_DIR, SysBox, unavailable_reason
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.deb, pytest.mark.slow]

CHILDREN = ("ampd-prometheus.service", "ampd-sigv4-proxy.service", "ampd-grafana.service")
CHILD_USERS = ("ampd-prometheus", "ampd-grafana", "ampd-proxy")
Builds = dict[str, tuple[Build, Build]]  # release codename -> (first, upgrade)
# The last revision whose package ran every child as the ampd user (before one uid per
# process): the test upgrades a host from its package to this tree's.
EARLIER = "3dbe72a50c7cadce8ce1784aeae80a5b17d3261f"


@dataclass(frozen=True)
class Installed:
    release: Release
    root: Path
    apt_output: str


@pytest.fixture(scope="module")
def all_builds() -> Iterator[tuple[Builds, dict[str, Build]]]:
    """Two versions (the second for the upgrade) for every release, and the package of
    the EARLIER revision (a lower version) for every release, all built in parallel."""
    reason = debroot_unavailable_reason()
    if reason is not None:
        pytest.skip(f"cannot build the package here: {reason}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    dist = Path(tempfile.mkdtemp(prefix=".dist-", dir=CACHE_DIR))
    try:
        earlier_src = export_revision(EARLIER, dist / "earlier-src")
        version = changelog_version()
        earlier_version = f"{version.rsplit('-', 1)[0]}-0"
        jobs: list[tuple[Release, str | None]] = []
        sources: list[Path | None] = []
        for r in RELEASES:
            jobs += [(r, None), (r, f"{version}+2"), (r, earlier_version)]
            sources += [None, None, earlier_src]
        done = build_debs(jobs, dist, sources)
        yield (
            {r.codename: (done[3 * i], done[3 * i + 1]) for i, r in enumerate(RELEASES)},
            {r.codename: done[3 * i + 2] for i, r in enumerate(RELEASES)},
        )
    finally:
        shutil.rmtree(dist, ignore_errors=True)


@pytest.fixture(scope="module")
def builds(all_builds: tuple[Builds, dict[str, Build]]) -> Builds:
    return all_builds[0]


@pytest.fixture(scope="module")
def earlier(all_builds: tuple[Builds, dict[str, Build]]) -> dict[str, Build]:
    return all_builds[1]


@pytest.fixture(scope="module")
def repo(builds: Builds) -> Iterator[AptRepo]:
    """One signed repository, a suite per release, each with its release's first build."""
    root = Path(tempfile.mkdtemp(prefix=".repo-", dir=CACHE_DIR))
    apt_repo = AptRepo(root / "repo")
    try:
        apt_repo.publish({name: [first.deb] for name, (first, _) in builds.items()})
        yield apt_repo
    finally:
        apt_repo.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", params=RELEASES, ids=lambda r: r.codename)
def release(request: pytest.FixtureRequest) -> Release:
    chosen: Release = request.param
    return chosen


@pytest.fixture(scope="module")
def installed(repo: AptRepo, release: Release) -> Iterator[Installed]:
    base = ensure_base_rootfs(release)
    root = Path(tempfile.mkdtemp(prefix=f".installed-{release.codename}-", dir=CACHE_DIR))
    try:
        done = installed_root(base, repo, root, release)
        yield Installed(release, root, done.stdout)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def box(installed: Installed) -> Iterator[SysBox]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"cannot boot a systemd box here: {reason}")
    booted = SysBox(installed.root)
    booted.boot()
    try:
        version = booted.run("systemctl", "--version").check().stdout.split()[1]
        assert version == str(installed.release.systemd), version  # that release's systemd
        yield booted
    finally:
        booted.close()


def wait_for_status(box: SysBox, prefix: str, timeout: float = 30.0) -> dict[str, str]:
    """Poll ampd.service until it is active and its STATUS= line starts with ``prefix``."""

    def ready(props: dict[str, str] | None) -> bool:
        return (
            props is not None
            and props.get("ActiveState") == "active"
            and props.get("StatusText", "").startswith(prefix)
        )

    return wait_for(
        lambda: box.show("ampd.service", "ActiveState", "SubState", "StatusText", "InvocationID"),
        timeout,
        0.1,
        f"ampd.service active, its status starting {prefix!r}",
        until=ready,
        retry_on=(),
        detail=lambda: box.journal("ampd.service"),
    )


def upgrade(
    box: SysBox,
    builds: Builds,
    release: Release,
    repo: AptRepo,
    offered: tuple[Build, Build] | None = None,
) -> str:
    """Publish ``offered`` (default: the release's first and second builds) and
    ``apt-get install ampd``, which takes the later one; the repository (shared by the
    module's tests) then goes back to the first builds. apt's output."""
    first_builds = {name: [first.deb] for name, (first, _) in builds.items()}
    old, new = offered or builds[release.codename]
    try:
        repo.publish({**first_builds, release.codename: [old.deb, new.deb]})
        repo.install_into(box.path("/"), release.codename)
    finally:
        repo.publish(first_builds)
    box.run(*APT_UPDATE_TEST_REPO, env=APT_ENV, timeout=120).check()
    done = box.run("apt-get", "install", "-y", "ampd", env=APT_ENV, timeout=600).check()
    assert f"Setting up ampd ({new.version})" in done.stdout, done.stdout
    return done.stdout


def box_stat(box: SysBox, path: str) -> str:
    return box.run("stat", "-c", "%U %G %a", path).check().stdout.strip()


def process_user(box: SysBox, pid: str) -> str:
    return box.run("ps", "-o", "user=", "-p", pid).check().stdout.strip()


def wait_for_local_prometheus(box: SysBox, user: str, timeout: float = 60.0) -> dict[str, str]:
    """ampd-prometheus.service running as ``user`` and ampd Synced · Healthy."""
    child = "ampd-prometheus.service"

    def ready() -> dict[str, str] | None:
        # Prometheus' data lives under data/prometheus/, the unit's only writable directory
        assert "read-only file system" not in box.journal(child)
        status = box.show("ampd.service", "StatusText")["StatusText"]
        props = box.show(child, "SubState", "MainPID", "InvocationID")
        running = props["SubState"] == "running" and props["MainPID"] != "0"
        healthy = status.startswith("Synced · Healthy")
        if running and healthy and process_user(box, props["MainPID"]) == user:
            return props
        return None

    return wait_for(
        ready,
        timeout,
        0.1,
        f"{child} running as {user}, ampd Synced · Healthy",
        retry_on=(),
        detail=lambda: f"{box.show('ampd.service', 'StatusText')}\n{box.journal(child)}",
    )


# -- the package itself ---------------------------------------------------------------------


def test_package_metadata_and_contents(builds: Builds, release: Release, tmp_path: Path) -> None:
    first, second = builds[release.codename]
    deb = first.deb
    py = release.python  # built with that release's python3, found, not written down
    fields = {
        name: subprocess.run(
            ["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True
        ).stdout.strip()
        for name in ("Package", "Architecture", "Depends", "Recommends")
    }
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert fields["Package"] == "ampd"
    assert fields["Architecture"] == arch
    depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
    assert {py, "libc6"} <= set(depends)
    assert first.version.endswith(release.deb_suffix), first.version
    assert "systemd" in fields["Depends"]  # the sysusers snippet's alternative
    # without polkit every systemctl call of the unprivileged ampd is refused
    assert "polkitd" in depends
    assert "prometheus" in [r.strip() for r in fields["Recommends"].split(",")]

    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "--control", str(deb), str(control)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/ampd/state.yml"]

    tree = tmp_path / "tree"
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(tree)], check=True)
    venv = tree / "opt/venvs/ampd"
    assert (venv / "bin/ampd").read_text().splitlines()[0] == "#!/opt/venvs/ampd/bin/python3"
    assert sorted(p.name for p in (venv / "bin").iterdir()) == [
        "ampd",
        "python",
        "python3",
        py,
    ]
    assert (venv / f"bin/{py}").readlink() == Path(f"/usr/bin/{py}")
    assert (tree / "usr/bin/ampd").readlink() == Path("/opt/venvs/ampd/bin/ampd")
    assert "/opt/venvs/ampd" in (venv / "pyvenv.cfg").read_text()
    site = venv / f"lib/{py}/site-packages"
    assert (site / "ampd/cli.py").exists()
    tag = py.replace("python", "cpython-").replace(".", "")
    assert list(site.glob(f"ampd/__pycache__/cli.{tag}.pyc")), tag
    # Runtime dependencies only: none of the dev extras.
    dists = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"boto3", "pydantic", "aiohttp", "sdnotify"} <= dists
    assert not dists & {"pytest", "mypy", "moto", "ruff", "pip", "setuptools"}
    assert (tree / "usr/share/man/man8/ampd.8.gz").exists()
    assert (tree / "usr/share/man/man5/state.yml.5.gz").exists()
    # Debian 13's debhelper installs units under /usr/lib (merged /usr), 12's under /lib
    units = tree / ("usr/lib" if release.number >= 13 else "lib") / "systemd/system"
    for unit in ("ampd.service", *CHILDREN):
        assert (units / unit).exists(), units / unit
    assert (tree / "usr/lib/sysusers.d/ampd.conf").exists()
    assert (tree / "usr/lib/tmpfiles.d/ampd.conf").exists()
    assert (tree / "usr/share/polkit-1/rules.d/50-ampd.rules").exists()
    assert (tree / "usr/share/dbus-1/system.d/ampd.conf").exists()

    upgrade = subprocess.run(
        ["dpkg", "--compare-versions", second.version, "gt", first.version], check=False
    )
    assert upgrade.returncode == 0, (first.version, second.version)


def test_lintian_reports_no_errors_or_warnings(builds: Builds, release: Release) -> None:
    """That release's own lintian (in its build tree for the other release)."""
    if shutil.which("lintian") is None:
        pytest.fail("lintian is not installed (scripts/test installs it)")
    done = lintian(builds[release.codename][0])
    tags = [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert done.returncode == 0 and not tags, done.stdout + done.stderr


# -- installed from the signed repository into a fresh bookworm ---------------------------


def test_apt_get_install_resolves_from_the_signed_repository(
    installed: Installed, builds: Builds
) -> None:
    first = builds[installed.release.codename][0]
    py = installed.release.python
    assert f"Setting up ampd ({first.version})" in installed.apt_output
    status = chroot_sh(
        installed.root,
        f"dpkg-query -W -f '${{Package}} ${{Version}} ${{Status}}\\n' ampd {py} prometheus polkitd",
    ).stdout
    lines = dict(line.split(" ", 1) for line in status.splitlines())
    assert lines["ampd"] == f"{first.version} install ok installed"
    assert lines[py].endswith("install ok installed")  # resolved from the mirror
    assert lines["prometheus"].endswith("install ok installed")  # Recommends
    assert lines["polkitd"].endswith("install ok installed")  # Depends, from the mirror


def test_one_repository_carries_a_suite_per_release(repo: AptRepo, builds: Builds) -> None:
    """dists/bookworm and dists/trixie, each signed, each listing only its release's build."""
    assert set(repo.suites) == {r.codename for r in RELEASES}
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for r in RELEASES:
        dist = repo.root / "dists" / r.codename
        verified = subprocess.run(
            ["gpgv", "--keyring", str(repo.keyring), str(dist / "InRelease")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
        assert f"Codename: {r.codename}" in (dist / "Release").read_text()
        packages = (dist / "main" / f"binary-{arch}" / "Packages").read_text()
        versions = [
            ln.split(": ", 1)[1] for ln in packages.splitlines() if ln.startswith("Version:")
        ]
        assert versions == [builds[r.codename][0].version], (r.codename, versions)
        assert versions[0].endswith(r.deb_suffix)


def test_the_repository_signature_is_checked(installed: Installed, repo: AptRepo) -> None:
    # The same repository, trusted to a key that did not sign it: apt must refuse it.
    wrong = "/usr/share/keyrings/debian-archive-keyring.gpg"
    entry = repo.sources_entry(installed.release.codename, keyring=wrong)
    script = (
        f"printf '%s' '{entry}' > /tmp/wrong.sources; "
        "mkdir -p /tmp/lists/partial; "
        "apt-get update -o Dir::Etc::SourceList=/tmp/wrong.sources "
        "-o Dir::Etc::SourceParts=- -o Dir::State::Lists=/tmp/lists 2>&1; "
        "echo rc=$?; rm -rf /tmp/lists /tmp/wrong.sources"
    )
    out = chroot_sh(installed.root, script).stdout
    assert "NO_PUBKEY" in out or "not signed" in out, out
    assert f"file:{REPO_IN_ROOT}" in out


def test_default_state_file_validates_as_the_ampd_user(installed: Installed) -> None:
    out = chroot_sh(
        installed.root,
        "setpriv --reuid=ampd --regid=ampd --init-groups ampd validate /etc/ampd/state.yml",
    ).stdout
    assert out.strip() == "/etc/ampd/state.yml: valid"


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/etc/ampd", ("root", "ampd", 0o750)),
        ("/etc/ampd/state.yml", ("root", "ampd", 0o640)),
        ("/opt/venvs/ampd", ("root", "root", 0o755)),
        ("/opt/venvs/ampd/bin/ampd", ("root", "root", 0o755)),
        ("/lib/systemd/system/ampd.service", ("root", "root", 0o644)),
        ("/usr/lib/sysusers.d/ampd.conf", ("root", "root", 0o644)),
        ("/usr/lib/tmpfiles.d/ampd.conf", ("root", "root", 0o644)),
        # made by postinst (units/ampd.tmpfiles) as ampd.service's StateDirectory= has it
        ("/var/lib/ampd", ("ampd", "ampd", 0o750)),
        ("/var/lib/ampd/grafana-secrets", ("ampd", "ampd-grafana", 0o750)),
        ("/usr/share/polkit-1/rules.d/50-ampd.rules", ("root", "root", 0o644)),
        ("/usr/share/dbus-1/system.d/ampd.conf", ("root", "root", 0o644)),
    ],
)
def test_installed_owners_and_modes(
    installed: Installed, path: str, want: tuple[str, str, int]
) -> None:
    assert stat_of(installed.root, path) == want


def test_installed_user_and_enablement(installed: Installed) -> None:
    root = installed.root
    entry = next(
        line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
        if line.startswith("ampd:")
    )
    assert int(entry[2]) < 1000  # a system user
    assert entry[5] == "/var/lib/ampd"
    assert entry[6] in ("/usr/sbin/nologin", "/sbin/nologin")
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
    }
    uids = {int(passwd[u][2]) for u in ("ampd", *CHILD_USERS)}
    assert len(uids) == 4 and max(uids) < 1000  # one system user per process
    for user in CHILD_USERS:
        assert passwd[user][6] in ("/usr/sbin/nologin", "/sbin/nologin"), user
    group = next(
        line.split(":")
        for line in (root / "etc/group").read_text().splitlines()
        if line.startswith("ampd:")
    )
    assert set(group[3].split(",")) == set(CHILD_USERS)  # they read generated/
    wants = root / "etc/systemd/system/multi-user.target.wants/ampd.service"
    assert wants.is_symlink()
    for child in CHILDREN:  # started by ampd, never by the package
        assert not list((root / "etc/systemd/system").glob(f"*/{child}"))
    assert not (root / "usr/sbin/policy-rc.d").exists()


# -- booted under systemd ---------------------------------------------------------------------


def test_boots_with_ampd_active_and_its_status_line(box: SysBox) -> None:
    wait_for_status(box, "Synced · Healthy")
    status = box.run("systemctl", "status", "--no-pager", "ampd.service").stdout
    assert "Active: active (running)" in status
    assert 'Status: "Synced · Healthy' in status
    assert box.run("ampd", "status", user="ampd").returncode == 0
    main_pid = box.show("ampd.service", "MainPID")["MainPID"]
    assert box.run("ps", "-o", "user=", "-p", main_pid).check().stdout.strip() == "ampd"
    assert box_stat(box, "/var/lib/ampd") == "ampd ampd 750"
    assert box_stat(box, "/etc/ampd") == "root ampd 750"  # ConfigurationDirectory= kept it
    assert "mode is different" not in box.journal("ampd.service")
    for child in CHILDREN:
        assert box.show(child, "ActiveState")["ActiveState"] == "inactive"


FORGET = (
    "from ampd.gateways.systemd import SystemdRuntime\n"
    "SystemdRuntime().forget_data('prometheus')\n"
    "print('forgotten')\n"
)


def test_the_ampd_user_has_systemd_remove_a_child_s_data(box: SysBox) -> None:
    """What a host from another instance's image does (ampd.local.side.side): as the ampd user,
    the installed runtime stops ampd-prometheus and has systemd remove its StateDirectory=
    (systemctl clean: the package's polkit rule and bus policy allow it, on 252 and 257)."""
    wait_for_status(box, "Synced · Healthy")
    data = "/var/lib/ampd/data/prometheus"
    box.run(
        "install", "-d", "-o", "ampd-prometheus", "-g", "ampd-prometheus", "-m", "0750", data
    ).check()
    box.write_file(f"{data}/wal-of-another-instance", "samples", mode=0o640)
    box.run("chown", "ampd-prometheus:ampd-prometheus", f"{data}/wal-of-another-instance").check()
    assert box.run("rm", "-rf", data, user="ampd").returncode != 0  # not the daemon's files
    done = box.run("/opt/venvs/ampd/bin/python", "-c", FORGET, user="ampd", timeout=120)
    assert done.returncode == 0 and "forgotten" in done.stdout, done.stderr
    assert not box.path(f"{data}/wal-of-another-instance").exists()
    props = box.show("ampd-prometheus.service", "ActiveState", "CleanResult")
    assert props == {"ActiveState": "inactive", "CleanResult": "success"}, props


def test_upgrade_keeps_the_edited_state_file_and_restarts_ampd(
    box: SysBox, builds: Builds, release: Release, repo: AptRepo
) -> None:
    before = wait_for_status(box, "Synced · Healthy")
    state = box.read_file("/etc/ampd/state.yml")
    edited = state.replace("127.0.0.1:9795", "127.0.0.1:9796") + "# edited by the operator\n"
    assert edited != state
    box.path("/etc/ampd/state.yml").write_text(edited)  # keeps owner and mode
    assert box.run("ampd", "validate", "/etc/ampd/state.yml", user="ampd").returncode == 0

    upgrade(box, builds, release, repo)

    version = box.run("dpkg-query", "-W", "-f", "${Version}", "ampd").check().stdout
    assert version == builds[release.codename][1].version
    assert box.read_file("/etc/ampd/state.yml") == edited
    assert box_stat(box, "/etc/ampd/state.yml") == "root ampd 640"
    assert not box.path("/etc/ampd/state.yml.dpkg-dist").exists()

    after = wait_for_status(box, "Synced · Healthy")
    assert after["InvocationID"] != before["InvocationID"]  # restarted, once, cleanly:
    props = box.show("ampd.service", "NRestarts", "Result")
    assert props == {"NRestarts": "0", "Result": "success"}
    log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", "ampd.service").stdout
    assert "Failed with result" not in log
    status = json.loads(box.read_file("/run/ampd/status.json"))
    assert status["spec"]["sha256"] == hashlib.sha256(edited.encode()).hexdigest()


def test_purge_leaves_nothing_behind(box: SysBox) -> None:
    wait_for_status(box, "Synced · Healthy")
    box.run("apt-get", "purge", "-y", "ampd", env=APT_ENV, timeout=300).check()

    assert box.show("ampd.service", "LoadState")["LoadState"] == "not-found"
    assert box.run("pgrep", "-u", "ampd").returncode == 1  # nothing runs as ampd
    found = box.sh(
        "find / -xdev \\( -path /proc -o -path /sys -o -path /dev"
        f" -o -path {REPO_IN_ROOT} -o -path /opt/ampd-src \\) -prune"
        " -o -name '*ampd*' -print; find /run -name '*ampd*' -print",
        timeout=120,
    ).stdout.split()
    # What the test put there to install from (its repository, key and sources entry).
    ours = ("/etc/apt/keyrings/ampd-test.gpg", "/etc/apt/sources.list.d/ampd-test.sources")
    left = [p for p in found if p not in ours and "_srv_ampd-repo_" not in p]
    assert left == []
    # Debian keeps system users on purge (files they own may live on elsewhere).
    assert box.run("getent", "passwd", "ampd").returncode == 0


LOCAL_PROMETHEUS = """
prometheus:
  enabled: true
  mode: agent
  listen: 127.0.0.1:9091    # Debian's own prometheus.service has :9090
  remote_write: null
"""


def test_a_running_prometheus_survives_the_upgrade_and_goes_with_the_purge(
    box: SysBox, builds: Builds, release: Release, repo: AptRepo
) -> None:
    wait_for_status(box, "Synced · Healthy")
    box.path("/etc/ampd/state.yml").write_text(
        box.read_file("/etc/ampd/state.yml") + LOCAL_PROMETHEUS
    )
    child = "ampd-prometheus.service"
    wait_for_local_prometheus(box, "ampd-prometheus", timeout=30)  # its own user
    before = box.show(child, "MainPID", "InvocationID")
    assert box_stat(box, "/var/lib/ampd/data/prometheus") == "ampd-prometheus ampd-prometheus 750"

    upgrade(box, builds, release, repo)
    wait_for_status(box, "Synced · Healthy")
    assert box.show(child, "MainPID", "InvocationID") == before  # never restarted

    box.run("apt-get", "purge", "-y", "ampd", env=APT_ENV, timeout=300).check()
    assert box.show(child, "ActiveState")["ActiveState"] == "inactive"
    assert box.run("pgrep", "-u", "ampd").returncode == 1
    assert not box.path("/var/lib/ampd").exists()


@pytest.fixture
def earlier_box(
    repo: AptRepo, builds: Builds, earlier: dict[str, Build], release: Release
) -> Iterator[SysBox]:
    """A fresh tree with the EARLIER revision's package installed from the repository,
    booted."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"cannot boot a systemd box here: {reason}")
    root = Path(tempfile.mkdtemp(prefix=f".earlier-{release.codename}-", dir=CACHE_DIR))
    first_builds = {name: [first.deb] for name, (first, _) in builds.items()}
    try:
        try:
            repo.publish({**first_builds, release.codename: [earlier[release.codename].deb]})
            installed_root(ensure_base_rootfs(release), repo, root, release)
        finally:
            repo.publish(first_builds)
        booted = SysBox(root)
        booted.boot()
        try:
            yield booted
        finally:
            booted.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_upgrade_from_the_package_whose_children_ran_as_ampd_moves_them_to_their_users(
    earlier_box: SysBox,
    builds: Builds,
    earlier: dict[str, Build],
    release: Release,
    repo: AptRepo,
) -> None:
    box = earlier_box
    wait_for_status(box, "Synced · Healthy")
    box.path("/etc/ampd/state.yml").write_text(
        box.read_file("/etc/ampd/state.yml") + LOCAL_PROMETHEUS
    )
    before = wait_for_local_prometheus(box, "ampd")  # that package: one user for all
    data = "/var/lib/ampd/data/prometheus"
    assert box_stat(box, data).startswith("ampd ampd")

    def wal() -> set[str]:
        return set(box.sh(f"cd {data} && find . -type f -path '*/wal/*'").check().stdout.split())

    files = wait_for(
        wal, 30, 0.2, "Prometheus' WAL files", detail=lambda: box.sh(f"ls -laR {data}").stdout
    )

    upgrade(box, builds, release, repo, (earlier[release.codename], builds[release.codename][0]))

    # postinst restarted the child that still ran as ampd, into its own user, once
    after = wait_for_local_prometheus(box, "ampd-prometheus")
    assert after["InvocationID"] != before["InvocationID"]
    wait_for_status(box, "Synced · Healthy")
    main_pid = box.show("ampd.service", "MainPID")["MainPID"]
    assert process_user(box, main_pid) == "ampd"
    # its data is its own now, none of it left behind (the WAL it had is still there)
    assert box_stat(box, data) == "ampd-prometheus ampd-prometheus 750"
    assert box.sh(f"find {data} ! -user ampd-prometheus").check().stdout == ""
    assert files <= wal()
    # ampd's own files stay ampd's and out of the children's reach
    assert box_stat(box, "/var/lib/ampd") == "ampd ampd 750"
    assert box_stat(box, "/var/lib/ampd/ampd.json") == "ampd ampd 600"
    assert box_stat(box, "/var/lib/ampd/grafana-secrets") == "ampd ampd-grafana 750"
    for user in CHILD_USERS:
        assert box.run("getent", "passwd", user).returncode == 0, user
    log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", "ampd.service").stdout
    assert "Failed with result" not in log
