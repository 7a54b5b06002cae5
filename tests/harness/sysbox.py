"""A real systemd booted as PID 1 in a namespace container: this machine's own Debian
release (12: systemd 252, 13: systemd 257), so that the box's python3 is the checkout's.

How a box is made:

1. ``ensure_rootfs()`` debootstraps a minimal tree of this machine's release (systemd,
   dbus, polkitd, python3) once, with a virtualenv at ``/opt/venvs/ampd`` holding ampd's
   dependencies (installed offline from a wheelhouse built on the host), ``/usr/bin/ampd``,
   and a ``.pth`` that puts ``/opt/ampd-src`` (the checkout, bind-mounted read-only at
   boot) on its path. It is cached under ``/var/cache/ampd-test/rootfs-<suite>-<hash>``;
   the hash covers the package
   list, the mirror, the dependency list and ``ROOTFS_RECIPE``. It is built in a temporary
   directory and renamed into place, so a half-built tree is never used.
2. ``SysBox.boot()`` creates a child cgroup under the caller's own cgroup2 cgroup, moves a
   launcher into it and runs ``unshare --pid --mount --uts --ipc --net --cgroup --fork``.
   Inside, PID 1 of the new PID namespace mounts a tmpfs, an overlay (the cached rootfs
   below, the tmpfs above) and a minimal /dev, /proc (``/proc/sys`` read-only), /sys
   (read-only) and cgroup2 (the delegated subtree, writable), calls ``pivot_root`` and
   execs ``/lib/systemd/systemd``. The box has its own network namespace: loopback only.
3. ``SysBox.run()`` enters every namespace with ``nsenter`` and runs a command with a
   clean environment; ``write_file()``/``read_file()`` go through ``/proc/PID/root``.
4. ``SysBox.close()`` kills every process of the box with ``cgroup.kill``, waits until the
   cgroup is empty and removes it. Every mount lived in the box's mount namespace, so
   none is left behind; the overlay's upper layer was a tmpfs in that namespace.

Never start a second systemd against the host's own cgroup tree: the box's systemd only
ever sees the cgroup it was given.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.releases import UnknownRelease, debian_mirror, host_release
from tests.harness.wait import wait_for

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


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.returncode != 0:
            raise AssertionError(
                f"{shlex.join(self.argv)} exited {self.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )
        return self


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


# -- a booted box ---------------------------------------------------------------------------

_STAGE2 = r"""
set -eu
mount -t tmpfs -o mode=0755,size=2g sysbox "$BOX"
mkdir "$BOX/upper" "$BOX/work" "$BOX/root"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$BOX/upper,workdir=$BOX/work" "$BOX/root"
R="$BOX/root"

mkdir -p "$R$SRC_IN_BOX"
mount --bind "$SRC" "$R$SRC_IN_BOX"
mount -o remount,bind,ro "$R$SRC_IN_BOX"

mount -t tmpfs -o mode=0755,nosuid,size=16m devtmpfs "$R/dev"
for d in null zero full random urandom tty; do
    touch "$R/dev/$d"
    mount --bind "/dev/$d" "$R/dev/$d"
done
touch "$R/dev/console"
mount --bind /dev/null "$R/dev/console"
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"

mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
if [ -e "$R/proc/sysrq-trigger" ]; then mount --bind /dev/null "$R/proc/sysrq-trigger"; fi

printf '%s\n' "$MACHINE_ID" > "$R/etc/machine-id"
printf '%s\n' "$HOSTNAME_IN_BOX" > "$R/etc/hostname"

cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec /usr/bin/env -i container=ampd-sysbox PATH="$BOX_PATH" \
    /lib/systemd/systemd --unit=multi-user.target --show-status=no
