"""What the emulator's request handler (``tests.harness.aws_http.Handler``) gives the
route mixins of each service (AMP, AppConfig, IAM): the handler's own methods, declared
once so that each mixin type-checks on its own. The handler defines every one of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.harness.aws_emulator import AwsEmulator

__all__ = ["Routes"]


class Routes:
    emulator: AwsEmulator
    path: str
    headers: Any
    _held: tuple[int, list[tuple[str, str]], bytes] | None = None

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        raise NotImplementedError

    def _error(
        self,
        service: str,
        status: int,
        code: str,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        raise NotImplementedError

    def _forward(
        self, body: bytes, rewrite: Any = None, hold: bool = False, status_as: int | None = None
    ) -> int:
        raise NotImplementedError

    def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        raise NotImplementedError

    def _flush_held(self) -> None:
        raise NotImplementedError
