"""Generated state documents through the ``ssm:`` and ``s3://`` sources (the AWS emulator,
moto behind it).

- ``ampd validate ssm:NAME`` / ``s3://B/K`` in process: no traceback, exit 0 or 1, every
  problem ``SOURCE:LINE:COL: message``; every 25th case also through ``ampd.cli.main``.
  CI: 300 cases; ``AMPD_SOURCE_FUZZ_EXAMPLES=10000`` for the long run.
- a running daemon that follows ``ssm:NAME``, fed one broken version after another (SIGHUP
  makes it look at once instead of after its 5 s poll interval): the same Prometheus, the
  same prometheus.yml, ``StateSourceValid=False`` with the position. CI: 50 versions;
  ``AMPD_SOURCE_DAEMON_FUZZ_CASES=500`` for the long run.

Documents go to S3 as bytes, and to SSM when they are UTF-8 text SSM accepts (1-8,192
characters); the rest go to S3 only.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ampd.cli import main
from ampd.errors import AmpdError, SpecError
from ampd.gateways.statesource import SourceFetcher, parse_ref
from ampd.source.open import open_source
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port, prometheus_pids
from tests.harness.fuzzgen import KINDS, SEED, fuzz_settings, run_timed, state_file, state_files
from tests.harness.wait import wait_for

EXAMPLES = int(os.environ.get("AMPD_SOURCE_FUZZ_EXAMPLES", "300"))
DAEMON_CASES = int(os.environ.get("AMPD_SOURCE_DAEMON_FUZZ_CASES", "50"))
FUZZ = fuzz_settings(EXAMPLES)
CLI_EVERY = 25
BUCKET = "fuzz-states"
SSM_MAX = 8192  # characters, advanced tier


def ssm_text(data: bytes) -> str | None:
    """The document as SSM can hold it, or None when SSM cannot."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if 0 < len(text) <= SSM_MAX and "\0" not in text else None


def check(name: str, rc: int, out: str, err: str) -> None:
    assert rc in (0, 1), f"exit {rc}"
    assert "Traceback" not in out + err
    if rc == 0:
        assert (out, err) == (f"{name}: valid\n", "")
        return
    lines = err.splitlines()
    assert lines, "exit 1 without a problem"
    where = re.compile(rf"^{re.escape(name)}:[1-9]\d*:[1-9]\d*: \S")
    for line in lines:
        assert where.match(line), f"not SOURCE:LINE:COL: {line[:300]!r}"


def validate(name: str, fetcher: SourceFetcher) -> tuple[int, str, str]:
    """What ``ampd validate --no-promtool SOURCE`` does, minus argparse and a new boto3
    client per call: the function behind the command and its error handling."""
    src = open_source(name, None, run_promtool=False, fetcher=fetcher)
    try:
        src.load()
    except SpecError as e:
        return 1, "", f"{e}\n"
    except AmpdError as e:
        return 1, "", f"ampd: {e}\n"
    finally:
        src.close()
    return 0, f"{name}: valid\n", ""


def cli_validate(name: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--log-level", "error", "validate", "--no-promtool", name])
    structlog.reset_defaults()
    return rc, out.getvalue(), err.getvalue()


def test_generated_states_through_ssm_and_s3(aws_emulator_env: AwsEnv) -> None:
    ssm, s3 = boto3.client("ssm"), boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_emulator_env.region}
    )
    fetcher = SourceFetcher()
    seen: Counter[str] = Counter()
    exits: Counter[int] = Counter()

    @FUZZ
    @given(state_files())
    def one(case: tuple[str, bytes]) -> None:
        kind, data = case
        n = sum(exits.values())
        text = ssm_text(data)
        if n % 2 == 0 and text is not None:
            ssm.put_parameter(
                Name="/fuzz/ampd", Value=text, Type="String", Tier="Advanced", Overwrite=True
            )
            name, where = "ssm:/fuzz/ampd", "ssm"
        else:
            s3.put_object(Bucket=BUCKET, Key="fuzz/state.yml", Body=data)
            name, where = f"s3://{BUCKET}/fuzz/state.yml", "s3"
        rc, out, err = validate(name, fetcher)
        check(name, rc, out, err)
        if n % CLI_EVERY == 0:
            assert cli_validate(name) == (rc, out, err)
        seen[where] += 1
        seen[kind] += 1
        exits[rc] += 1

    wall, cpu = run_timed(one)
    total = seen["ssm"] + seen["s3"]
    print(
        f"\nsource fuzz: {total} cases ({seen['ssm']} ssm, {seen['s3']} s3), {wall:.1f} s wall,"
        f" {cpu:.1f} s CPU; exits {dict(exits)}"
    )
    assert total >= EXAMPLES
    assert seen["ssm"] > EXAMPLES // 4 and seen["s3"] > EXAMPLES // 4
    assert exits[0] > 0 and exits[1] > 0


_PIECES = st.sampled_from(
    ["..", ".", "", "rules", "node.yml", "ssm:", "s3:", "/", "//", "prod", "db", "~", "%2e%2e"]
)


