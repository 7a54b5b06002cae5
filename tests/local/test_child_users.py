"""One uid per process, the parts that need no systemd: where Grafana's admin password
lives, and the supervisor runtime on a host without the package's users (this one: it has
no ``ampd-*`` users, and the tests never create them; tests/local/test_systemd_users.py runs a
root supervisor where they exist)."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from ampd.gateways import grafana
from ampd.gateways.files import FileWriter
from ampd.gateways.runtime import Command
from ampd.gateways.supervisor import Supervisor
from ampd.gateways.users import PROCESS_USERS, process_user
from tests.harness.wait import wait_for


def test_the_admin_password_lives_where_only_ampd_and_grafana_read_it(tmp_path: Path) -> None:
    password = grafana.ensure_admin_password(tmp_path, FileWriter())
    path = grafana.admin_password_file(tmp_path)
    assert path == tmp_path / "grafana-secrets" / "admin-password"
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    assert not (tmp_path / "secrets").exists()  # ampd's own, and Grafana's no more
    assert grafana.ensure_admin_password(tmp_path, FileWriter()) == password  # made once


def test_a_password_from_before_is_moved_not_made_anew(tmp_path: Path) -> None:
    """Grafana's database holds the password since its first start: a new one would lock
    ampd out of the admin API."""
    legacy = tmp_path / "secrets" / "grafana-admin-password"
    legacy.parent.mkdir(mode=0o700)
    legacy.write_text("from-before\n")
    legacy.chmod(0o600)
    assert grafana.ensure_admin_password(tmp_path, FileWriter()) == "from-before"
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
    wait_for(lambda: not sup.observe("prometheus").running, 10, 0.02, "the child to exit")
    assert sup.observe("prometheus").last_exit == 0
    assert out.read_text() == f"{os.geteuid()} {os.getegid()}"
    # and nothing was handed over: no data directory made, nothing chowned
    assert not (tmp_path / "data").exists()


def test_a_root_supervisor_keeps_a_child_it_cannot_hand_the_state_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state directory under a directory only root may enter (pytest's own tmp, /root)
    cannot be read by a child's user: the child then runs as ampd's own user, and every
    caller (the proxy's allowed users, the owner checks) is told so. Here `nobody` stands
    in for a packaged user (this host has none)."""
    from ampd.gateways import users  # noqa: PLC0415 (patched below)

    if os.geteuid() != 0:
        pytest.fail("the supervisor switches users only as root: run the suite as root")
    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(users, "PROCESS_USERS", {"prometheus": "nobody"})
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("STATE_DIRECTORY", str(private / "state"))
    assert not users.can_enter_below(private / "state", nobody.pw_uid, {nobody.pw_gid})
    shut_out = users.process_user("prometheus", "supervisor")
    assert (shut_out.uid, shut_out.own) == (0, False), shut_out

    open_dir = Path("/var/tmp") / f"ampd-users-{os.getpid()}"
    open_dir.mkdir(mode=0o755)
    try:
        monkeypatch.setenv("STATE_DIRECTORY", str(open_dir / "state"))
        assert users.can_enter_below(open_dir / "state", nobody.pw_uid, {nobody.pw_gid})
        handed = users.process_user("prometheus", "supervisor")
        assert (handed.uid, handed.own) == (nobody.pw_uid, True), handed
        assert users.process_user("prometheus", "systemd").uid == nobody.pw_uid  # always
    finally:
        open_dir.rmdir()
