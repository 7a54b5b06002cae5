"""``python -m ampd.proxy --config PATH``: the signing proxy alone, logging JSON lines
through ampd's own processors (secrets redacted before rendering, as ``ampd proxy``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ampd.logs import configure_logging
from ampd.proxy.run import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m ampd.proxy")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args()
    configure_logging("json", args.log_level.lower())
    sys.exit(main(args.config))
