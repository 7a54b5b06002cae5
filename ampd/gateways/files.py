"""File effects: atomic writes (temp in the same directory, fsync, rename) and reads."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from ampd.errors import PermanentError, TemporaryError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def inputs_fingerprint(paths: list[Path]) -> str:
    """Changes whenever one of ``paths`` is written, replaced, created or removed (its
    size, mtime and inode), without reading them: what a pass may skip re-checking."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = p.stat()
            h.update(
                f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}\n".encode()
            )
        except OSError as e:
            h.update(f"{p}\0{type(e).__name__}\n".encode())
    return h.hexdigest()


def file_kind(path: Path) -> str:
    """ "file", "directory", "missing", "fifo", "socket", "device" or "other", without
    opening it (stat follows symlinks; a loop or a too-long name raises OSError)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except ValueError:  # a NUL byte in the name: no such file can exist
        return "invalid name"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _keep_owner(path: Path, tmp: Path) -> None:
    """Run as root (``sudo ampd bake``, ``sudo ampd apply``), a rewrite keeps the owner of
    the file it replaces: ampd.json owned by root would lock the ampd user out."""
    if os.geteuid() != 0:
        return
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    os.chown(tmp, st.st_uid, st.st_gid)


def atomic_write(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a mix.

    A full disk or a read-only directory raises PermanentError/TemporaryError and leaves
    the old file exactly as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(mode)
        _keep_owner(path, Path(tmp))
        Path(tmp).replace(path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise _write_error(path, e) from e


def _write_error(path: Path, e: OSError) -> Exception:
    # A full disk, a quota, a read-only mount or a changed mode: an operator fixes them,
    # and the write is tried again (with backoff) until they have.
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return TemporaryError(f"{path}: {e.strerror} while writing", delay=30)
    return PermanentError(f"{path}: {e.strerror}")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_tree_checked(path: Path) -> None:
    """Remove ``path`` (a file or a tree); gone already is fine. Anything left raises the
    first OSError, its filename the full path of what could not be removed."""

    def fail(
        _func: object, name: str, exc: tuple[type[BaseException], BaseException, object]
    ) -> None:
        e = exc[1]
        if isinstance(e, FileNotFoundError):
            return
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror, name) from e
        raise e

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, onerror=fail)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class FileWriter:
    """The capability to write, replace and remove files. Only an applying pass holds one
    (``ampd.wiring.Writers``); ``ampd plan`` never builds it, so a plan writes no file."""

    def write(self, path: Path, data: bytes, mode: int = 0o640) -> None:
        atomic_write(path, data, mode)

    def remove(self, path: Path) -> None:
        remove(path)

    def remove_tree(self, path: Path) -> None:
        """Removes ``path`` and everything under it; raises when something is left."""
        remove_tree_checked(path)

    def remove_dir(self, path: Path) -> None:
        """Removes the empty directory ``path``; raises OSError when it is not empty."""
        path.rmdir()

    def make_dir(self, path: Path, mode: int = 0o750) -> None:
        """Makes ``path`` (and its parents) when it is not there; an existing one stays."""
        path.mkdir(mode=mode, parents=True, exist_ok=True)

    def move(self, source: Path, target: Path, mode: int | None = None) -> None:
        """Renames ``source`` to ``target`` (the same file system), then sets ``mode``."""
        source.rename(target)
        if mode is not None:
            target.chmod(mode)
