"""``wfe ui``: browse a store in a web browser (read only)."""

from __future__ import annotations

import argparse
from typing import Any

from . import EXIT_OK, add_common_flags, add_store_argument, store_from_args


def register(subparsers: Any) -> None:
    ui = subparsers.add_parser("ui", help="browse the store's runs, nodes and outputs in a web browser (read only)")
    ui.add_argument("--port", type=int, default=8000, metavar="N", help="port to listen on (default 8000; 0: any free)")
    ui.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                    help="address to listen on (default 127.0.0.1, this machine only)")
    add_store_argument(ui)
    add_common_flags(ui)
    ui.set_defaults(handler=ui_main)


def ui_main(args: argparse.Namespace) -> int:
    from .._errors import WfeError

    if not 0 <= args.port <= 65535:
        raise WfeError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        from ..ui import serve
    except ImportError as exc:
        raise WfeError(f"wfe ui needs the ui extra ({exc.name} is missing): pip install 'wfe[ui]'") from None
    store = store_from_args(args)
    serve(store, host=args.host, port=args.port, debug=args.debug)
    return EXIT_OK
