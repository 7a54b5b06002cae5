"""structlog set-up: native journal entries under systemd, console on a TTY, JSON elsewhere.

Under systemd (stderr is the journal stream named by ``JOURNAL_STREAM``) every event is
sent as a native journal entry: ``PRIORITY`` from the level, a short human ``MESSAGE``,
``AMPD_EVENT`` (the event name), ``RECONCILE_ID``, ``RESOURCE`` and every other field as
``AMPD_<NAME>``. If the journal socket cannot be reached the line goes to stderr as
JSON, so nothing is lost.

Whatever the renderer, secrets are redacted first (ampd.redact): values of secret-named
fields, and anything shaped like an AWS secret key or session token, in any string.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog

from ampd.gateways.journal import JournalSender, stderr_is_journal
from ampd.redact import redact_event

PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}
_FIELD_RE = re.compile(r"[^A-Z0-9_]")
# fields that keep a well-known journal name instead of AMPD_<NAME>
_RENAMED = {"event": "AMPD_EVENT", "reconcile_id": "RECONCILE_ID", "key": "RESOURCE"}
_SKIP = {"level", "timestamp", "exc_info"}


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    # Look sys.stderr up per logger, not once: it may be replaced after configuration.
    return structlog.PrintLogger(sys.stderr)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def journal_fields(event_dict: Mapping[str, Any]) -> dict[str, str]:
    """One structlog event as journal fields (pure; see the module docstring)."""
    level = str(event_dict.get("level", "info"))
    event = str(event_dict.get("event", ""))
    extras = {k: v for k, v in event_dict.items() if k not in _SKIP and k != "event"}
    shown = " ".join(
        f"{k}={_text(v)}" for k, v in extras.items() if k not in ("reconcile_id", "traceback")
    )
    fields = {
        "MESSAGE": f"{event} {shown}".strip()[:2000],
        "PRIORITY": str(PRIORITY.get(level, 6)),
        "SYSLOG_IDENTIFIER": "ampd",
    }
    for k, v in {"event": event, **extras}.items():
        name = _RENAMED.get(k) or "AMPD_" + _FIELD_RE.sub("_", k.upper())
        fields[name[:64]] = _text(v)
    return fields


class JournalLogger:
    """A structlog logger whose every method sends the event to the journal."""

    def __init__(self, sender: JournalSender) -> None:
        self._sender = sender

    def msg(self, **fields: str) -> None:
        # structlog passes the last processor's dict as keyword arguments
        if not self._sender.send(fields):
            sys.stderr.write(json.dumps(fields, sort_keys=True) + "\n")

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return self.msg


def _to_journal(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    return journal_fields(event_dict)


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    journal = fmt == "auto" and stderr_is_journal()
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor
    if journal:
        renderer = _to_journal
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    sender = JournalSender() if journal else None
    factory: Callable[..., Any] = (
        (lambda *_a: JournalLogger(sender)) if sender is not None else _stderr_logger
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,  # last before rendering: exception text is redacted too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
