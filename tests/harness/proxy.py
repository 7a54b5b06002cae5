"""The signing proxy (ampd.proxy.server.ProxyServer) run from a loop thread for tests."""

from __future__ import annotations

import time
from typing import Any, Self

from ampd.proxy.config import ProxyConfig
from ampd.proxy.server import ProxyServer, RequestSigner
from tests.harness.aio import LoopThread
from tests.harness.lifecycle import StartStop


class ThreadedProxy(StartStop):
    """Starts a ProxyServer on its own event loop thread; ``url`` once started."""

    def __init__(
        self, config: ProxyConfig, signer: RequestSigner | None = None, **kwargs: Any
    ) -> None:
        self.config = config
        self._signer = signer
        self._kwargs = kwargs
        self._loop: LoopThread | None = None
        self.server: ProxyServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "proxy not started"
        return self.server.url

    def start(self) -> Self:
        self._loop = LoopThread("harness-proxy")
        self._loop.start()
        # Built inside the loop thread: aiohttp objects belong to the loop that made them.
        self.server = ProxyServer(self.config, self._signer, **self._kwargs)
        try:
            self._loop.call(self.server.start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self.server is not None:
            self._loop.call(self.server.stop())
        self._loop.stop()
        self._loop = None

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample from the proxy's own registry (0 when absent)."""
        assert self.server is not None
        value = self.server.registry.get_sample_value(name, labels or {})
        return value or 0.0

    def wait_metric(
        self, name: str, labels: dict[str, str] | None = None, at_least: float = 1.0
    ) -> float:
        """Poll a sample until it reaches ``at_least`` (the proxy counts a request just
        after its last byte went out, so a client can be a moment ahead)."""
        deadline = time.monotonic() + 5.0
        while (value := self.metric(name, labels)) < at_least:
            if time.monotonic() > deadline:
                return value
            time.sleep(0.01)
        return value
