"""How a box of ``tests/harness/sysbox.py`` starts and goes, below the ``SysBox`` object:
the stage-2 script that PID 1 of the new PID namespace runs (tmpfs, overlay, a minimal
/dev, /proc and /sys, the delegated cgroup2 subtree, ``pivot_root``, then systemd), the
launcher's parent-death signal, and the removal of the box's cgroup once its processes
are gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from pathlib import Path

from tests.harness.wait import wait_for

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
