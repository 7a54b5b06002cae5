"""ampd.gateways.inotify on real files: renames, writes, new subdirectories, stop."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from ampd.gateways.inotify import IN_CREATE, IN_ISDIR, IN_MOVED_TO, parse_events, watch


def test_parse_events() -> None:
    one = struct.pack("iIII", 1, IN_MOVED_TO, 7, 16) + b"state.yml".ljust(16, b"\0")
    two = struct.pack("iIII", 2, IN_CREATE | IN_ISDIR, 0, 0)
    assert parse_events(one + two) == [(1, IN_MOVED_TO, "state.yml"), (2, IN_CREATE | IN_ISDIR, "")]


async def _collect(root: Path, actions: list[tuple[str, Path]], want: set[Path]) -> set[Path]:
    stop = asyncio.Event()
    seen: set[Path] = set()

    async def consume() -> None:
        async for paths in watch([root], stop):
            seen.update(paths)
            if want <= seen:
                stop.set()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)  # the watch is armed
    for what, path in actions:
        if what == "mkdir":
            path.mkdir()
            await asyncio.sleep(0.05)  # the new directory's watch is added on its event
        elif what == "rename":
            tmp = path.with_suffix(".tmp")
            tmp.write_text("x")
            tmp.replace(path)
        else:
            path.write_text(what)
    await asyncio.wait_for(task, 10.0)
    return seen


def test_rename_into_a_watched_directory(tmp_path: Path) -> None:
    target = tmp_path / "state.yml"
    seen = asyncio.run(_collect(tmp_path, [("rename", target)], {target}))
    assert target in seen


def test_new_subdirectory_is_watched(tmp_path: Path) -> None:
    sub = tmp_path / "grafana"
    f = sub / "grafana.ini"
    seen = asyncio.run(_collect(tmp_path, [("mkdir", sub), ("hello", f)], {sub, f}))
    assert {sub, f} <= seen


def test_stop_ends_an_idle_watch(tmp_path: Path) -> None:
    async def run() -> list[set[Path]]:
        stop = asyncio.Event()
        got: list[set[Path]] = []

        async def consume() -> None:
            async for paths in watch([tmp_path], stop):
                got.append(paths)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(run()) == []
