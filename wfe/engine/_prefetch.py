"""Before a run on a remote store starts: what is cached, found with a few concurrent listings, not a request per node.

On an object store every lookup is a round trip, and a chain's lookups
cannot overlap (each key needs the previous output). So a run first takes
the plan of the last run of its workflow (:mod:`wfe.store._plans`) as a
prediction of every node's action key, and checks all of it at once:

- the action entries: a listing shows which exist and, by ETag, whether
  each still holds the exact bytes the plan recorded (those need no read);
  an entry that changed is read, concurrently with the others;
- the output blobs of those entries: a listing, or one HEAD each, sent
  together, whichever takes fewer requests.

A listing is one request per 1,000 names. The first page of a folder tells
whether it is all there is, and if not, about how much more there is (names
are digests, spread evenly); the rest is listed in sixteen ranges at once,
unless asking for each wanted object takes fewer requests (as DVC chooses
between listing a remote and asking for each file).

What comes out is only ever used for keys that come out equal at run time,
and a node whose entry or blobs were not confirmed takes the usual path: a
wrong or stale plan costs requests, never a wrong result.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from ..storage._base import Listed, Page, StorageIO
from ..store._manifest import ActionResult
from ..store._paths import BLOB_PREFIX, blob_path, digest_from_record_path, record_path
from ..store._plans import Planned
from ..store._store import Store

log = logging.getLogger(__name__)

ACTIONS = "actions"
HEX = "0123456789abcdef"
PAGE = 1000  # names per listing request (S3's most)


@dataclass
class Known:
    """What the checks found: confirmed hits by action key, and (when listed whole) every action key there is."""

    hits: dict[str, ActionResult] = field(default_factory=dict)
    entries: dict[str, bytes] = field(default_factory=dict)  # action key -> its entry's bytes, for the next plan
    action_keys: set[str] | None = None  # None: not listed whole, so a key missing here proves nothing
    requests: int = 0


def list_all(storage: StorageIO, prefix: str, start_after: str) -> list[Listed]:
    """The objects whose paths start with ``prefix`` and sort after ``start_after``, a page (one request) at a time."""
    return [o for page in storage.list_prefix(prefix, start_after) for o in page.objects]


class Listing(NamedTuple):
    objects: dict[str, Listed]  # path under the root -> what the listing said
    whole: bool  # everything under the prefix, not only the parts that hold what was wanted


def _listed(storage: StorageIO, prefix: str, wanted: set[str], whole: bool, known: Known) -> Listing | None:
    """The listing of ``prefix`` as far as it concerns ``wanted`` (all of it if ``whole``); None if asking is cheaper.

    Names under ``prefix`` start with two hex digits (``actions/ab/…``), spread
    evenly: the first page tells how many there are in all, and the rest is
    listed as sixteen ranges (by the first digit) at once, each a page at a time.
    """
    if not storage.paged_listing:
        return None  # a listing might cost a request per folder: ask for each object instead
    first = next(storage.list_prefix(f"{prefix}/"), Page([], False))
    known.requests += 1
    objects = {o.rel: o for o in first.objects}
    if not first.more or not first.objects:
        return Listing(objects, True)
    last = first.objects[-1].rel
    covered = _fraction(last[len(prefix) + 1 : len(prefix) + 4])
    estimate = len(first.objects) / max(covered, 1e-6)
    beyond = sorted(rel for rel in wanted if rel > last)  # what the first page could not answer
    digits = sorted({rel[len(prefix) + 1] for rel in beyond}) if not whole else list(HEX)
    pages = max(len(digits), int(estimate * (1 - covered)) // PAGE + 1)
    if not whole and pages >= len(beyond):  # asking for each of those costs no more requests
        answers = storage.gather(storage.exists, beyond)
        known.requests += len(beyond)
        objects.update((rel, Listed(rel, 0)) for rel, there in zip(beyond, answers, strict=True) if there)
        return Listing(objects, False)
    ranges = []
    for digit in digits:
        start = f"{prefix}/{digit}"
        stop = f"{prefix}/{HEX[HEX.index(digit) + 1]}" if digit != "f" else None
        if stop is not None and stop <= last:
            continue  # the first page had all of it
        ranges.append((start, last if last > start else ""))
    found = storage.gather(lambda bounds: list_all(storage, *bounds), ranges)
    known.requests += sum(len(part) // PAGE + 1 for part in found)
    for part in found:
        objects.update((o.rel, o) for o in part)
    return Listing(objects, whole)


def _fraction(hex_digits: str) -> float:
    """Where names starting with ``hex_digits`` sit in the space of all names, from 0 to 1."""
    try:
        return float((int(hex_digits, 16) + 1) / 16 ** len(hex_digits))
    except ValueError:
        return 1.0


def prefetch(store: Store, plan: dict[str, Planned], unpredicted: int) -> Known:
    """Confirm what ``plan`` predicts (see the module's docstring); ``unpredicted``: lookups it cannot help with.

    With many of those, the whole action cache is listed once, so each is
    answered without a request where the listing shows no entry. The output
    blobs the plan names are listed at the same time as the action entries.
    """
    known = Known()
    storage = store.io
    predicted = {p.key: p for p in plan.values()}
    rels = {record_path(ACTIONS, key): key for key in predicted}
    whole = unpredicted >= 2 * len(HEX)  # then listing the whole cache costs fewer requests than asking
    if not rels and unpredicted < 2:
        return known  # nothing a listing would save a request on
    results = {key: planned.result() for key, planned in predicted.items()}
    outputs = {blob_path(a.digest) for result in results.values() if result for a in result.outputs if a.stored}
    counted = Known()
    # One round trip for both listings, not one after the other; in a thread of its own, since a listing
    # waits on the request threads.
    with ThreadPoolExecutor(1, thread_name_prefix="wfe-prefetch") as side:
        blobs = side.submit(_listed, storage, BLOB_PREFIX, outputs, False, counted) if outputs else None
        listing = _listed(storage, ACTIONS, set(rels), whole, known)
        blob_listing = blobs.result() if blobs is not None else None
    known.requests += counted.requests
    if listing is not None and listing.whole:
        known.action_keys = {
            key for rel in listing.objects if (key := digest_from_record_path(ACTIONS, rel)) is not None
        }
    unsure: list[str] = []
    for rel, key in rels.items():
        entry = listing.objects.get(rel) if listing is not None else None
        if listing is not None and entry is None:
            continue  # not there: a miss
        planned = predicted[key]
        result = results[key] if entry is not None and entry.etag == planned.md5 else None
        if result is None:
            unsure.append(key)
            continue
        known.hits[key] = result
        known.entries[key] = planned.entry
    if unsure:  # there, but changed since the plan (or the listing gives no MD5): read them, together
        found = storage.gather(store.actions.lookup_entry, unsure)
        known.requests += len(unsure)
        for key, pair in zip(unsure, found, strict=True):
            if pair is not None:
                known.hits[key], known.entries[key] = pair
    _drop_missing_outputs(store, known, blob_listing, outputs)
    log.debug("prefetch: %d of %d predicted hits confirmed in %d requests", len(known.hits), len(predicted),
              known.requests)
    return known


def _drop_missing_outputs(store: Store, known: Known, listing: Listing | None, listed: set[str]) -> None:
    """Keep only the hits whose stored outputs all exist.

    ``listing`` answers for the blob paths in ``listed`` (what the plan
    predicted); any other output (an entry that changed since the plan) is
    listed or asked for here.
    """
    wanted = {blob_path(a.digest) for result in known.hits.values() for a in result.outputs if a.stored}
    there = {rel for rel in wanted if rel in listing.objects} if listing is not None else set()
    rest = wanted - listed if listing is not None else wanted
    if rest:
        more = _listed(store.io, BLOB_PREFIX, rest, False, known)
        if more is not None:
            there |= {rel for rel in rest if rel in more.objects}
        else:
            ordered = sorted(rest)
            answers = store.io.gather(store.io.exists, ordered)
            known.requests += len(ordered)
            there |= {rel for rel, exists in zip(ordered, answers, strict=True) if exists}
    for key in [k for k, r in known.hits.items() if any(blob_path(a.digest) not in there for a in r.outputs
                                                         if a.stored)]:
        del known.hits[key]
        del known.entries[key]

