"""Command line: argument parsing and exit codes only (DESIGN §3)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ampd.errors import AmpdError, SpecError

if TYPE_CHECKING:
    from ampd.engine.source import SpecSource
    from ampd.gateways.paths import Paths

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


LOCK_WAIT = 10.0  # default --lock-wait: longer than a daemon's pass usually takes
APPLY_WAIT = 600.0  # default apply --wait: a new AMP workspace is ACTIVE within minutes
REMOTE_PREFIXES = ("ssm:", "s3:/", "appconfig:")  # --state values that are not a path


def _lock_wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-wait",
        type=float,
        default=LOCK_WAIT,
        metavar="SECONDS",
        help=f"wait this long for a running ampd's pass to end (default {LOCK_WAIT:g})",
    )


def _fleet_size(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hosts (1 or more)")
    return n


def _parser() -> argparse.ArgumentParser:
    # Long on purpose: the whole command line, one block per command.
    p = argparse.ArgumentParser(prog="ampd", description=__doc__)
    p.add_argument(
        "--state",
        help="state file, ssm:NAME or s3://BUCKET/KEY (env AMPD_STATE; /etc/ampd/state.yml)",
    )
    p.add_argument(
        "--region",
        help="region of an ssm:/s3:// state (default: AWS_REGION, AWS_DEFAULT_REGION, IMDS)",
    )
    p.add_argument("--log-format", choices=["json", "console", "auto"], default="auto")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="the daemon (what the unit runs)")
    v = sub.add_parser(
        "validate", help="check a state file, ssm:NAME or s3://BUCKET/KEY; FILE:LINE:COL: messages"
    )
    v.add_argument("file", nargs="?")
    v.add_argument("--no-promtool", action="store_true", help="skip promtool check rules")
    pl = sub.add_parser("plan", help="observe and plan once; change nothing (0 in sync, 2 pending)")
    pl.add_argument("--json", action="store_true")
    pl.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    pl.add_argument(
        "--fleet-size",
        type=_fleet_size,
        metavar="N",
        help="hosts running this state: AMP's tiers apply to the fleet's total "
        "(default: cost.fleet_size, else 1)",
    )
    ap = sub.add_parser("apply", help="reconcile once, then exit (0 converged, 2 partly)")
    ap.add_argument("--once", action="store_true", help="accepted for clarity; apply never loops")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=APPLY_WAIT,
        default=APPLY_WAIT,
        metavar="TIMEOUT",
        help="pass again while AWS is still creating or updating what was applied, showing "
        f"what it waits for, up to TIMEOUT seconds (default {APPLY_WAIT:g}; 0: one pass); "
        "still in progress then exits 2",
    )
    ap.add_argument(
        "--settle", type=float, dest="wait", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    _lock_wait_option(ap)
    ap.add_argument(
        "--over-budget",
        action="store_true",
        help="apply although the ingest estimate is over the state's budget",
    )
    ap.add_argument(
        "--accept",
        metavar="VERSION",
        help="apply this version of an ssm:/s3:// state although the guard holds it",
    )
    st = sub.add_parser("status", help="the running daemon's status (0 ok, 2 drift, 3 degraded)")
    st.add_argument("--json", action="store_true")
    pr = sub.add_parser("proxy", help="the SigV4 signing proxy alone")
    pr.add_argument("--config", help="proxy settings JSON (default: generated/proxy.json)")
    r = sub.add_parser("render", help="write every generated file; start nothing")
    r.add_argument("--out", help="directory (default: the state directory's generated/)")
    _lock_wait_option(r)
    sc = sub.add_parser("schema", help="JSON Schema of the state file")
    sc.add_argument(
        "--appconfig",
        action="store_true",
        help="as an AWS AppConfig JSON_SCHEMA validator (draft-04, minified, within its size)",
    )
    sub.add_parser("version", help="versions and runtime")
    bk = sub.add_parser("bake", help="prepare an image: drop per-instance state, keep fleet facts")
    bk.add_argument("--json", action="store_true")
    bk.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    _lock_wait_option(bk)
    ex = sub.add_parser("exec", help="exec a managed process from its generated command")
    ex.add_argument("name", choices=["prometheus", "sigv4-proxy", "grafana"])
    ad = sub.add_parser("adopt", help="make an existing IAM role/instance profile this stack's")
    ad.add_argument("kind", choices=["iam_role", "instance_profile"])
    ad.add_argument("name")
    ad.add_argument("--yes", action="store_true", help="adopt without asking (after the diff)")
    po = sub.add_parser("policy", help="print the least-privilege IAM policy a role needs")
    po.add_argument("kind", choices=["manage", "observe", "host", "boundary"])
    po.add_argument("--account", help="account id (default: STS, which needs no permission)")
    po.add_argument("--workspace-id", help="default: workspace.id or ampd.json's record")
    po.add_argument("--role", help="observe: the host's own role (default: iam.writer's)")
    return p


def prepare_environment() -> None:
    """Instance metadata and loopback never go through ``*_proxy`` (botocore's IMDS
    client honours ``no_proxy``; ampd's own requests ignore proxies anyway)."""
    from ampd.gateways.imds import keep_off_proxies

    keep_off_proxies()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ampd.logs import configure_logging

    configure_logging(args.log_format, args.log_level)
    prepare_environment()
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
    if cmd == "schema" and args.appconfig:
        from ampd.spec.appconfig_schema import appconfig_schema_json

        try:
            text = appconfig_schema_json()
        except ValueError as e:  # over AppConfig's size, or a keyword without a draft-04 form
            print(f"ampd: {e}", file=sys.stderr)
            return EXIT_ERROR
        sys.stdout.write(text)
        return EXIT_OK
    if cmd == "schema":
        from ampd.spec.schema import schema_json

        sys.stdout.write(schema_json())
        return EXIT_OK
    if cmd == "version":
        from ampd.commands.info import version_info

        for k, val in version_info().items():
            print(f"{k}: {val}")
        return EXIT_OK
    if cmd == "validate":
        from ampd.source.open import open_source

        raw = args.file or args.state or str(state_file_from_env(None))
        src = open_source(raw, None, run_promtool=not args.no_promtool, region=args.region)
        try:
            src.load()  # a file or a remote document, checked alike; nothing is written
        finally:
            src.close()
        print(f"{src.name}: valid")
        return EXIT_OK
    if cmd == "bake" and not args.dry_run:
        return _locked(args)
    if cmd == "bake":
        from ampd.commands.bake import bake_command

        return bake_command(resolve_paths(), as_json=args.json, dry_run=True)
    if cmd == "exec":
        from ampd.commands.execproc import exec_process

        return exec_process(args.name, resolve_paths())
    if cmd == "proxy":
        from ampd.proxy.run import main as proxy_main

        cfg = Path(args.config) if args.config else resolve_paths().generated / "proxy.json"
        return proxy_main(cfg)
    if cmd == "status":
        from ampd.engine.statusview import status_command

        return status_command(resolve_paths().status, as_json=args.json)
    if cmd in ("apply", "render"):
        return _locked(args)
    return _state_command(args)


def _locked(args: argparse.Namespace) -> int:
    """``apply``, ``render`` and ``bake`` write into the state directory: one writer at a
    time, so they wait (``--lock-wait``) for a running daemon's pass, or refuse naming its
    holder."""
    import contextlib

    from ampd.gateways.paths import resolve_paths
    from ampd.gateways.statelock import LockUnavailable, hold

    def waiting(who: str) -> None:
        print(f"ampd: waiting for the state directory ({who or 'in use'})", file=sys.stderr)

    state_dir = resolve_paths().state_dir
    out_only = args.command == "render" and args.out is not None
    if out_only and not state_dir.exists():
        return _state_command(args)  # no state directory: nobody to wait for, none made
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                hold(
                    state_dir,
                    wait=args.lock_wait,
                    who=f"ampd {args.command}",
                    on_wait=waiting,
                    hint=" (--lock-wait SECONDS waits longer)",
                )
            )
        except LockUnavailable:
            # ``render --out`` writes only into --out: a state directory this user cannot
            # write is one it only reads (atomically replaced files), as before.
            if not out_only:
                raise
        return _state_command(args)
    raise AssertionError("unreachable")


