"""``--log-level`` and ``--log-file``: where the engine's own log records go."""

from __future__ import annotations

import argparse
import logging
import sys

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOGGERS = ("wfe", "wfe_s3", "wfe_supabase")  # the engine's and the built-in backends' loggers


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="warning", type=str.lower, choices=LEVELS,
        help="what the engine logs to stderr (and to --log-file); default: warning",
    )
    parser.add_argument("--log-file", metavar="PATH", help="also append the engine's log to this file")


def configure_logging(level_name: str, log_file: str | None) -> None:
    """Send the ``wfe`` loggers to stderr at ``level_name``, and to ``log_file`` if given.

    The records of node functions are not affected: they are captured per
    node and kept with the run.
    """
    from .._errors import WfeError

    level = getattr(logging, level_name.upper())
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_Redacting("%(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [console]
    if log_file:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise WfeError(f"cannot open --log-file {log_file}: {exc.strerror or exc}") from None
        file_handler.setFormatter(_Redacting(FORMAT))
        handlers.append(file_handler)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):  # a second call (tests, embedding) replaces, not duplicates
            logger.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        logger.setLevel(level)
        logger.propagate = False  # root handlers, if any, belong to whoever embeds the CLI
        for handler in handlers:
            logger.addHandler(handler)


class _Redacting(logging.Formatter):
    """A formatter whose lines (the message, and any traceback under it) have every secret masked, and
    every control character shown as an escape (a log file is read on a terminal too: see _visible)."""

    def format(self, record: logging.LogRecord) -> str:
        from .._redact import redact
        from ._visible import visible

        return visible(redact(super().format(record)))
