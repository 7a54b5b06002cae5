"""One uid per process, the parts that need no systemd: where Grafana's admin password
lives, and the supervisor runtime on a host without the package's users (this one: it has
no ``ampd-*`` users, and the tests never create them; tests/test_systemd_users.py runs a
root supervisor where they exist)."""

from __future__ import annotations

import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from ampd.gateways import grafana
from ampd.gateways.runtime import Command
from ampd.gateways.supervisor import Supervisor
from ampd.gateways.users import PROCESS_USERS, process_user


def test_the_admin_password_lives_where_only_ampd_and_grafana_read_it(tmp_path: Path) -> None:
    password = grafana.ensure_admin_password(tmp_path)
    path = grafana.admin_password_file(tmp_path)
    assert path == tmp_path / "grafana-secrets" / "admin-password"
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    assert not (tmp_path / "secrets").exists()  # ampd's own, and Grafana's no more
    assert grafana.ensure_admin_password(tmp_path) == password  # made once


def test_a_password_from_before_is_moved_not_made_anew(tmp_path: Path) -> None:
    """Grafana's database holds the password since its first start: a new one would lock
    ampd out of the admin API."""
    legacy = tmp_path / "secrets" / "grafana-admin-password"
    legacy.parent.mkdir(mode=0o700)
    legacy.write_text("from-before\n")
    legacy.chmod(0o600)
    assert grafana.ensure_admin_password(tmp_path) == "from-before"
    assert not legacy.exists()
    moved = grafana.admin_password_file(tmp_path)
    assert moved.read_text() == "from-before\n"
    assert stat.S_IMODE(moved.stat().st_mode) == 0o640
    assert grafana.admin_password(tmp_path) == "from-before"


def test_without_the_package_s_users_children_run_as_ampd_s_own_user(tmp_path: Path) -> None:
    for name, user in PROCESS_USERS.items():
        with pytest.raises(KeyError):
            pwd.getpwnam(user)  # this host has no such user (the package was not installed)
        assert process_user(name, "supervisor").own is False
    out = tmp_path / "ids"
    sup = Supervisor()
    script = f"import os; open({str(out)!r}, 'w').write(f'{{os.getuid()}} {{os.getgid()}}')"
    sup.start(Command("prometheus", ("/usr/bin/python3", "-c", script)))
    deadline = time.monotonic() + 10
    while sup.observe("prometheus").running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sup.observe("prometheus").last_exit == 0
    assert out.read_text() == f"{os.geteuid()} {os.getegid()}"
    # and nothing was handed over: no data directory made, nothing chowned
    assert not (tmp_path / "data").exists()
