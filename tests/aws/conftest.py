"""Fixtures of the AWS tests: the AppConfig emulator's world (tests/harness/appconfig_world.py)."""

from __future__ import annotations

import pytest

from tests.harness.appconfig_world import World, deploy_first, make_world
from tests.harness.aws_emulator import AwsEmulator


@pytest.fixture
def world(aws_emulator: AwsEmulator) -> World:
    """Application ``ampd``, environment ``prod`` (monitoring an alarm), profile ``state``."""
    return make_world(aws_emulator)


@pytest.fixture
def deployed(world: World) -> World:
    """The same, with a first version deployed."""
    return deploy_first(world)
