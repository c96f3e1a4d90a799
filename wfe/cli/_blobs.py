"""``wfe cat DIGEST`` and ``wfe put FILE``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_OK, add_common_flags, add_store_argument, store_from_args


def register(subparsers: Any) -> None:
    cat = subparsers.add_parser("cat", help="write a blob to stdout or a file (verified)")
    cat.add_argument("digest")
    cat.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_store_argument(cat)
    add_common_flags(cat)
    cat.set_defaults(handler=cat_main)

    put = subparsers.add_parser("put", help="store a file as a blob and print its digest")
    put.add_argument("file")
    put.add_argument("--mime", default=None, help="MIME type to report with --json")
    add_store_argument(put)
    add_common_flags(put)
    put.set_defaults(handler=put_main)


def cat_main(args: argparse.Namespace) -> int:
    from .._digest import validate_digest

    digest = validate_digest(args.digest)
    store = store_from_args(args)
    if args.output:
        store.blobs.export(digest, args.output)
        return EXIT_OK
    with store.blobs.open(digest) as source:
        # Bytes reach stdout as they are read; an integrity error still ends the command non-zero.
        while chunk := source.read(1 << 20):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return EXIT_OK


def put_main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .._errors import WfeError

    store = store_from_args(args)
    path = Path(args.file)
    if not path.is_file():
        raise WfeError(f"no such file: {args.file}")
    print(store.blobs.put(path))
    return EXIT_OK
