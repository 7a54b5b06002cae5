"""Command line: argument parsing and exit codes only (DESIGN §3)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ampd.errors import AmpdError, SpecError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ampd", description=__doc__)
    p.add_argument("--state", help="state file (env AMPD_STATE, default /etc/ampd/state.yml)")
    p.add_argument("--log-format", choices=["json", "console", "auto"], default="auto")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="the daemon (what the unit runs)")
    v = sub.add_parser("validate", help="check a state file; FILE:LINE:COL: messages")
    v.add_argument("file", nargs="?")
    v.add_argument("--no-promtool", action="store_true", help="skip promtool check rules")
    pl = sub.add_parser("plan", help="observe and plan once; change nothing (0 in sync, 2 pending)")
    pl.add_argument("--json", action="store_true")
    pl.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    ap = sub.add_parser("apply", help="one reconcile pass, then exit (0 converged, 2 partly)")
    ap.add_argument("--once", action="store_true", help="accepted for clarity; apply is one pass")
    ap.add_argument("--json", action="store_true")
    st = sub.add_parser("status", help="the running daemon's status (0 ok, 2 drift, 3 degraded)")
    st.add_argument("--json", action="store_true")
    pr = sub.add_parser("proxy", help="the SigV4 signing proxy alone")
    pr.add_argument("--config", help="proxy settings JSON (default: generated/proxy.json)")
    r = sub.add_parser("render", help="write every generated file; start nothing")
    r.add_argument("--out", help="directory (default: the state directory's generated/)")
    sub.add_parser("schema", help="JSON Schema of the state file")
    sub.add_parser("version", help="versions and runtime")
    ex = sub.add_parser("exec", help="exec a managed process from its generated command")
    ex.add_argument("name", choices=["prometheus", "sigv4-proxy", "grafana"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ampd.logs import configure_logging

    configure_logging(args.log_format, args.log_level)
    try:
        return _dispatch(args)
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return EXIT_ERROR
    except AmpdError as e:
        print(f"ampd: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from ampd.gateways.paths import resolve_paths, state_file_from_env

    cmd = args.command
    if cmd == "schema":
        from ampd.spec.schema import schema_json

        sys.stdout.write(schema_json())
        return EXIT_OK
    if cmd == "version":
        from ampd.daemon.info import version_info

        for k, val in version_info().items():
            print(f"{k}: {val}")
        return EXIT_OK
    if cmd == "validate":
        from ampd.observe.specfile import load_and_check

        path = Path(args.file) if args.file else state_file_from_env(args.state)
        load_and_check(path, run_promtool=not args.no_promtool)
        print(f"{path}: valid")
        return EXIT_OK
    if cmd == "exec":
        from ampd.daemon.execproc import exec_process

        return exec_process(args.name, resolve_paths())
    if cmd == "proxy":
        from ampd.proxy.server import main as proxy_main

        cfg = Path(args.config) if args.config else resolve_paths().generated / "proxy.json"
        return proxy_main(cfg)
    if cmd == "status":
        from ampd.report.statusview import status_command

        return status_command(resolve_paths().status, as_json=args.json)
    state = state_file_from_env(args.state)
    if cmd == "render":
        from ampd.daemon.oneshot import render_command

        return render_command(state, resolve_paths(), Path(args.out) if args.out else None)
    if cmd == "plan":
        from ampd.daemon.oneshot import plan_command

        return plan_command(state, resolve_paths(), as_json=args.json, color=args.color)
    if cmd == "apply":
        from ampd.daemon.oneshot import apply_command

        return apply_command(state, resolve_paths(), as_json=args.json)
    if cmd == "run":
        from ampd.daemon.loop import run_daemon

        return run_daemon(state, resolve_paths())
    raise AssertionError(cmd)


def dump_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
