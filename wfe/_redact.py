"""Secrets masked by what they are, not only by the name of the option that holds them.

An option named like a secret (``key``, ``secret``, ``token``, ``password``,
``credential``, …) is masked whole. Any other text wfe shows or stores (an
option's value, a store URL, an error message, a log line, a node's error
and traceback) is searched for what is a secret wherever it appears:

- a password in a URL: ``https://user:PASSWORD@host`` -> ``https://user:***@host``;
- secret fields of a connection string: ``AccountKey=…;``, ``SharedAccessSignature=…``,
  ``Password=…`` (Azure, ODBC-style ``Name=Value;`` strings);
- secret query parameters: ``sig=`` (a SAS token), ``X-Amz-Signature=``,
  ``X-Amz-Credential=``, ``X-Amz-Security-Token=``, ``token=``, ``password=``, …;
- JSON web tokens (``eyJ….….…``, Supabase's keys), AWS access key ids
  (``AKIA…``/``ASIA…``), PEM private keys, and long base64 strings
  (40+ characters of mixed case and digits, as account keys are, unless
  they read as a path).

Digests (``sha256:`` and 64 hex characters), paths and ordinary words are left as they are.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

SECRET_NAME_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "signature", "sas", "auth")
"""An option whose name contains one of these (in any case) is masked whole."""

_CONNECTION_FIELDS = (
    "accountkey|sharedaccesssignature|sharedaccesskey|sharedaccesskeyname_?key|password|pwd|secret|"
    "accesskey|secretkey|token|sig"
)
_QUERY_FIELDS = (
    "sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|token|access_token|"
    "refresh_token|id_token|apikey|api_key|key|secret|password|passwd|pwd|code"
)

@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], Any], ...]:
    """The patterns, compiled at the first use (a run that shows no error never pays for them)."""
    return (
        # -----BEGIN … PRIVATE KEY----- … -----END … PRIVATE KEY-----
        (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), MASK),
        # scheme://user:password@host: the password
        (re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*:///?[^\s/:@]*:)[^\s/@]+(?=@)"), rf"\g<keep>{MASK}"),
        # Name=Value fields of a connection string (up to the next ';', quote or space)
        (re.compile(rf"(?P<keep>(?<![A-Za-z0-9_])(?:{_CONNECTION_FIELDS})\s*=\s*)[^;\s'\"]+", re.I),
         rf"\g<keep>{MASK}"),
        # ?name=value or &name=value in a URL's query
        (re.compile(rf"(?P<keep>[?&](?:{_QUERY_FIELDS})=)[^&\s'\"#]+", re.I), rf"\g<keep>{MASK}"),
        # a JSON web token: three base64url parts, the first a JSON object
        (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), MASK),
        # AWS access key ids
        (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), MASK),
        # 40+ characters of base64 with upper and lower case and digits (an account key, a secret access key)
        (re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=_-])"), _base64_secret),
    )  # fmt: skip


def _base64_secret(match: re.Match[str]) -> str:
    """A long base64 run is a secret if it mixes case and digits and is not a path: padded, or with a ``+``,
    or one word with no ``/`` at all (a path's folders are words; a key's ``/`` falls anywhere)."""
    text = match.group(0)
    mixed = any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)
    return MASK if mixed and (text.endswith("=") or "+" in text or "/" not in text) else text


def redact(text: str) -> str:
    """``text`` with every secret in it replaced by ``***``."""
    if not text:
        return text
    for pattern, replacement in _patterns():
        text = pattern.sub(replacement, text)
    return text


def is_secret_option(name: str) -> bool:
    """True for an option whose name says it holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_NAME_WORDS) or lowered.endswith("connection_string")


def redact_value(value: Any) -> Any:
    """A value to show: strings searched for secrets, containers gone through, anything else as it is."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return redact_options(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options to show: secret-named ones masked whole, the others searched for secrets."""
    return {k: (MASK if is_secret_option(str(k)) else redact_value(v)) for k, v in options.items()}
