"""The documents of a remote state: the state and the files it names beside it, the hash
that identifies a combination of them, the spec pointed at local copies, and the cached
last good copy on disk (``<state dir>/source/``: ``state.yml``, ``source.json``,
``files/``, all mode 0600; ``accepted.json``: the version an operator accepted with
``ampd apply --accept``)."""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ampd.gateways.files import FileWriter, read_bytes
from ampd.gateways.statesource import SourceRef, parse_ref
from ampd.spec.load import LoadedSpec

Loc = tuple[str | int, ...]


@dataclass
class Doc:
    ref: SourceRef
    version: str  # SSM Version, S3 ETag
    data: bytes


@dataclass
class Good:
    """A version that passed every check: what runs."""

    loaded: LoadedSpec
    state: Doc
    files: dict[str, Doc] = field(default_factory=dict)  # raw file value -> document

    @property
    def key(self) -> str:
        return combo_hash(self.state, self.files)


def combo_hash(state: Doc, files: Mapping[str, Doc]) -> str:
    """Identifies a state together with the files it names (a bad one is skipped by it)."""
    h = hashlib.sha256(state.data)
    for raw, doc in sorted(files.items()):
        h.update(b"\x1f" + raw.encode() + b"\x1e" + doc.data)
    return h.hexdigest()


def referenced_files(loaded: LoadedSpec) -> list[tuple[Loc, str]]:
    """(field path, name as written in the document) of every file the state fetches
    from beside itself: the ``pushed`` ones of ``StateSpec.named_files()`` (its rule-group
    and alert manager files), read back from the document's own text at their position
    (the spec holds them resolved against the state's location)."""
    out: list[tuple[Loc, str]] = []
    for named in loaded.spec.named_files():
        raw = _at(loaded.positions.root, named.loc)
        if named.pushed and isinstance(raw, str):
            out.append((named.loc, raw))
    return out


def _at(root: Any, loc: Loc) -> Any:
    node = root
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


LOCAL_NAME_MAX = 96  # characters of a file's own name kept in its local copy's name


def local_name(digest: str, remote_name: str) -> str:
    """The local copy's file name: the content digest and (a bounded part of) the remote
    name, so that an SSM or S3 name of any length stays a valid local name."""
    base = remote_name.rsplit("/", 1)[-1][:LOCAL_NAME_MAX].lstrip(".") or "file"
    return f"{digest}-{base}"


def why(e: BaseException) -> str:
    """An OS error (or one a gateway wrapped) as ``strerror (ENAME)``."""
    os_err = e if isinstance(e, OSError) else e.__cause__
    if isinstance(os_err, OSError) and os_err.errno:
        name = errno.errorcode.get(os_err.errno, str(os_err.errno))
        return f"{os_err.strerror} ({name})"
    return str(e)


def bare_version(version: str) -> str:
    """A version as an operator types it: an S3 ETag without its quotes."""
    return version.strip().strip('"')


def read_acceptance(cache_dir: Path, name: str) -> str | None:
    """The version of ``name`` an operator accepted (``ampd apply --accept``), if any."""
    raw = read_bytes(cache_dir / "accepted.json")
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("source") != name:
        return None
    version = doc.get("version")
    return bare_version(version) if isinstance(version, str) else None


def write_acceptance(
    files: FileWriter, cache_dir: Path, name: str, version: str, at: float
) -> Path:
    path = cache_dir / "accepted.json"
    doc = {"source": name, "version": bare_version(version), "accepted_at": at}
    files.write(path, json.dumps(doc, sort_keys=True).encode() + b"\n", 0o600)
    return path


def localized(loaded: LoadedSpec, local: Mapping[str, Path]) -> LoadedSpec:
    """The spec with remote file references (raw value -> local copy) made local."""
    spec = loaded.spec
    ws = spec.workspace
    if ws is None or not local:
        return loaded
    raw_by_loc = dict(referenced_files(loaded))

    def path_for(loc: Loc, current: str) -> str:
        raw = raw_by_loc.get(loc)
        return str(local[raw]) if raw is not None and raw in local else current

    groups = [
        g.model_copy(update={"file": path_for(("workspace", "rule_groups", i, "file"), g.file)})
        if g.file is not None
        else g
        for i, g in enumerate(ws.rule_groups)
    ]
    am = ws.alertmanager
    if am is not None and am.file is not None:
        am = am.model_copy(
            update={"file": path_for(("workspace", "alertmanager", "file"), am.file)}
        )
    ws = ws.model_copy(update={"rule_groups": groups, "alertmanager": am})
    return LoadedSpec(
        spec.model_copy(update={"workspace": ws}), loaded.file, loaded.positions, loaded.sha256
    )


def save_cache(
    files: FileWriter,
    cache_dir: Path,
    name: str,
    good: Good,
    paths: Mapping[str, Path],
    saved_at: float,
) -> None:
    """Write the good version and the index of its files; drop copies nothing names."""
    meta = {
        "source": name,
        "version": good.state.version,
        "sha256": good.loaded.sha256,
        "files": {
            raw: {"ref": str(d.ref), "version": d.version, "path": str(paths[raw])}
            for raw, d in sorted(good.files.items())
        },
        "saved_at": saved_at,
    }
    files.write(cache_dir / "state.yml", good.state.data, 0o600)
    files.write(
        cache_dir / "source.json",
        json.dumps(meta, indent=2, sort_keys=True).encode() + b"\n",
        0o600,
    )
    keep = {p.name for p in paths.values()}
    files_dir = cache_dir / "files"
    if files_dir.is_dir():
        for p in files_dir.iterdir():
            if p.name not in keep and not p.name.startswith("."):
                files.remove(p)


def load_cache(cache_dir: Path, ref: SourceRef) -> tuple[Doc, dict[str, Doc]] | None:
    """The cached copy of ``ref`` and its files; None when there is none (or it is the
    copy of another source). Raises ValueError/KeyError/TypeError when it is unreadable."""
    raw_meta = read_bytes(cache_dir / "source.json")
    data = read_bytes(cache_dir / "state.yml")
    if raw_meta is None or data is None:
        return None
    meta = json.loads(raw_meta)
    if meta.get("source") != str(ref):
        return None  # a copy of another source: not ours to run
    files: dict[str, Doc] = {}
    for raw, f in dict(meta.get("files", {})).items():
        content = read_bytes(Path(f["path"]))
        if content is None:
            return None
        files[raw] = Doc(parse_ref(f["ref"]), str(f["version"]), content)
    return Doc(ref, str(meta["version"]), data), files
