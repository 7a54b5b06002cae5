"""The Debian package under test: build it for each release, install it into a fresh tree.

- ``build_debs(release, versions, dist)`` runs ``scripts/build-deb`` (the documented build
  command) once per version, in parallel: on this machine for its own release, and for the
  other release inside a cached build tree of that release (``ensure_build_root()``:
  minbase + the build dependencies), so that each .deb is built with its own release's
  python3. The wheelhouse is cached under ``/var/cache/ampd-test`` by ``scripts/build-deb``
  itself (``AMPD_BUILD_CACHE``, keyed by the interpreter too). Tests never install a
  package on this machine: ``AMPD_NO_APT=1`` makes build-deb fail instead.
- ``ensure_base_rootfs(release)`` is a debootstrapped tree of that release (minbase +
  systemd, dbus, procps; no Python) cached under ``/var/cache/ampd-test/debroot-<hash>``,
  built in a temporary directory and renamed into place. ``installed_root()`` copies it
  and runs ``apt-get install ampd`` in a chroot: ampd from the test repository
  (``tests/harness/aptrepo.py``), everything else from the Debian mirror this machine uses.
- The installed tree is booted with ``tests/harness/sysbox.py`` (``SysBox(root)``), under
  that release's own systemd; the box's overlay keeps the tree itself unchanged.

Every chroot command runs in its own mount namespace (``unshare --mount``): its bind
mounts vanish with it, whatever happens to the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.harness.aptrepo import AptRepo
from tests.harness.cmd import run_checked
from tests.harness.releases import Release, UnknownRelease, debian_mirror, host_release
from tests.harness.sysbox import BOX_PATH, CACHE_DIR, MASKED_UNITS, REPO

BASE_PACKAGES = ("systemd", "systemd-sysv", "libpam-systemd", "dbus", "procps")
# What scripts/build-deb needs in a build tree (debian/control's Build-Depends and the
# tools it runs; it checks them itself with dpkg-checkbuilddeps), and that release's
# lintian to check what it built.
BUILD_PACKAGES = (
    "build-essential",
    "dpkg-dev",
    "debhelper",
    "python3",
    "python3-venv",
    "ca-certificates",
    "lintian",
)
# Bump when the way the base tree is put together changes (the package list is hashed).
BASE_RECIPE = "2"
BUILD_RECIPE = "1"
SRC_IN_BUILD = "/srv/ampd-src"
DIST_IN_BUILD = "/srv/dist"
CACHE_IN_BUILD = "/var/cache/ampd-build"
APT_ENV = {
    "PATH": BOX_PATH,
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
}
_run = run_checked


def debroot_unavailable_reason() -> str | None:
    """Why the package cannot be built and installed here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mounts)"
    for tool in ("debootstrap", "unshare", "chroot", "apt-get", "dpkg-buildpackage"):
        if shutil.which(tool, path=BOX_PATH) is None:
            return f"needs {tool} on the host (scripts/bootstrap installs it)"
    try:
        host_release()
        debian_mirror()
    except UnknownRelease as e:
        return str(e)
    return None


def _log(message: str) -> None:
    print(f"[debroot] {message}", flush=True)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# -- building -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    deb: Path
    version: str
    release: Release
    seconds: float


def changelog_version() -> str:
    out = _run(["dpkg-parsechangelog", "-S", "Version"], cwd=REPO)
    return out.stdout.strip()


def _network_env() -> dict[str, str]:
    names = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    return {k: os.environ[k] for k in names if k in os.environ}


_IN_BUILD_ROOT = r"""
set -eu
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount --bind -o ro "$SRC" "$R$SRC_IN_BUILD"
mount --bind "$DIST" "$R$DIST_IN_BUILD"
mount --bind "$CACHE" "$R$CACHE_IN_BUILD"
# the host's network settings, over the tree's own files (the cached tree stays as it is)
mount --bind -o ro /etc/resolv.conf "$R/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mount --bind -o ro /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
fi
exec chroot "$R" /usr/bin/env -i HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 PATH="$BOX_PATH" \
  AMPD_NO_APT=1 AMPD_BUILD_CACHE="$CACHE_IN_BUILD" AMPD_DIST="$DIST_IN_BUILD" $EXTRA "$@"
"""


