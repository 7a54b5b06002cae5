"""One uid per process, against a real systemd booted in a box (tests/harness/sysbox.py).

The daemon runs as ``ampd``, Prometheus as ``ampd-prometheus``, Grafana as
``ampd-grafana``, the proxy as ``ampd-proxy`` (units/ampd.sysusers, units/*.service).
Each child reads what ampd generated for it, and nothing of ampd's own: not ampd.json,
secrets/, source/, the state file, the daemon's /proc entries, nor (but Grafana) Grafana's
admin password. Two layers hold that, and each is tested alone: the modes (as the child's
user outside any sandbox) and the units' ``InaccessiblePaths=``/``ProtectProc=`` (the child
unit's own process, files opened up to 0644 first). Only ampd has the polkit grant.
Under the supervisor runtime, a root ampd starts each child as its user.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.harness.fixtures_systemd import (
    CHILD_UNITS,
    VENV_PYTHON,
    drive,
    install_standin,
)
from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

USERS = {
    "prometheus": "ampd-prometheus",
    "grafana": "ampd-grafana",
    "sigv4-proxy": "ampd-proxy",
}
UNIT = {name: f"ampd-{name}.service" for name in USERS}

# ampd's own files, as the daemon makes them (written through ampd's code below)
PRIVATE = [
    "/var/lib/ampd/ampd.json",
    "/var/lib/ampd/secrets/token",
    "/var/lib/ampd/source/state.yml",
    "/etc/ampd/state.yml",
]
GRAFANA_SECRET = "/var/lib/ampd/grafana-secrets/admin-password"

# Reads each path given and prints one JSON line: {path: "ok" | errno name}; then stays up.
PROBE = (
    "import errno, json, os, sys, time\n"
    "out = {}\n"
    "for p in sys.argv[1:]:\n"
    "    try:\n"
    "        open(p, 'rb').read(1); out[p] = 'ok'\n"
    "    except OSError as e:\n"
    "        out[p] = errno.errorcode.get(e.errno, str(e.errno))\n"
    "print('PROBE ' + json.dumps(out), flush=True)\n"
    "time.sleep(600)\n"
)

MAKE_AMPD_FILES = """
import os
from pathlib import Path
from ampd.gateways import grafana
from ampd.gateways.files import FileWriter, atomic_write
from ampd.gateways.store import Store, StoredState
state = Path("/var/lib/ampd")
Store(state / "ampd.json").save(StoredState())
(state / "secrets").mkdir(mode=0o700, exist_ok=True)
atomic_write(state / "secrets" / "token", b"secret\\n", 0o600)
atomic_write(state / "source" / "state.yml", b"version: 1\\n", 0o600)
atomic_write(state / "generated" / "prometheus.yml", b"global: {}\\n")
grafana.ensure_admin_password(state, FileWriter())
"""


def make_ampd_files(box: SysBox) -> None:
    """ampd.json, secrets/, source/, generated/ and Grafana's admin password, written as
    the ampd user by ampd's own code (with ampd.service's UMask=0027), where the package
    (tmpfiles) left the directories."""
    box.write_file("/etc/ampd/state.yml", "version: 1\n", mode=0o640)
    box.run("chgrp", "-R", "ampd", "/etc/ampd").check()
    box.run("chmod", "0750", "/etc/ampd").check()
    script = f"umask 027; exec {VENV_PYTHON} -c '{MAKE_AMPD_FILES}'"
    box.run("/bin/sh", "-c", script, user="ampd").check()


# Every one of ampd's files opened up to all, to see the units' sandbox hold alone.
LOOSEN = (
    "chmod 0644 /var/lib/ampd/ampd.json /var/lib/ampd/secrets/token"
    " /var/lib/ampd/source/state.yml /etc/ampd/state.yml "
    + "/var/lib/ampd/grafana-secrets/admin-password"
    " && chmod 0755 /var/lib/ampd/secrets /var/lib/ampd/source /etc/ampd"
    " /var/lib/ampd/grafana-secrets"
)


def uid_of(box: SysBox, user: str) -> int:
    return int(box.run("id", "-u", user).check().stdout)


def gid_of(box: SysBox, group: str) -> int:
    return int(box.run("getent", "group", group).check().stdout.split(":")[2])


def proc_ids(box: SysBox, pid: str) -> tuple[int, set[int]]:
    """(real uid, supplementary groups) of a process in the box."""
    status = box.path(f"/proc/{pid}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1)  # type: ignore[union-attr]
    return uid, {int(g) for g in groups.split()}


def probe_result(box: SysBox, unit: str) -> dict[str, str]:
    def found() -> dict[str, str] | None:
        log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout
        for line in log.splitlines():
            if line.startswith("PROBE "):
                result: dict[str, str] = json.loads(line.removeprefix("PROBE "))
                return result
        return None

    return wait_for(
        found, 30, what=f"{unit} probed its reads", retry_on=(), detail=lambda: box.journal(unit)
    )


def probe(name: str, paths: list[str]) -> dict[str, Any]:
    return {"name": name, "argv": ["/usr/bin/python3", "-c", PROBE, *paths], "env": {}}


def daemon_pid(box: SysBox) -> str:
    """A running ampd.service (the stand-in daemon: same unit, same user, same sandbox)."""
    install_standin(box, {})
    box.run("systemctl", "start", "ampd.service", timeout=60).check()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")
    return box.show("ampd.service", "MainPID")["MainPID"]


def test_each_child_runs_as_its_own_user_and_its_unit_hides_ampd_s_files(
    ampd_box: SysBox,
) -> None:
    box = ampd_box
    make_ampd_files(box)
    box.sh(LOOSEN).check()  # only the units' sandbox stands in the way now
    ampd = daemon_pid(box)
    environ = f"/proc/{ampd}/environ"
    generated = "/var/lib/ampd/generated/prometheus.yml"
    wanted = [*PRIVATE, GRAFANA_SECRET, environ, generated]
    # ampd (the stand-in, through the real SystemdRuntime) starts the three children
    box.write_file("/etc/ampd/standin.json", json.dumps({n: probe(n, wanted) for n in USERS}))
    box.run("systemctl", "reload", "ampd.service").check()
    ampd_gid = gid_of(box, "ampd")
    uids = set()
    for name, user in USERS.items():
        unit = UNIT[name]
        box.wait_for(unit, ActiveState="active")
        pid = box.show(unit, "MainPID")["MainPID"]
        uid, groups = proc_ids(box, pid)
        assert uid == uid_of(box, user), (unit, uid)
        assert ampd_gid in groups, (unit, groups)  # reads generated/ as group ampd
        uids.add(uid)
        seen = probe_result(box, unit)
        assert seen[generated] == "ok", (unit, seen)
        for path in PRIVATE:
            assert seen[path] == "EACCES", (unit, path, seen)  # InaccessiblePaths=
        # ProtectProc=invisible and another uid: the daemon's /proc entry is not there
        assert seen[environ] == "ENOENT", (unit, seen)
        assert seen[GRAFANA_SECRET] == ("ok" if name == "grafana" else "EACCES"), (unit, seen)
    assert len(uids) == 3 and uid_of(box, "ampd") not in uids
    box.run("systemctl", "stop", "ampd.service", timeout=60).check()
    for unit in CHILD_UNITS:
        box.wait_for(unit, ActiveState="inactive")


def test_modes_alone_keep_the_child_users_out(ampd_box: SysBox) -> None:
    """As each child's user with its groups, outside any unit's sandbox: the modes the
    daemon and the package give ampd's files are enough on their own."""
    box = ampd_box
    make_ampd_files(box)
    ampd = daemon_pid(box)
    check = PROBE.replace("time.sleep(600)\n", "")
    for name, user in USERS.items():
        done = box.run(
            "/usr/bin/python3",
            "-c",
            check,
            *PRIVATE,
            GRAFANA_SECRET,
            f"/proc/{ampd}/environ",
            "/var/lib/ampd/generated/prometheus.yml",
            user=user,
        ).check()
        seen = json.loads(done.stdout.removeprefix("PROBE "))
        for path in PRIVATE:
            if path == "/etc/ampd/state.yml":
                # root:ampd 0640 (DESIGN §4), and the children are in group ampd to read
                # generated/: outside its unit a child's user reads the state file (names
                # and ARNs, no credentials); its unit hides it (the test above).
                assert seen[path] == "ok", (user, seen)
                continue
            assert seen[path] == "EACCES", (user, path, seen)
        assert seen[f"/proc/{ampd}/environ"] == "EACCES", (user, seen)
        assert seen[GRAFANA_SECRET] == ("ok" if name == "grafana" else "EACCES"), (user, seen)
        assert seen["/var/lib/ampd/generated/prometheus.yml"] == "ok", (user, seen)
        # nor can it signal the daemon
        killed = box.run("kill", "-0", ampd, user=user)
        assert killed.returncode != 0 and "not permitted" in killed.stderr, killed.stderr
    assert box_stat(box, "/var/lib/ampd/grafana-secrets") == "ampd ampd-grafana 750"
    assert box_stat(box, GRAFANA_SECRET) == "ampd ampd 640"


