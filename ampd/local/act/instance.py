"""A host that is a new instance (started from another one's image) drops what belonged
to the old one before its first pass: the last-applied hashes of local files, Prometheus'
WAL/TSDB (its samples carry the other instance's labels) and Grafana's data. Workspace id
and clientToken are fleet-wide and stay.
"""

from __future__ import annotations

import contextlib

import structlog

from ampd.core import Condition, ConditionStatus
from ampd.errors import PermanentError, TemporaryError
from ampd.gateways.files import FileWriter
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import ProcessControl
from ampd.gateways.store import Store, StoredState
from ampd.local.plan.local import FILE_PREFIX, OWN_DATA

__all__ = ["FILE_PREFIX", "INSTANCE_CONDITION", "OWN_DATA", "check_instance", "drop_instance_data"]

log = structlog.get_logger()

INSTANCE_CONDITION = "InstanceDataDropped"


def check_instance(
    store: Store,
    processes: ProcessControl,
    files: FileWriter,
    paths: Paths,
    instance_id: str | None,
) -> Condition | None:
    """An instance started from a baked image drops the state of the one that baked it:
    last-applied hashes of local files, Prometheus' WAL/TSDB (its samples carry the
    other instance's labels) and Grafana's data. Workspace id and clientToken are
    fleet-wide and stay.

    The children's data is their own users' (0750): the runtime removes it (systemd:
    ``systemctl clean``). Until all of it is gone the new instance id is not recorded,
    so every pass tries again, and ``InstanceDataDropped`` is False naming what is left.
    """
    if instance_id is None:
        return None
    previous = store.load().instance_id
    if previous == instance_id:
        return None
    kept: list[str] = []
    if previous is not None:
        log.warning("instance.changed", previous=previous, current=instance_id)
        kept = drop_instance_data(processes, files, paths)
        if kept:
            text = (
                f"the data of instance {previous} is still under "
                f"{paths.state_dir / 'data'}: {'; '.join(kept)}"
            )
            log.error("instance.data_kept", previous=previous, current=instance_id, kept=kept)
            return Condition(INSTANCE_CONDITION, ConditionStatus.FALSE, "NotRemoved", text)

    def upd(state: StoredState) -> None:
        if previous is not None:
            state.applied = {
                k: v for k, v in state.applied.items() if not k.startswith(FILE_PREFIX)
            }
        state.instance_id = instance_id

    store.update(upd)
    if previous is None:
        return None
    return Condition(
        INSTANCE_CONDITION,
        ConditionStatus.TRUE,
        "Removed",
        f"the data of instance {previous} was removed",
    )


def drop_instance_data(processes: ProcessControl, files: FileWriter, paths: Paths) -> list[str]:
    """Remove everything under data/: the children's directories through the runtime,
    the rest directly. What could not be removed, one text per entry."""
    kept: list[str] = []
    for name in OWN_DATA:
        try:
            processes.forget_data(name)
        except (TemporaryError, PermanentError) as e:
            kept.append(str(e))
    data = paths.state_dir / "data"
    try:
        others = sorted(p for p in data.iterdir() if p.name not in OWN_DATA)
    except FileNotFoundError:
        others = []
    except OSError as e:
        return [*kept, f"{data}: {e.strerror}"]
    for path in others:
        try:
            files.remove_tree(path)
        except OSError as e:
            kept.append(f"{path}: {e.strerror}")
    if not kept:
        # data/ itself holds nothing now; under systemd it may be root's (made for
        # the units' StateDirectory=) and stay, empty
        with contextlib.suppress(OSError):
            files.remove_dir(data)
    return kept
