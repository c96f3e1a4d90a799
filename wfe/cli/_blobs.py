"""``wfe cat ADDRESS`` (``RUN:NODE[:PORT]``, a digest or a digest prefix) and ``wfe put FILE``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_OK, add_common_flags, add_store_argument, store_from_args


def register(subparsers: Any) -> None:
    cat = subparsers.add_parser("cat", help="write an output or a blob to stdout or a file (verified)")
    cat.add_argument("digest", metavar="ADDRESS",
                     help="RUN:NODE[:PORT] (RUN a run id, a unique prefix of one, or 'latest'), a digest, "
                     "or a unique digest prefix of at least 12 hex characters")
    cat.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_store_argument(cat)
    add_common_flags(cat)
    cat.set_defaults(handler=cat_main)

    put = subparsers.add_parser("put", help="store a file as a blob and print its digest")
    put.add_argument("file", help="file to store, or - for stdin")
    put.add_argument("--mime", default=None,
                     help="MIME type of the artifact printed with --json (default: guessed from the file name)")
    put.add_argument("--json", action="store_true",
                     help="print the artifact (digest, mime, size, name) as JSON, ready to use as a node input")
    add_store_argument(put)
    add_common_flags(put)
    put.set_defaults(handler=put_main)


WHOLE_READ_LIMIT = 64 * 1024 * 1024  # blobs up to this size are verified whole before `wfe cat` prints them


def cat_main(args: argparse.Namespace) -> int:
    from ..ops._address import parse_address, resolve
    from ..ops._outputs import read_bytes

    parse_address(args.digest)  # a malformed address fails before the store is opened
    store = store_from_args(args)
    artifact = resolve(store, args.digest).artifact
    digest = artifact.digest
    if not artifact.stored:  # an inline value (verified against its digest), or an ephemeral output: an error
        data = read_bytes(store, artifact)
        if args.output:
            with open(args.output, "wb") as target:
                target.write(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return EXIT_OK
    if args.output:
        store.blobs.export(digest, args.output)
        return EXIT_OK
    if store.blobs.size(digest) <= WHOLE_READ_LIMIT:
        # Verified before a byte is written: a damaged blob prints nothing but the error.
        sys.stdout.buffer.write(store.blobs.get(digest))
    else:
        with store.blobs.open(digest) as source:
            # Too large to hold: bytes stream as they are read, and a mismatch found at the end
            # still ends the command with the error and exit 2 (use -o FILE for an all-or-nothing copy).
            while chunk := source.read(1 << 20):
                sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return EXIT_OK


def put_main(args: argparse.Namespace) -> int:
    import json
    import mimetypes
    from pathlib import Path

    from .._errors import WfeError
    from ..graph._mime import validate_mime

    mime = args.mime
    if mime is not None:
        try:
            validate_mime(mime)
        except ValueError as exc:
            raise WfeError(str(exc)) from None
    store = store_from_args(args)
    if args.file == "-":
        digest, size = store.blobs.put_sized(sys.stdin.buffer)
        name = None
    else:
        path = Path(args.file)
        if not path.is_file():
            raise WfeError(f"no such file: {args.file}")
        digest, size = store.blobs.put_sized(path)
        name = path.name
        mime = mime or mimetypes.guess_type(path.name)[0]
    if not args.json:
        print(digest)
        return EXIT_OK
    artifact = {"digest": digest, "mime": mime or "application/octet-stream", "size": size}
    if name is not None:
        artifact["name"] = name
    print(json.dumps(artifact))
    return EXIT_OK
