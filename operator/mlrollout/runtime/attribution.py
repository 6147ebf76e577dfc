"""Which variant (model version, track) served a request: feedback counts under that variant, not
under the pod that happens to receive the POST (behind a replica-ratio Service that is any pod of any
version, which would blur an A/B test's arms into each other).

Three sources, first match wins:
1. this process served the id (a bounded memory of recent ids and the track that served each);
2. the id carries the variant: ids the runtime makes are `<32 hex>.<track>.<version>`, so any pod
   can attribute them without shared state (a caller's own x-request-id is kept as given);
3. the inference log row of the id (when the log is on; see request_index).
Label values stay bounded: tracks come from the fixed list, versions are short tokens, and one
process accepts at most MAX_VARIANTS distinct variants (beyond that: a 4xx, never a new series).
Pure: no I/O.
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict

from mlrollout.runtime.metric_names import TRACKS

MAX_VARIANTS = 16
MAX_RECENT = 200_000
_HEX = re.compile(r"^[0-9a-f]{32}$")
_VERSION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

Variant = tuple[str, str]  # (version, track)


def request_id(given: bytes | None) -> str:
    """The caller's x-request-id when printable and short, else 32 random hex digits."""
    if given and len(given) <= 128:
        text = given.decode("latin-1")
        if text.isprintable():
            return text
    # Not a secret, only unique: getrandbits avoids uuid4's system call on every request.
    return f"{random.getrandbits(128):032x}"


def tagged_id(random_hex: str, version: str, track: str) -> str:
    """A new request id carrying its variant (left untagged when the version is not a short token)."""
    if not _VERSION.match(version) or track not in TRACKS:
        return random_hex
    return f"{random_hex}.{track}.{version}"


def variant_of(request_id: str) -> Variant | None:
    parts = request_id.split(".")
    if len(parts) != 3:
        return None
    random_hex, track, version = parts
    if _HEX.match(random_hex) and track in TRACKS and _VERSION.match(version):
        return version, track
    return None


class Recent:
    """Ids this process answered, with the track that answered (the live config may move it)."""

    def __init__(self, limit: int = MAX_RECENT) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, str] = OrderedDict()

    def remember(self, request_id: str, track: str) -> None:
        self._ids[request_id] = track
        self._ids.move_to_end(request_id)
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def track_of(self, request_id: str) -> str | None:
        return self._ids.get(request_id)


class Counted:
    """(request id, outcome) pairs already counted by this process: a resent feedback counts once."""

    def __init__(self, limit: int = MAX_RECENT) -> None:
        self.limit = limit
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def seen(self, request_id: str, outcome: str) -> bool:
        return (request_id, outcome) in self._seen

    def add(self, request_id: str, outcome: str) -> None:
        self._seen[(request_id, outcome)] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)


class Variants:
    """The variants this process has counted feedback for: bounded, so labels stay bounded."""

    def __init__(self, own: Variant, limit: int = MAX_VARIANTS) -> None:
        self.limit = limit
        self._known: set[Variant] = {own}

    def admits(self, variant: Variant) -> bool:
        return variant in self._known or len(self._known) < self.limit

    def add(self, variant: Variant) -> None:
        self._known.add(variant)