def _in_build_root(
    release: Release,
    dist: Path,
    argv: Sequence[str],
    extra: dict[str, str],
    src: Path = REPO,
) -> tuple[list[str], dict[str, str]]:
    """``argv`` run in the cached build tree of ``release``, with the source tree ``src``
    (the checkout by default; read-only) at SRC_IN_BUILD, ``dist`` at DIST_IN_BUILD and the
    test cache at CACHE_IN_BUILD."""
    env = {
        "PATH": BOX_PATH,
        "R": str(ensure_build_root(release)),
        "SRC": str(src),
        "DIST": str(dist),
        "CACHE": str(CACHE_DIR),
        "SRC_IN_BUILD": SRC_IN_BUILD,
        "DIST_IN_BUILD": DIST_IN_BUILD,
        "CACHE_IN_BUILD": CACHE_IN_BUILD,
        "BOX_PATH": BOX_PATH,
        "EXTRA": " ".join(f"{k}={v}" for k, v in extra.items()),
    }
    unshare = ["unshare", "--mount", "--fork", "--propagation", "private"]
    return [*unshare, "/bin/sh", "-c", _IN_BUILD_ROOT, "in-build-root", *argv], env


def lintian(deb: Build) -> subprocess.CompletedProcess[str]:
    """lintian of the package's own release (Debian 13's lintian, say, calls every file
    under /lib an error, where Debian 12's debhelper installs units)."""
    argv = ["lintian", "--fail-on", "error,warning"]
    if deb.release == host_release():
        cmd, env = [*argv, str(deb.deb)], None
    else:
        cmd, env = _in_build_root(
            deb.release, deb.deb.parent, [*argv, f"{DIST_IN_BUILD}/{deb.deb.name}"], {}
        )
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _build_command(
    release: Release, version: str | None, dist: Path, src: Path = REPO
) -> tuple[list[str], dict[str, str]]:
    extra = {**_network_env(), **({"AMPD_DEB_VERSION": version} if version else {})}
    if release == host_release():
        env = {
            "PATH": BOX_PATH,
            "LANG": "C.UTF-8",
            "HOME": str(dist),
            "AMPD_BUILD_CACHE": str(CACHE_DIR),
            "AMPD_DIST": str(dist),
            "TMPDIR": str(dist),
            "AMPD_NO_APT": "1",
            **extra,
        }
        return [str(src / "scripts/build-deb")], env
    return _in_build_root(release, dist, [f"{SRC_IN_BUILD}/scripts/build-deb"], extra, src)


def build_debs(
    jobs: Sequence[tuple[Release, str | None]],
    dist: Path,
    sources: Sequence[Path | None] | None = None,
) -> list[Build]:
    """``scripts/build-deb`` once per (release, version) (None: debian/changelog's), all in
    parallel; the .debs land in ``dist``, the results come in the order asked. ``sources``
    (one per job, None: the checkout) builds a job from another source tree, such as an
    earlier revision (``export_revision``)."""
    dist.mkdir(parents=True, exist_ok=True)
    trees = list(sources) if sources is not None else [None] * len(jobs)
    commands = [
        (release, version, *_build_command(release, version, dist, src or REPO))
        for (release, version), src in zip(jobs, trees, strict=True)
    ]
    # scripts/build-deb serializes filling the wheelhouse cache; the rest runs in parallel.
    pending = [
        (
            release,
            version,
            time.monotonic(),
            subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group, ended as one below
            ),
        )
        for release, version, argv, env in commands
    ]
    try:
        return [_finish(dist, *p) for p in pending]
    finally:
        for _release, _version, _started, proc in pending:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _finish(
    dist: Path, release: Release, version: str | None, started: float, proc: subprocess.Popen[str]
) -> Build:
    out, err = proc.communicate(timeout=1500)
    if proc.returncode != 0:
        raise AssertionError(
            f"scripts/build-deb ({release.codename}, {version}) exited {proc.returncode}:\n{err}"
        )
    deb = dist / Path(out.strip().splitlines()[-1]).name
    real_version = _run(["dpkg-deb", "--field", str(deb), "Version"]).stdout.strip()
    return Build(deb, real_version, release, time.monotonic() - started)