"""


def _die_with_parent() -> None:
    # The launcher dies with the test process even if pytest is killed; unshare's
    # --kill-child then takes the box's PID 1 (and with it every process in the box).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class SysBox:
    rootfs: Path
    name: str = field(default_factory=lambda: f"ampd-sysbox-{secrets.token_hex(4)}")
    boot_timeout: float = 60.0
    cgroup: Path | None = None
    pid: int | None = None  # host PID of the box's systemd
    _launcher: subprocess.Popen[bytes] | None = None
    _mountpoint: Path | None = None
    _log_path: Path | None = None

    # -- lifecycle

    def boot(self) -> SysBox:
        self.cgroup = cgroup2_parent() / self.name
        self.cgroup.mkdir()
        self._mountpoint = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir="/run"))
        self._log_path = self._mountpoint.with_suffix(".log")
        stage2 = self._mountpoint.with_suffix(".sh")
        stage2.write_text(_STAGE2)
        env = {
            "PATH": BOX_PATH,
            "BOX": str(self._mountpoint),
            "LOWER": str(self.rootfs),
            "SRC": str(REPO),
            "SRC_IN_BOX": SRC_IN_BOX,
            "MACHINE_ID": secrets.token_hex(16),
            "HOSTNAME_IN_BOX": self.name,
            "BOX_PATH": BOX_PATH,
        }
        unshare = [
            "unshare",
            "--pid",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--cgroup",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "/bin/sh",
            str(stage2),
        ]
        launch = f"echo $$ > {shlex.quote(str(self.cgroup / 'cgroup.procs'))} && exec " + (
            shlex.join(unshare)
        )
        with self._log_path.open("wb") as log:
            self._launcher = subprocess.Popen(  # noqa: S602 - fixed script, quoted paths
                launch,
                shell=True,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
            )
        try:
            self.pid = self._wait_for_init()
            self._wait_until_booted()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_for_init(self) -> int:
        launcher = self._launcher
        assert launcher is not None
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")

        def init_pid() -> int | None:
            if launcher.poll() is not None:
                raise RuntimeError(f"box launcher exited {launcher.returncode}: {self.log()}")
            pids = children.read_text().split()
            return int(pids[0]) if pids else None

        return wait_for(init_pid, 10, 0.01, "the box's init", retry_on=(OSError,))

    def _wait_until_booted(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        private = Path(f"/proc/{self.pid}/root/run/systemd/private")

        def listening() -> bool:
            if self._launcher is None or self._launcher.poll() is not None:
                raise RuntimeError(f"box exited during boot: {self.log()}")
            return _exists(private)

        wait_for(listening, self.boot_timeout, 0.02, "systemd to come up", detail=self.log)
        left = max(1.0, deadline - time.monotonic())
        state = self.run("systemctl", "is-system-running", "--wait", timeout=left)
        if state.stdout.strip() not in ("running", "degraded"):
            raise RuntimeError(f"box did not boot: {state.stdout} {self.failed_units()}")

    def close(self) -> None:
        """Kill everything in the box and remove its cgroup. Safe to call twice."""
        if self.cgroup is not None and self.cgroup.exists():
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        if self._launcher is not None:
            if self._launcher.poll() is None:
                self._launcher.kill()
            self._launcher.wait(timeout=30)
        if self.cgroup is not None:
            _remove_cgroup(self.cgroup)
            self.cgroup = None
        if self._mountpoint is not None:
            for leftover in (
                self._mountpoint.with_suffix(".sh"),
                self._mountpoint.with_suffix(".log"),
            ):
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self._mountpoint.rmdir()
            self._mountpoint = None
        self.pid = None

    def __enter__(self) -> SysBox:
        return self.boot()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- talking to the box

    def run(
        self,
        *argv: str,
        user: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> Result:
        """Run argv inside the box (as root, or as ``user`` with its groups)."""
        assert self.pid is not None, "box is not running"
        box_env = [f"PATH={BOX_PATH}", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        box_env += [f"{k}={v}" for k, v in (env or {}).items()]
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        cmd = [
            "nsenter",
            f"--target={self.pid}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--cgroup",
            "--root",
            "--wd=/",
            "--",
            "/usr/bin/env",
            "-i",
            *box_env,
            *prefix,
            *argv,
        ]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": BOX_PATH},
        )
        return Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def sh(self, script: str, **kwargs: object) -> Result:
        return self.run("/bin/sh", "-c", script, **kwargs)  # type: ignore[arg-type]

    def path(self, inside: str) -> Path:
        """The host path of a file inside the box (through /proc/PID/root)."""
        assert self.pid is not None
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def write_file(self, inside: str, data: str | bytes, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        target.write_bytes(data)
        target.chmod(mode)

    def read_file(self, inside: str) -> str:
        return self.path(inside).read_text()

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).check()
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def wait_for(self, unit: str, timeout: float = 20.0, **want: str) -> dict[str, str]:
        """Poll ``systemctl show`` until every property equals its wanted value."""
        return wait_for(
            lambda: self.show(unit, *want),
            timeout,
            what=f"{unit} to have {want}",
            until=lambda props: (
                props is not None and all(props.get(k) == v for k, v in want.items())
            ),
            retry_on=(),
            detail=lambda: self.journal(unit),
        )

    def journal(self, unit: str | None = None, lines: int = 40) -> str:
        args = ["journalctl", "--no-pager", "-n", str(lines)]
        if unit:
            args += ["-u", unit]
        return self.run(*args).stdout

    def failed_units(self) -> str:
        return self.run("systemctl", "--failed", "--no-legend", "--plain").stdout

    def log(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-4000:]


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _remove_cgroup(top: Path, timeout: float = 15.0) -> None:
    def emptied() -> bool:
        if "populated 1" not in _read(top / "cgroup.events"):
            return True
        with contextlib.suppress(OSError):
            (top / "cgroup.kill").write_text("1")
        return False

    wait_for(emptied, timeout, 0.02, f"the processes in {top} to go", retry_on=())
    # Depth first: a cgroup can only be removed once it has no children.
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        with contextlib.suppress(FileNotFoundError):
            Path(dirpath).rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
