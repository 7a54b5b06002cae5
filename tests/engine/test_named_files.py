"""``StateSpec.named_files()`` is the one list of the files a state names: the watcher,
the input fingerprint, the remote fetch, validation and the AWS side's reads use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ampd.daemon.loop import Daemon
from ampd.gateways.paths import Paths
from ampd.gateways.supervisor import Supervisor
from ampd.source.local import FileSource
from ampd.spec.load import load_spec
from ampd.wiring import reconciler

STATE: dict[str, Any] = {
    "version": 1,
    "workspace": {
        "alias": "a",
        "rule_groups": [{"name": "r1", "file": "/x/r1.yml"}, {"name": "r2", "file": "/x/r2.yml"}],
        "alertmanager": {"file": "/x/am.yml"},
    },
    "grafana": {
        "dashboards": ["/x/d1.json"],
        "datasource": {"auth": "keys", "credentials_file": "/x/creds"},
    },
}


def test_named_files_is_the_one_list_in_field_order() -> None:
    spec = load_spec(yaml.safe_dump(STATE), "s.yml").spec
    assert [(n.loc, n.path, n.kind, n.pushed) for n in spec.named_files()] == [
        (("workspace", "rule_groups", 0, "file"), "/x/r1.yml", "rules", True),
        (("workspace", "rule_groups", 1, "file"), "/x/r2.yml", "rules", True),
        (("workspace", "alertmanager", "file"), "/x/am.yml", "alertmanager", True),
        (("grafana", "dashboards", 0), "/x/d1.json", "dashboard", False),
        (("grafana", "datasource", "credentials_file"), "/x/creds", "credentials", False),
    ]
    assert load_spec("version: 1\n", "s.yml").spec.named_files() == ()


def test_the_watcher_and_the_fingerprint_include_the_credentials_file(tmp_path: Path) -> None:
    """An edit of the Grafana credentials file starts a pass at once (it used to wait for
    the resync timer: the watcher's own list left it out)."""
    creds = tmp_path / "creds"
    creds.write_text("AWS_ACCESS_KEY_ID=a\n")
    creds.chmod(0o600)
    state = dict(STATE, workspace=None)
    state["grafana"] = {"datasource": {"auth": "keys", "credentials_file": str(creds)}}
    path = tmp_path / "state.yml"
    path.write_text(yaml.safe_dump(state))
    source = FileSource(path, run_promtool=False)
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    rec = reconciler(source, paths, Supervisor(paths=paths), writes=False)
    rec.load_spec()
    assert rec.spec_error is None, rec.spec_error
    daemon = Daemon(source, Paths(tmp_path / "lib", tmp_path / "run"))
    assert creds in daemon._watch_targets(rec)
    assert creds in source.inputs()
    first = source.load()
    assert source.load() is first  # nothing changed: not checked again
    creds.write_text("AWS_ACCESS_KEY_ID=b\n")
    os.utime(creds, ns=(1, 1))  # a different mtime even on a coarse clock
    assert source.load() is not first  # the credentials file is an input
    rec.close()


def test_the_aws_side_gets_the_pushed_files_as_validated(tmp_path: Path) -> None:
    rules = tmp_path / "r.yml"
    rules.write_text("groups: []\n")
    state = {
        "version": 1,
        "workspace": {"alias": "a", "rule_groups": [{"name": "r", "file": str(rules)}]},
    }
    path = tmp_path / "state.yml"
    path.write_text(yaml.safe_dump(state))
    source = FileSource(path, run_promtool=False)
    source.load()
    rules.write_text("groups: [changed after validation]\n")
    assert source.pushed_files() == {str(rules): b"groups: []\n"}
