"""``ampd exec NAME``: what a systemd child unit runs. Reads the generated command and
replaces itself with it, so one static unit serves every state file."""

from __future__ import annotations

import json
import os
import sys

from ampd.gateways.execcheck import untrusted
from ampd.gateways.paths import Paths


def exec_process(name: str, paths: Paths) -> int:
    cmd_file = paths.generated / f"{name}.cmd.json"
    try:
        data = json.loads(cmd_file.read_text())
        argv = [str(a) for a in data["argv"]]
        env = {**os.environ, **{str(k): str(v) for k, v in data.get("env", {}).items()}}
    except PermissionError as e:
        # The child's own user reads it as a member of group ampd (units/ampd.sysusers,
        # SupplementaryGroups= in its unit): say who could not.
        print(
            f"ampd exec {name}: cannot read {cmd_file} as uid {os.getuid()} "
            f"(groups {sorted(os.getgroups())}): {e.strerror}",
            file=sys.stderr,
        )
        return 1
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"ampd exec {name}: cannot read {cmd_file}: {e}", file=sys.stderr)
        return 1
    cwd = data.get("cwd")
    if cwd:
        try:
            os.chdir(str(cwd))
        except OSError as e:
            print(f"ampd exec {name}: cannot chdir to {cwd}: {e}", file=sys.stderr)
            return 1
    if not argv:
        print(f"ampd exec {name}: {cmd_file} has an empty argv", file=sys.stderr)
        return 1
    why = untrusted(argv[0])  # checked again here: the file was validated, then written
    if why is not None:
        print(f"ampd exec {name}: refusing to run {argv[0]}: {why}", file=sys.stderr)
        return 1
    os.execve(argv[0], argv, env)  # noqa: S606 - the command ampd rendered
    return 1  # not reached
