"""The Debian package under test: build it, publish it, install it into a fresh bookworm.

- ``build_debs()`` runs ``scripts/build-deb`` (the documented build command) once per
  version, in parallel, into a temporary ``dist``; the wheelhouse is cached under
  ``/var/cache/ampd-test`` by ``scripts/build-deb`` itself (``AMPD_BUILD_CACHE``).
- ``AptRepo`` is a local apt repository signed with a key generated in a temporary
  ``GNUPGHOME`` (``apt-ftparchive``, ``InRelease`` and ``Release.gpg``). It is read
  through ``file:`` and checked against that key (``Signed-By:``), like any mirror.
- ``ensure_base_rootfs()`` is a debootstrapped bookworm (minbase + systemd, dbus, procps;
  no Python) cached under ``/var/cache/ampd-test/debroot-<hash>``, built in a temporary
  directory and renamed into place. ``installed_root()`` copies it and runs
  ``apt-get install ampd`` in a chroot: ampd from the test repository, everything else
  from the Debian mirror this machine uses (downloaded packages are cached too).
- The installed tree is booted with ``tests/harness/sysbox.py`` (``SysBox(root)``):
  the box's overlay keeps the tree itself unchanged, so every test boots it afresh.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.sysbox import BOX_PATH, CACHE_DIR, MASKED_UNITS, REPO, SUITE, apt_mirror

BASE_PACKAGES = ("systemd", "systemd-sysv", "libpam-systemd", "dbus", "procps")
# Bump when the way the base tree is put together changes (the package list is hashed).
BASE_RECIPE = "1"
REPO_IN_ROOT = "/srv/ampd-repo"
KEYRING_IN_ROOT = "/etc/apt/keyrings/ampd-test.gpg"
SOURCES_IN_ROOT = "/etc/apt/sources.list.d/ampd-test.sources"
REPO_SUITE = "stable"
APT_ENV = {
    "PATH": BOX_PATH,
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
}
# apt-get update for the test repository alone (the Debian mirror is not needed, and in a
# box, which has only loopback, not reachable).
APT_UPDATE_TEST_REPO = (
    "apt-get",
    "update",
    "-qq",
    f"-o=Dir::Etc::SourceList={SOURCES_IN_ROOT}",
    "-o=Dir::Etc::SourceParts=-",
    "-o=APT::Get::List-Cleanup=0",
)


def debroot_unavailable_reason() -> str | None:
    """Why the package cannot be built and installed here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (dpkg-buildpackage's apt step, debootstrap, chroot)"
    for tool in ("debootstrap", "unshare", "chroot", "apt-get"):
        if shutil.which(tool) is None:
            return f"needs {tool} on the host"
    if not Path("/usr/bin/python3.11").exists():
        return "needs Debian's /usr/bin/python3.11"
    return None


def _log(message: str) -> None:
    print(f"[debroot] {message}", flush=True)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    stdout: int | None = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"stdout:\n{(proc.stdout or '')[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


# -- building -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    deb: Path
    version: str
    seconds: float


def changelog_version() -> str:
    out = _run(["dpkg-parsechangelog", "-S", "Version"], cwd=REPO)
    return out.stdout.strip()


def build_debs(versions: Sequence[str | None], dist: Path) -> list[Build]:
    """``scripts/build-deb`` once per version (None: debian/changelog's), in parallel."""
    env = {
        "PATH": BOX_PATH,
        "LANG": "C.UTF-8",
        "HOME": str(dist),
        "AMPD_BUILD_CACHE": str(CACHE_DIR),
        "AMPD_DIST": str(dist),
        "TMPDIR": str(dist),
    }
    # scripts/build-deb serializes filling the wheelhouse cache; the rest runs in parallel.
    pending = [
        (
            version,
            time.monotonic(),
            subprocess.Popen(
                [str(REPO / "scripts/build-deb")],
                env={**env, **({"AMPD_DEB_VERSION": version} if version else {})},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group, ended as one below
            ),
        )
        for version in versions
    ]
    try:
        return [_finish(*p) for p in pending]
    finally:
        for _version, _started, proc in pending:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _finish(version: str | None, started: float, proc: subprocess.Popen[str]) -> Build:
    out, err = proc.communicate(timeout=1200)
    if proc.returncode != 0:
        raise AssertionError(f"scripts/build-deb ({version}) exited {proc.returncode}:\n{err}")
    deb = Path(out.strip().splitlines()[-1])
    real_version = _run(["dpkg-deb", "--field", str(deb), "Version"]).stdout.strip()
    return Build(deb, real_version, time.monotonic() - started)


# -- a signed apt repository -------------------------------------------------------------------


@dataclass
class AptRepo:
    """A signed apt repository in ``root`` (``dists/stable/main``, ``pool/``)."""

    root: Path
    gnupghome: Path = field(init=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.gnupghome = Path(tempfile.mkdtemp(prefix="ampd-gnupg-"))
        self.gnupghome.chmod(0o700)
        self._gpg(
            "--passphrase",
            "",
            "--quick-generate-key",
            "ampd test repository <ampd-test@localhost>",
            "ed25519",
            "sign",
            "1d",
        )
        listing = self._gpg("--with-colons", "--list-secret-keys").stdout
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self.keyring.write_bytes(
            subprocess.run(
                ["gpg", "--export", self.fingerprint],
                env=self._gpg_env(),
                capture_output=True,
                check=True,
            ).stdout
        )

    @property
    def keyring(self) -> Path:
        return self.root / "ampd-test.gpg"

    def _gpg_env(self) -> dict[str, str]:
        return {"PATH": BOX_PATH, "GNUPGHOME": str(self.gnupghome), "LANG": "C.UTF-8"}

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(
            ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", *args],
            env=self._gpg_env(),
        )

    def publish(self, debs: Sequence[Path]) -> None:
        """Make ``debs`` (and nothing else) what the repository offers, freshly signed."""
        pool = self.root / "pool"
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(self.root / "dists", ignore_errors=True)
        pool.mkdir()
        for deb in debs:
            shutil.copy2(deb, pool / deb.name)
        arch = _run(["dpkg", "--print-architecture"]).stdout.strip()
        dist = self.root / "dists" / REPO_SUITE
        binary = dist / "main" / f"binary-{arch}"
        binary.mkdir(parents=True)
        packages = _run(["apt-ftparchive", "packages", "pool"], cwd=self.root).stdout
        (binary / "Packages").write_text(packages)
        _run(["gzip", "-9nk", str(binary / "Packages")])
        release = _run(
            [
                "apt-ftparchive",
                "-o=APT::FTPArchive::Release::Origin=ampd-test",
                "-o=APT::FTPArchive::Release::Label=ampd-test",
                f"-o=APT::FTPArchive::Release::Suite={REPO_SUITE}",
                f"-o=APT::FTPArchive::Release::Codename={REPO_SUITE}",
                f"-o=APT::FTPArchive::Release::Architectures={arch}",
                "-o=APT::FTPArchive::Release::Components=main",
                "release",
                str(dist),
            ]
        ).stdout
        (dist / "Release").write_text(release)
        user = ["--local-user", self.fingerprint]
        self._gpg(*user, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release"))
        self._gpg(
            *user,
            "--armor",
            "--detach-sign",
            "--output",
            str(dist / "Release.gpg"),
            str(dist / "Release"),
        )

    def sources_entry(self, keyring: str = KEYRING_IN_ROOT) -> str:
        return (
            f"Types: deb\nURIs: file:{REPO_IN_ROOT}\nSuites: {REPO_SUITE}\n"
            f"Components: main\nSigned-By: {keyring}\n"
        )

    def install_into(self, root: Path) -> None:
        """Copy the repository, its key and its sources entry into a root file system."""
        target = root / REPO_IN_ROOT.lstrip("/")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.root, target)
        keyring = root / KEYRING_IN_ROOT.lstrip("/")
        keyring.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.keyring, keyring)
        (root / SOURCES_IN_ROOT.lstrip("/")).write_text(self.sources_entry())

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env=self._gpg_env(),
            capture_output=True,
            check=False,
            timeout=30,
        )
        shutil.rmtree(self.gnupghome, ignore_errors=True)


