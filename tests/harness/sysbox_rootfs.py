"""The host side of a box of ``tests/harness/sysbox.py``: whether this machine can run
one (root, cgroup2, unshare/nsenter/debootstrap), and the cached root file system it
boots: a debootstrapped tree of this machine's Debian release with a virtualenv of ampd's
dependencies (installed offline from a wheelhouse built on the host), ``/usr/bin/ampd``
and a ``.pth`` that puts the bind-mounted checkout on its path. Trees and wheelhouses are
cached under ``CACHE_DIR``, keyed by a hash of what went into them, built in a temporary
directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.harness.releases import UnknownRelease, debian_mirror, host_release

CACHE_DIR = Path(os.environ.get("AMPD_TEST_CACHE", "/var/cache/ampd-test"))
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "libpam-systemd",  # provides logind, which polkitd depends on
    "dbus",
    "polkitd",
    "procps",
    "python3",
    "python3-venv",
)
# Bump when the way the rootfs is put together changes (not the package list: it is hashed).
ROOTFS_RECIPE = "2"
VENV = "/opt/venvs/ampd"
SRC_IN_BOX = "/opt/ampd-src"
REPO = Path(__file__).resolve().parents[2]
BOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Units that only make noise in a container without a console.
MASKED_UNITS = ("getty.target", "console-getty.service", "systemd-timesyncd.service")


class SysBoxUnavailable(RuntimeError):
    """This machine cannot run a box (not root, no cgroup2, no debootstrap, ...)."""


# -- preconditions ----------------------------------------------------------------------


def unavailable_reason() -> str | None:
    """Why a box cannot boot here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (namespaces, mounts, cgroup delegation)"
    for tool in ("unshare", "nsenter", "debootstrap"):
        if shutil.which(tool) is None:
            return f"needs {tool} on the host (apt-get install util-linux debootstrap)"
    try:
        cgroup2_parent()
    except SysBoxUnavailable as e:
        return str(e)
    if not Path("/proc/self/ns/cgroup").exists():
        return "kernel has no cgroup namespaces"
    return None


def cgroup2_parent() -> Path:
    """The directory of this process' own cgroup in the cgroup2 hierarchy."""
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[0] == "cgroup2":
            mount = Path(pre.split()[4])
            break
    if mount is None:
        raise SysBoxUnavailable("no cgroup2 hierarchy mounted on the host")
    own = next(
        (
            line[3:]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        ),
        None,
    )
    if own is None:
        raise SysBoxUnavailable("this process is not in the cgroup2 hierarchy")
    parent = mount / own.lstrip("/")
    if not (parent / "cgroup.procs").exists():
        raise SysBoxUnavailable(f"own cgroup {parent} is not visible")
    return parent


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (one-line or deb822 sources)."""
    try:
        return debian_mirror()
    except UnknownRelease as e:
        raise SysBoxUnavailable(str(e)) from e


def runtime_dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return sorted(project["dependencies"])


# -- the cached root file system ----------------------------------------------------------


def _log(message: str) -> None:
    print(f"[sysbox] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def ensure_wheelhouse(deps: Sequence[str]) -> Path:
    """Wheels for ampd's runtime dependencies, built once on the host (needs PyPI once)."""
    final = CACHE_DIR / f"wheels-{_key(list(deps), sys.version_info[:2])}"
    if final.is_dir():
        return final
    with _locked("wheels"):
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=".wheels-", dir=CACHE_DIR))
        try:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--use-pep517",  # sdists (sdnotify) build without the `wheel` package
                    "--wheel-dir",
                    str(tmp),
                    *deps,
                ],
                check=True,
                timeout=900,
            )
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def rootfs_path() -> Path:
    mirror = apt_mirror()
    suite = host_release().codename
    key = _key(PACKAGES, suite, mirror, runtime_dependencies(), ROOTFS_RECIPE)
    return CACHE_DIR / f"rootfs-{suite}-{key}"


def ensure_rootfs() -> Path:
    """The cached rootfs of this machine's release, built on first use (about a minute)."""
    final = rootfs_path()
    if (final / "etc/os-release").exists():
        return final
    deps = runtime_dependencies()
    wheels = ensure_wheelhouse(deps)
    with _locked("rootfs"):
        if (final / "etc/os-release").exists():
            return final
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=CACHE_DIR))
        tmp.chmod(0o755)  # mkdtemp's 0700 would lock non-root users out of the root
        try:
            _log(f"building {final.name} from {apt_mirror()} (once; about a minute)")
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    host_release().codename,
                    str(tmp),
                    apt_mirror(),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=1800,
            )
            _customize(tmp, wheels, deps)
            tmp.rename(final)
            _log(f"built {final.name} in {time.monotonic() - started:.0f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _customize(root: Path, wheels: Path, deps: Sequence[str]) -> None:
    shutil.copytree(wheels, root / "tmp/wheels")
    script = f"""
set -eu
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc"
chroot "$R" /usr/bin/python3 -m venv {VENV}
chroot "$R" {VENV}/bin/pip install --quiet --no-index --find-links /tmp/wheels {
        " ".join(shlex.quote(d) for d in deps)
    }
"""
    subprocess.run(
        ["unshare", "--mount", "--fork", "--propagation", "private", "sh", "-c", script],
        env={"R": str(root), "PATH": BOX_PATH},
        check=True,
        timeout=900,
    )
    shutil.rmtree(root / "tmp/wheels")
    site = next((root / VENV.lstrip("/")).glob("lib/python3*/site-packages"))
    (site / "ampd-src.pth").write_text(SRC_IN_BOX + "\n")
    ampd = root / "usr/bin/ampd"
    ampd.write_text(
        f"#!{VENV}/bin/python3\nimport sys\n\nfrom ampd.cli import main\n\nsys.exit(main())\n"
    )
    ampd.chmod(0o755)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "etc/machine-id").write_text("")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
