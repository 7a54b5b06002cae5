"""``python -m ampd.proxy --config PATH``: the signing proxy alone, logging JSON lines."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import structlog

from ampd.proxy.run import main


def _configure_logging(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m ampd.proxy")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args()
    _configure_logging(args.log_level)
    sys.exit(main(args.config))