# -- the base root file system ----------------------------------------------------------------


def base_rootfs_path() -> Path:
    key = hashlib.sha256(
        json.dumps([BASE_PACKAGES, SUITE, apt_mirror(), BASE_RECIPE]).encode()
    ).hexdigest()[:16]
    return CACHE_DIR / f"debroot-{key}"


def ensure_base_rootfs() -> Path:
    """A minimal bookworm with systemd and no Python, built once (about a minute)."""
    final = base_rootfs_path()
    if (final / "etc/os-release").exists():
        return final
    with _locked("debroot"):
        if (final / "etc/os-release").exists():
            return final
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=".debroot-", dir=CACHE_DIR))
        try:
            _log(f"building {final.name} from {apt_mirror()} (once)")
            _run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    SUITE,
                    str(tmp),
                    apt_mirror(),
                ],
                timeout=1800,
                stdout=subprocess.DEVNULL,
            )
            for unit in MASKED_UNITS:
                link = tmp / "etc/systemd/system" / unit
                link.unlink(missing_ok=True)
                link.symlink_to("/dev/null")
            (tmp / "etc/machine-id").write_text("")
            tmp.chmod(0o755)
            for entry in (tmp / "var/cache/apt/archives").glob("*.deb"):
                entry.unlink()
            tmp.rename(final)
            _log(f"built {final.name} in {time.monotonic() - started:.0f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


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


def installed_root(base: Path, repo: AptRepo, dest: Path) -> subprocess.CompletedProcess[str]:
    """Copy ``base`` to ``dest`` and ``apt-get install ampd`` there; returns apt's output."""
    copy_tree(base, dest)
    dest.chmod(0o755)  # the root directory of a system, not a private temporary one
    repo.install_into(dest)
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
