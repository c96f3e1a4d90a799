"""The ``wfe`` command. Each verb lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Verb modules, imported only to build the parser; each imports what it needs lazily.
VERBS = ("run", "blobs", "runs", "ops", "graph", "check", "ui")
# The module that registers each verb: a command builds its own verb's parser only (``wfe run`` imports no other).
VERB_MODULES = {
    "run": "run",
    "cat": "blobs",
    "put": "blobs",
    "runs": "runs",
    "show": "runs",
    "rerun": "runs",
    "explain": "runs",
    "verify": "ops",
    "gc": "ops",
    "sync": "ops",
    "graph": "graph",
    "report": "graph",
    "check-store": "check",
    "ui": "ui",
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {single_line(message)}\n")  # an argument may hold a line break


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with a known ``verb``, one that knows that verb only (the same parse of its arguments)."""
    parser = _Parser(prog="wfe", description="Run workflows on a content-addressed store.")
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module in (VERB_MODULES[verb],) if verb in VERB_MODULES else VERBS:
        importlib.import_module(f"wfe.cli._{module}").register(subparsers)
    return parser


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="backend option, repeatable (e.g. endpoint_url=http://127.0.0.1:9000)",
    )


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help="store URL (default: $WFE_STORE or ./.wfe)")
    add_store_option(parser)
    parser.add_argument(
        "--cache",
        metavar="PATH[,SIZE]",
        help="keep a local copy of blobs read from a remote store (default: $WFE_CACHE; SIZE e.g. 2GiB)",
    )


def parse_options(items: list[str]) -> dict[str, str]:
    """``["k=v", …]`` from a repeatable option -> ``{"k": "v"}``; StoreURLError on an item without ``=``."""
    from .._errors import StoreURLError

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise StoreURLError(f"a store option needs KEY=VALUE, got {item!r}")
        options[key] = value
    return options


def store_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..store._store import open_store

    options = parse_options(args.store_option)
    if getattr(args, "cache", None):
        options["cache"] = args.cache
    return open_store(args.store, **options)


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _version() -> str:
    from .. import __version__

    return f"wfe {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    from ._visible import Visible

    shown = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Visible(sys.stdout), Visible(sys.stderr)  # see _visible: shown, not obeyed
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = shown


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)  # the verb comes first: ``wfe`` itself takes no option
    args = parser.parse_args(argv)
    from .._errors import WfeError

    try:
        code: int = args.handler(args)
        return code
    except WfeError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def one_line(exc: BaseException) -> str:
    """An error's message on one line (its type where it has none), with any secret in it masked."""
    return single_line(str(exc)) or type(exc).__name__


def single_line(text: str) -> str:
    """``text`` on one line, every run of whitespace and line breaks one space, with any secret in it masked."""
    from .._redact import redact

    return redact(" ".join(text.split()))


def entry() -> None:
    sys.exit(main())
