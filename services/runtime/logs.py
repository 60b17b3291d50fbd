"""Logs an installer can read: one line per event, ``2026-11-23 12:03:04 acquisition INFO  ...``."""
from __future__ import annotations

import logging
import os

from ticgw.journal import escape_controls

LOG_FORMAT = "%(asctime)s {name} %(levelname)-5s %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"


class EscapingFormatter(logging.Formatter):
    """Control characters in a message (bytes from a meter, a server's reply, a rejected file)
    written visibly, so one record stays one line and no byte reaches the terminal raw; a
    traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


def setup_logging(name: str, level: str | int | None = None) -> logging.Logger:
    """Log to stderr with the service's name on every line.

    Level from the argument, else ``$TICGW_LOG_LEVEL``, else INFO. Returns the service's logger.
    """
    if level is None:
        level = os.environ.get("TICGW_LOG_LEVEL", "INFO")
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ticgw", False):
            root.removeHandler(h)
    handler = logging.StreamHandler()
    handler._ticgw = True
    handler.setFormatter(EscapingFormatter(LOG_FORMAT.format(name=name), LOG_DATEFMT))
    root.addHandler(handler)
    root.setLevel(level)
    # transitions narrates every callback at INFO; our one listener logs the state changes
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
    return logging.getLogger(name)