def export_revision(revision: str, dest: Path) -> Path:
    """The checkout's tree at ``revision`` (a commit of its history), written to ``dest``:
    what an earlier release of the package was built from."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if archive.returncode != 0:
        raise AssertionError(
            f"git archive {revision}: {archive.stderr.decode(errors='replace')}"
            " (the test builds the package of that earlier revision: it needs the history)"
        )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=120)
    dest.chmod(0o755)
    return dest


# -- the base root file system and the build tree -----------------------------------------------


def _tree_path(kind: str, release: Release, packages: Sequence[str], recipe: str) -> Path:
    key = hashlib.sha256(
        json.dumps([list(packages), release.codename, debian_mirror(), recipe]).encode()
    ).hexdigest()[:16]
    return CACHE_DIR / f"{kind}-{release.codename}-{key}"


def base_rootfs_path(release: Release | None = None) -> Path:
    return _tree_path("debroot", release or host_release(), BASE_PACKAGES, BASE_RECIPE)


def _cached_tree(final: Path, marker: str, fill: Callable[[Path], None]) -> Path:
    """``final`` if it holds ``marker``; else built once by ``fill`` in a temporary
    directory and renamed into place (a half-built tree is never used), under a lock."""
    if (final / marker).exists():
        return final
    with _locked(final.name.rsplit("-", 1)[0]):
        if (final / marker).exists():
            return final
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=CACHE_DIR))
        try:
            _log(f"building {final.name} (once)")
            fill(tmp)
            tmp.chmod(0o755)  # the root directory of a system, not a private temporary one
            tmp.rename(final)
            _log(f"built {final.name} in {time.monotonic() - started:.0f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_base_rootfs(release: Release | None = None) -> Path:
    """A minimal tree of ``release`` (default: this machine's) with systemd and no Python,
    built once (about a minute)."""
    release = release or host_release()

    def fill(tmp: Path) -> None:
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                release.codename,
                str(tmp),
                debian_mirror(),
            ],
            timeout=1800,
            stdout=subprocess.DEVNULL,
        )
        for unit in MASKED_UNITS:
            link = tmp / "etc/systemd/system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        (tmp / "etc/machine-id").write_text("")
        for entry in (tmp / "var/cache/apt/archives").glob("*.deb"):
            entry.unlink()

    return _cached_tree(base_rootfs_path(release), "etc/os-release", fill)


def ensure_build_root(release: Release) -> Path:
    """The base tree of ``release`` plus what scripts/build-deb needs, built once."""
    final = _tree_path("buildroot", release, BASE_PACKAGES + BUILD_PACKAGES, BUILD_RECIPE)

    def fill(tmp: Path) -> None:
        copy_tree(ensure_base_rootfs(release), tmp)
        chroot_sh(
            tmp,
            "set -e; apt-get update -qq; "
            f"apt-get install -y -qq --no-install-recommends {' '.join(BUILD_PACKAGES)}",
            timeout=1800,
        )
        for inside in (SRC_IN_BUILD, DIST_IN_BUILD, CACHE_IN_BUILD):
            (tmp / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)

    return _cached_tree(final, "usr/bin/dpkg-buildpackage", fill)


def copy_tree(src: Path, dest: Path) -> None:
    _run(["cp", "-a", "--reflink=auto", f"{src}/.", str(dest)], timeout=600)


_CHROOT = r"""
set -eu
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc"
mkdir -p "$R/var/cache/apt/archives/partial" "$ARCHIVES/partial"
mount --bind "$ARCHIVES" "$R/var/cache/apt/archives"
cp -L /etc/resolv.conf "$R/etc/resolv.conf"
# No daemon starts in a chroot (invoke-rc.d, deb-systemd-invoke).
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
rc=0
chroot "$R" /bin/sh -c "$SCRIPT" || rc=$?
rm -f "$R/usr/sbin/policy-rc.d"
exit $rc
"""


def chroot_sh(root: Path, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a shell script in ``root`` with /dev, /proc and the shared apt archive cache."""
    archives = CACHE_DIR / "apt-archives"
    archives.mkdir(parents=True, exist_ok=True)
    with _locked("apt-archives"):
        return _run(
            ["unshare", "--mount", "--fork", "--propagation", "private", "/bin/sh", "-c", _CHROOT],
            env={**APT_ENV, "R": str(root), "SCRIPT": script, "ARCHIVES": str(archives)},
            timeout=timeout,
        )


def installed_root(
    base: Path, repo: AptRepo, dest: Path, release: Release | None = None
) -> subprocess.CompletedProcess[str]:
    """Copy ``base`` (a tree of ``release``, default this machine's) to ``dest`` and
    ``apt-get install ampd`` there from the repository's suite of that release; returns
    apt's output."""
    copy_tree(base, dest)
    dest.chmod(0o755)  # the root directory of a system, not a private temporary one
    repo.install_into(dest, (release or host_release()).codename)
    return chroot_sh(
        dest,
        "set -e; apt-get update -qq; apt-get install -y ampd 2>&1",
    )


def stat_of(root: Path, inside: str) -> tuple[str, str, int]:
    """(owner, group, mode) of a path inside ``root``, names from the root's own files."""
    st = (root / inside.lstrip("/")).lstat()
    return _name(root, "passwd", st.st_uid), _name(root, "group", st.st_gid), st.st_mode & 0o7777


def _name(root: Path, db: str, ident: int) -> str:
    for line in (root / "etc" / db).read_text().splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2] == str(ident):
            return parts[0]
    return str(ident)
