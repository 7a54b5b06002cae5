"""Running the proxy as a process: SIGTERM/SIGINT drain and exit 0, SIGHUP reloads.

``systemctl reload ampd-sigv4-proxy`` sends SIGHUP (the unit's ``ExecReload=``). The
proxy re-reads its settings file and carries on with the same listening socket, so a
reload neither drops a connection nor lets another local user bind the port in between.
A file that does not parse keeps the settings in use, and says why in the log: a reload
must never be what takes remote writes down.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog

from ampd.proxy.config import ProxyConfig, ProxyConfigError, load
from ampd.proxy.server import SHUTDOWN_GRACE, ProxyServer

__all__ = ["main", "serve"]

log = structlog.get_logger("ampd.proxy")


async def _reload(server: ProxyServer, path: Path, started: asyncio.Event) -> None:
    await started.wait()  # a SIGHUP while binding applies once the proxy is up
    try:
        config = load(path)
    except ProxyConfigError as e:
        log.error("proxy.reload_failed", error=str(e), kept="previous settings")
        return
    try:
        await server.reload(config)
    except Exception as e:  # a reload must never end the proxy
        log.exception("proxy.reload_failed", error=f"{type(e).__name__}: {e}")


async def serve(
    config: ProxyConfig, stop: asyncio.Event | None = None, config_path: Path | None = None
) -> int:
    """Run a proxy until ``stop`` is set or SIGTERM/SIGINT arrives; 0 after a clean drain.
    With ``config_path``, SIGHUP reloads the settings from it."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = ProxyServer(config)
    reloads: set[asyncio.Task[None]] = set()
    started = asyncio.Event()

    def hup() -> None:
        if config_path is None:
            log.warning("proxy.reload_ignored", reason="no settings file to re-read")
            return
        log.info("proxy.reloading", config=str(config_path))
        task = loop.create_task(_reload(server, config_path, started))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # Handled from the start: a SIGHUP before the socket is bound must not kill us either.
    loop.add_signal_handler(signal.SIGHUP, hup)
    try:
        try:
            await server.start()
        except OSError as e:
            log.error("proxy.bind_failed", listen=config.listen, error=e.strerror or str(e))
            return 1
        started.set()
        await stop.wait()
        log.info("proxy.stopping", grace_seconds=SHUTDOWN_GRACE)
        for task in list(reloads):
            task.cancel()
        await server.stop()
        log.info("proxy.stopped")
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(config_path: Path) -> int:
    """``ampd proxy --config PATH``: 0 on SIGTERM/SIGINT after a graceful drain,
    1 when the settings are invalid or the address cannot be bound."""
    try:
        config = load(config_path)
    except ProxyConfigError as e:
        log.error("proxy.config_invalid", error=str(e))
        return 1
    return asyncio.run(serve(config, config_path=config_path))
