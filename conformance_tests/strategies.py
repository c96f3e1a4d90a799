"""Hypothesis strategies for what the stores hold, and for what they must refuse."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

from hypothesis import strategies as st

import wfe
from wfe.graph._specs import InputSpec
from wfe.store._manifest import ActionResult, NodeRecord

# The contract, written out again here so the suite does not trust wfe's own checks.
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# The narrowest object key alphabet wfe supports (Supabase Storage).
SAFE_KEY_RE = re.compile(r"[A-Za-z0-9_/!.*'() &$=@;:+,?-]+")
MiB = 1024 * 1024


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    """The documented canonical JSON: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def pseudo_random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


blobs = st.one_of(
    st.just(b""),
    st.binary(max_size=16),
    st.binary(max_size=4096),
    st.builds(pseudo_random_bytes, st.integers(0, 256 * 1024), st.integers(0, 2**32)),
)

# Sizes around the staging and chunk boundaries, up to past the in-memory spool limit.
big_blob_sizes = st.sampled_from([0, 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 9 * MiB + 7])

digests = st.builds(sha256_digest, st.binary(max_size=32))

malformed_digests = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"sha256:[0-9a-fA-F]{0,70}", fullmatch=True),
    st.from_regex(r"(sha1|md5|SHA256|sha512):[0-9a-f]{64}", fullmatch=True),
    st.sampled_from(
        [
            "sha256:" + "../" * 21 + "x",
            "sha256:" + "0" * 63 + "/",
            "sha256:" + "A" * 64,
            " sha256:" + "0" * 64,
            "sha256:" + "0" * 64 + "\n",
            "sha256:" + "0" * 65,
        ]
    ),
    st.none(),
    st.integers(),
    st.binary(max_size=70),
).filter(lambda value: not (isinstance(value, str) and DIGEST_RE.fullmatch(value)))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**256), max_value=2**256),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=24,
)
configs = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


def nested(depth: int, leaf: Any) -> dict[str, Any]:
    value: Any = leaf
    for level in range(depth):
        value = {f"level-{level}-ü": value} if level % 2 else {"é": [value]}
    return value if isinstance(value, dict) else {"v": value}


deep_configs = st.builds(nested, st.integers(1, 300), json_scalars)

mimes = st.sampled_from(
    ["application/json", "text/plain", "text/csv; charset=utf-8", "application/octet-stream", "image/png"]
)
artifacts = st.builds(
    wfe.Artifact,
    digest=digests,
    mime=mimes,
    size=st.integers(0, 2**63),
    name=st.none() | st.text(max_size=12),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
action_results = st.builds(
    ActionResult,
    outputs=st.lists(artifacts, max_size=3),
    function=st.text(max_size=20),
    version=st.text(max_size=20),
    config=digests,
    inputs=st.lists(digests, max_size=3),
    created=finite,
    duration=finite,
)

# Names wfe stores under must fit the encoded-length limit: at most 16 characters always do.
function_names = st.text(min_size=1, max_size=16)
function_specs = st.builds(
    wfe.FunctionSpec,
    name=function_names,
    ref=st.from_regex(r"[a-z_][a-z0-9_.]{0,20}:[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True),
    version=st.text(max_size=20),
    inputs=st.lists(st.builds(InputSpec, mime=mimes, as_path=st.booleans(), name=st.none() | st.text(max_size=8)),
                    max_size=3).map(tuple),
    outputs=st.lists(mimes, max_size=3).map(tuple),
)

RUN_ID_RE = re.compile(r"[0-9]{8}T[0-9]{6}[0-9]{3}Z-[0-9a-f]{6}")
run_ids = st.from_regex(RUN_ID_RE, fullmatch=True)
invalid_run_ids = st.one_of(
    st.text(max_size=40), st.sampled_from(["../20260101T000000000Z-abcdef", "latest", ""])
).filter(lambda value: not RUN_ID_RE.fullmatch(value))
node_records = st.builds(
    NodeRecord,
    status=st.sampled_from(["ran", "cached", "failed", "skipped", "pending", "running"]),
    function=st.none() | st.text(max_size=12),
    action_key=st.none() | digests,
    outputs=st.lists(artifacts, max_size=2),
    started=st.none() | finite,
    error=st.none() | st.text(max_size=40),
)


def run_manifests(run_id: st.SearchStrategy[str] = run_ids) -> st.SearchStrategy[wfe.RunManifest]:
    return st.builds(
        wfe.RunManifest,
        run_id=run_id,
        workflow=st.text(max_size=20),
        workflow_digest=digests,
        status=st.sampled_from(["running", "succeeded", "failed", "interrupted"]),
        started=finite,
        finished=st.none() | finite,
        nodes=st.dictionaries(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), node_records, max_size=4),
    )