def _state_command(args: argparse.Namespace) -> int:
    from ampd.gateways.paths import resolve_paths

    cmd = args.command
    if cmd == "bake":
        from ampd.commands.bake import bake_command

        return bake_command(resolve_paths(), as_json=args.json, dry_run=False)
    accept = args.accept if cmd == "apply" else None
    state = _state(args.state, cmd, resolve_paths(), args.region, accept)
    try:
        return _with_state(args, state)
    finally:
        state.close()  # a read-only remote state's scratch copies go


def _with_state(args: argparse.Namespace, state: SpecSource) -> int:
    from ampd.gateways.paths import resolve_paths

    cmd = args.command
    if cmd == "render":
        from ampd.commands.oneshot import render_command

        return render_command(state, resolve_paths(), Path(args.out) if args.out else None)
    if cmd == "plan":
        from ampd.commands.oneshot import plan_command

        return plan_command(
            state,
            resolve_paths(),
            as_json=args.json,
            color=args.color,
            fleet_size=args.fleet_size,
        )
    if cmd == "apply":
        from ampd.commands.oneshot import apply_command

        return apply_command(
            state,
            resolve_paths(),
            as_json=args.json,
            wait=args.wait,
            allow_over_budget=args.over_budget,
        )
    if cmd == "adopt":
        from ampd.commands.adopt import adopt_main

        return adopt_main(state, args.kind, args.name, yes=args.yes, region=args.region)
    if cmd == "policy":
        from ampd.commands.policy import policy_main

        return policy_main(
            state,
            resolve_paths(),
            args.kind,
            account=args.account,
            region=args.region,
            workspace_id=args.workspace_id,
            role=args.role,
        )
    if cmd == "run":
        from ampd.daemon.loop import run_daemon

        return run_daemon(state, resolve_paths())
    raise AssertionError(cmd)


def _state(
    cli_value: str | None,
    cmd: str,
    paths: Paths,
    region: str | None = None,
    accept: str | None = None,
) -> SpecSource:
    """The state the command line names, opened: a file, or an ``ssm:``/``s3://``
    document. Only ``run`` and ``apply`` hand the source a file writer (it keeps its last
    good copy under the state directory); ``plan`` and ``render`` only read that copy.
    ``apply --accept VERSION`` records that the operator accepts that version (held by
    the destructive-change guard) before it looks."""
    from ampd.gateways.paths import state_file_from_env

    raw = cli_value or os.environ.get("AMPD_STATE")
    if not raw or not raw.startswith(REMOTE_PREFIXES):  # a file: no remote loader imported
        if accept is not None:
            why = "a local file is applied as is"
            raise AmpdError(f"--accept is for a remote (ssm:, s3://, appconfig:) state; {why}")
        from ampd.source.local import FileSource

        return FileSource(state_file_from_env(cli_value))
    from ampd.gateways.files import FileWriter
    from ampd.source.open import open_remote
    from ampd.source.specfile import source_name

    remote = source_name(raw)
    assert remote is not None
    files = FileWriter() if cmd in {"run", "apply"} else None
    src = open_remote(remote, paths.state_dir / "source", files=files, region=region)
    if accept is not None:
        src.accept(accept)
    return src


def dump_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