def box_stat(box: SysBox, path: str) -> str:
    return box.run("stat", "-c", "%U %G %a", path).check().stdout.strip()


def test_only_ampd_may_start_and_stop_the_child_units(ampd_box: SysBox) -> None:
    box = ampd_box
    box.write_file(
        "/var/lib/ampd/generated/sigv4-proxy.cmd.json",
        '{"argv": ["/bin/sleep", "600"], "env": {}}',
        mode=0o640,
    )
    box.run("chown", "-R", "ampd:ampd", "/var/lib/ampd/generated").check()
    for user in USERS.values():
        for verb in ("start", "stop", "restart", "reload", "clean", "set-property"):
            args = ["--runtime", "IPAddressDeny="] if verb == "set-property" else []
            for unit in CHILD_UNITS:
                done = box.run("systemctl", "--no-ask-password", verb, unit, *args, user=user)
                assert done.returncode != 0, (user, verb, unit)
                # clean: systemd 252's bus refuses CleanUnit from all but ampd
                # (units/ampd-dbus.conf); a bus that passes it on leaves it to polkit
                refused: tuple[str, ...] = ("authentication required",)
                if verb == "clean":
                    refused += ("access denied",)
                assert any(r in done.stderr.lower() for r in refused), done.stderr
    box.run("systemctl", "start", "ampd-sigv4-proxy.service", user="ampd").check()
    box.wait_for("ampd-sigv4-proxy.service", ActiveState="active")
    box.run("systemctl", "stop", "ampd-sigv4-proxy.service", user="ampd").check()