@FUZZ
@given(
    base=st.sampled_from(
        ["ssm:/fleet/prod/ampd", "ssm:ampd-prod", "s3://cfg/fleet/state.yml", "s3://cfg/s.yml"]
    ),
    parts=st.lists(_PIECES, min_size=1, max_size=6),
    sep=st.sampled_from(["/", ""]),
)
def test_a_named_file_never_leaves_the_state_prefix(base: str, parts: list[str], sep: str) -> None:
    """Issue 22: whatever a remote state names, the document read stays under its prefix
    (or the name is refused with a reason)."""
    raw = sep.join(parts)
    ref = parse_ref(base)
    try:
        got = ref.beside(raw)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert (got.kind, got.bucket) == (ref.kind, ref.bucket)
    assert got.name.startswith(ref.prefix)
    assert ".." not in got.name.split("/")
    assert not got.name.endswith("/") and got.name != ref.prefix
    if ref.kind == "ssm" and not ref.prefix:
        assert "/" not in got.name


# -- a running daemon following ssm: ----------------------------------------------------------

NAME = "/fleet/fuzz/ampd"
PROBE = "/fleet/fuzz/probe"  # beside NAME: relative file names resolve the same way


def good_state(prom_port: int, jobs: list[dict[str, Any]]) -> str:
    doc = {
        "version": 1,
        "prometheus": {
            "listen": f"127.0.0.1:{prom_port}",
            "scrape_interval": "1s",
            "remote_write": None,
            "scrape_configs": jobs,
        },
        "metrics": {"enabled": False},
        "state_source": {"poll_interval": "5s"},
        "runtime": "supervisor",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def test_daemon_keeps_the_last_good_pipeline_on_bad_ssm_versions(
    tmp_path: Path, aws_emulator_env: AwsEnv
) -> None:
    if not Path("/usr/bin/prometheus").exists():
        pytest.skip("needs prometheus")
    ssm = boto3.client("ssm")
    port = free_port()
    app = [{"job": "app", "targets": ["127.0.0.1:1"]}]

    def put(name: str, text: str) -> None:
        ssm.put_parameter(Name=name, Value=text, Type="String", Tier="Advanced", Overwrite=True)

    put(NAME, good_state(port, app))
    proc = AmpdProcess(tmp_path, env={"AMPD_STATE": f"ssm:{NAME}"})
    proc.state_file = Path(f"ssm:{NAME}")  # what AmpdProcess passes as --state
    proc.start()
    try:
        proc.wait_healthy(timeout=90)
        marker = str(proc.state_dir)
        pids = prometheus_pids(marker)
        assert len(pids) == 1
        generated = proc.state_dir / "generated" / "prometheus.yml"
        last_good = generated.read_bytes()
        assert proc.proc is not None
        fetcher = SourceFetcher()
        rng = random.Random(SEED)
        tried: Counter[str] = Counter()
        started = time.monotonic()
        for attempt in range(DAEMON_CASES * 20):  # bounded: most drawn cases are broken
            if sum(tried.values()) >= DAEMON_CASES:
                break
            kind = KINDS[attempt % len(KINDS)]
            text = ssm_text(state_file(rng, kind))
            if text is None:
                continue
            put(PROBE, text)
            rc, _, err = validate(f"ssm:{PROBE}", fetcher)
            if rc == 0:
                continue  # a good version would rightly change the pipeline
            first = err.splitlines()[0].replace(f"ssm:{PROBE}:", f"ssm:{NAME}:", 1)
            put(NAME, text)
            proc.proc.send_signal(signal.SIGHUP)

            def reported(first: str = first) -> dict[str, Any] | None:
                c = proc.condition("StateSourceValid")
                ok = c and c["status"] == "False" and c["message"].startswith(first)
                return c if ok else None

            cond = wait_for(reported, 30, what=f"{kind} case {attempt} reported: {text[:100]!r}")
            assert re.match(rf"^ssm:{NAME}:[1-9]\d*:[1-9]\d*: ", cond["message"])
            assert "running the last good version" in cond["message"]
            assert prometheus_pids(marker) == pids, f"Prometheus restarted on {text[:200]!r}"
            assert generated.read_bytes() == last_good, f"config changed on {text[:200]!r}"
            tried[kind] += 1
        took = time.monotonic() - started
        assert sum(tried.values()) == DAEMON_CASES
        # a good version goes live by a reload of the same Prometheus
        put(NAME, good_state(port, [*app, {"job": "new", "targets": ["127.0.0.1:2"]}]))
        proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b'"new"' in generated.read_bytes(), 60, what="the good version live")
        wait_for(
            lambda: (c := proc.condition("StateSourceValid")) and c["status"] == "True",
            30,
            what="StateSourceValid=True",
        )
        assert prometheus_pids(marker) == pids
        print(f"\nsource daemon fuzz: {sum(tried.values())} bad versions in {took:.1f} s")
    finally:
        assert proc.stop() == 0
