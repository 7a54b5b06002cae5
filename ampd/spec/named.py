"""The files a state names (``StateSpec.named_files()``): one list for the watcher, the
input fingerprint, the remote fetch, validation and the AWS side's file reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ampd.spec.models import StateSpec

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class NamedFile:
    """A file the state names: where (the field path), which file, and what it is."""

    loc: Loc
    path: str
    kind: Literal["rules", "alertmanager", "dashboard", "credentials"]

    @property
    def pushed(self) -> bool:
        """Its bytes go to AWS (and come from beside a remote state)."""
        return self.kind in ("rules", "alertmanager")


def named_files(spec: StateSpec) -> tuple[NamedFile, ...]:
    out: list[NamedFile] = []
    ws = spec.workspace
    if ws is not None:
        for i, group in enumerate(ws.rule_groups):
            if group.file is not None:  # else its content is in the state itself
                loc: Loc = ("workspace", "rule_groups", i, "file")
                out.append(NamedFile(loc, group.file, "rules"))
        if ws.alertmanager is not None and ws.alertmanager.file is not None:
            loc = ("workspace", "alertmanager", "file")
            out.append(NamedFile(loc, ws.alertmanager.file, "alertmanager"))
    g = spec.grafana
    if g is not None:
        for i, d in enumerate(g.dashboards):
            out.append(NamedFile(("grafana", "dashboards", i), d, "dashboard"))
        cred = g.datasource.credentials_file
        if cred is not None:
            loc = ("grafana", "datasource", "credentials_file")
            out.append(NamedFile(loc, cred, "credentials"))
    return tuple(out)