def test_a_command_file_the_child_cannot_read_fails_naming_its_uid(ampd_box: SysBox) -> None:
    box = ampd_box
    box.write_file(
        "/etc/systemd/system/ampd-prometheus.service.d/once.conf", "[Service]\nRestart=no\n"
    )
    box.run("systemctl", "daemon-reload").check()
    drive(box, [("start", probe("prometheus", []))])
    box.wait_for(UNIT["prometheus"], ActiveState="active")
    drive(box, [("stop", "prometheus")])
    box.run("chmod", "0600", "/var/lib/ampd/generated/prometheus.cmd.json").check()
    box.run("systemctl", "start", UNIT["prometheus"], user="ampd").check()
    box.wait_for(UNIT["prometheus"], timeout=30, ActiveState="failed")
    log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT["prometheus"]).stdout
    uid = uid_of(box, "ampd-prometheus")
    assert f"cannot read /var/lib/ampd/generated/prometheus.cmd.json as uid {uid}" in log, log


# -- the supervisor runtime, ampd as root --------------------------------------------------

# The child under the supervisor: writes into its data directory, then reports on stderr
# its uid, gid, groups and parent-death signal, and what it could read.
SUPERVISED = (
    "import ctypes, errno, json, os, sys\n"
    "s = ctypes.c_int(); ctypes.CDLL('libc.so.6').prctl(2, ctypes.byref(s))\n"
    "open(sys.argv[1] + '/mine', 'w').write('x')\n"
    "out = {}\n"
    "for p in sys.argv[2:]:\n"
    "    try:\n"
    "        open(p, 'rb').read(1); out[p] = 'ok'\n"
    "    except OSError as e:\n"
    "        out[p] = errno.errorcode.get(e.errno, str(e.errno))\n"
    "print('IDS', os.getuid(), os.getgid(), sorted(os.getgroups()), s.value, file=sys.stderr)\n"
    "print('PROBE ' + json.dumps(out), file=sys.stderr)\n"
)

