"""kill -9 during passes that write files and call AWS loses nothing (a few trials of
bench/bench_crash.py; the bench runs hundreds)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.bench_crash import REGION, Rig, apply_trials, daemon_trials
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.imds import ImdsServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]


def test_kill_9_apply_once(aws_emulator: AwsEmulator, tmp_path: Path) -> None:
    with ImdsServer(region=REGION) as imds:
        tally, _ = apply_trials(6, random.Random(6), Rig(tmp_path, aws_emulator, imds))
    assert tally.trials == 6
    assert tally.files_checked > 0
    assert tally.problems == []
    assert tally.lost == 0


def test_kill_9_daemon(aws_emulator: AwsEmulator, tmp_path: Path) -> None:
    with ImdsServer(region=REGION) as imds:
        rig = Rig(tmp_path, aws_emulator, imds)
        try:
            tally = daemon_trials(3, random.Random(3), rig)
        finally:
            rig.proc.stop()
    assert tally.trials == 3
    assert tally.problems == []
    assert tally.lost == 0
