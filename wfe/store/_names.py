"""Reversible encoding of user-chosen names into one safe path component.

Object stores accept different key alphabets; the narrowest one wfe supports
(Supabase Storage) allows ``[A-Za-z0-9_/!.*'() &$=@;:+,?-]``. Every name wfe
stores under (function names, workflow names, node ids, config keys) goes
through :func:`encode_name` on every backend alike, so a store copied from
one backend to another keeps every name. The encoding:

- keeps ``A-Z a-z 0-9 _ - .``;
- writes every other character as ``+XX`` per UTF-8 byte (upper-case hex),
  ``+`` included, so decoding is unambiguous;
- escapes a leading ``.``, so no component is ``.``, ``..`` or hidden.

The result never contains ``/`` and never starts with ``.``: it cannot
climb out of the folder it is placed in.
"""

from __future__ import annotations

import re

from .._errors import InvalidNameError

MAX_ENCODED_LENGTH = 200  # stays under the 255-byte component limit of common filesystems
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_ENCODED_RE = re.compile(r"(?:[A-Za-z0-9_-]|\+[0-9A-F]{2})(?:[A-Za-z0-9_.-]|\+[0-9A-F]{2})*")


def encode_name(name: str) -> str:
    """Encode ``name`` into one safe, reversible path component."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"invalid name {name!r}: must be a non-empty string")
    out: list[str] = []
    for index, char in enumerate(name):
        if char in _KEEP and not (index == 0 and char == "."):
            out.append(char)
        else:
            try:
                raw = char.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidNameError(f"invalid name {name!r}: not valid Unicode") from None
            out.extend(f"+{byte:02X}" for byte in raw)
    encoded = "".join(out)
    if len(encoded) > MAX_ENCODED_LENGTH:
        raise InvalidNameError(
            f"name too long: {name[:40]!r}... encodes to {len(encoded)} characters "
            f"(at most {MAX_ENCODED_LENGTH})"
        )
    return encoded


def decode_name(encoded: str) -> str:
    """Invert :func:`encode_name`; raise InvalidNameError on anything it could not produce."""
    if not _ENCODED_RE.fullmatch(encoded):
        raise InvalidNameError(f"not an encoded name: {encoded!r}")
    raw = bytearray()
    index = 0
    while index < len(encoded):
        char = encoded[index]
        if char == "+":
            raw.append(int(encoded[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.extend(char.encode("ascii"))
            index += 1
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidNameError(f"not an encoded name: {encoded!r}") from None
    if encode_name(name) != encoded:
        raise InvalidNameError(f"not the canonical encoding of a name: {encoded!r}")
    return name