# A root ampd's supervisor runtime, with files as a root ampd writes them.
SUPERVISE = """
import json, os, sys, time
from pathlib import Path
from ampd.gateways.files import atomic_write
from ampd.gateways.runtime import Command
from ampd.gateways.store import Store, StoredState
from ampd.gateways.supervisor import Supervisor
state = Path(os.environ["STATE_DIRECTORY"])
Store(state / "ampd.json").save(StoredState())
(state / "secrets").mkdir(mode=0o700, parents=True)
atomic_write(state / "secrets" / "token", b"secret\\n", 0o600)
atomic_write(state / "generated" / "prometheus.yml", b"global: {}\\n")
paths = [str(state / p) for p in ("ampd.json", "secrets/token", "generated/prometheus.yml")]
data = state / "data" / "prometheus"
sup = Supervisor()
sup.start(Command("prometheus", ("/usr/bin/python3", "-c", sys.argv[1], str(data), *paths)))
deadline = time.monotonic() + 20
while sup.observe("prometheus").running and time.monotonic() < deadline:
    time.sleep(0.05)
later = state / "generated" / "later.yml"
atomic_write(later, b"x\\n")
st, dst = later.stat(), data.stat()
print(json.dumps({
    "stderr": list(sup.observe("prometheus").last_stderr),
    "later_gid": st.st_gid,
    "data_owner": [dst.st_uid, dst.st_gid, oct(dst.st_mode & 0o7777)],
    "mine_uid": (data / "mine").stat().st_uid,
}))
"""


def test_a_root_supervisor_starts_the_child_as_its_own_user(ampd_box: SysBox) -> None:
    box = ampd_box
    done = box.run(
        VENV_PYTHON,
        "-c",
        SUPERVISE,
        SUPERVISED,
        env={"STATE_DIRECTORY": "/srv/ampd-sup"},
        timeout=60,
    ).check()
    out = json.loads(done.stdout.strip().splitlines()[-1])
    stderr = "\n".join(out["stderr"])
    ids = re.search(r"IDS (\d+) (\d+) \[([\d, ]*)\] (\d+)", stderr)
    assert ids, stderr
    uid, gid = uid_of(box, "ampd-prometheus"), gid_of(box, "ampd-prometheus")
    assert (int(ids.group(1)), int(ids.group(2))) == (uid, gid)
    assert gid_of(box, "ampd") in {int(g) for g in ids.group(3).split(",") if g.strip()}
    assert ids.group(4) == "15"  # SIGTERM when ampd dies: set after the switch of uid
    seen = json.loads(re.search(r"PROBE (\{.*\})", stderr).group(1))  # type: ignore[union-attr]
    state = "/srv/ampd-sup"
    assert seen[f"{state}/generated/prometheus.yml"] == "ok", seen
    assert seen[f"{state}/ampd.json"] == "EACCES", seen
    assert seen[f"{state}/secrets/token"] == "EACCES", seen
    assert out["data_owner"] == [uid, gid, "0o750"]  # its data directory is its own
    assert out["mine_uid"] == uid
    assert out["later_gid"] == gid_of(box, "ampd")  # generated/ keeps handing files over
