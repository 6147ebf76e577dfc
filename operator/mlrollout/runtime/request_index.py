"""Which request ids this model served: feedback for any other id is refused (inference log on).

Ids served by this process are remembered (bounded); an id served by another worker or replica is
looked up in the inference log's Parquet files (the `request_id` column only; files are immutable,
so each is read once and its ids cached, bounded, oldest files evicted first).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("mlrollout.runtime.request_index")


class RequestIndex:
    def __init__(
        self,
        uri: str,
        max_recent: int = 200_000,
        max_cached_ids: int = 2_000_000,
        lookback_days: int = 7,
        min_rescan_seconds: float = 1.0,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.max_recent = max_recent
        self.max_cached_ids = max_cached_ids
        self.lookback_days = lookback_days
        self.min_rescan_seconds = min_rescan_seconds
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._files: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()
        self._cached = 0
        self._last_scan = -float("inf")
        self._lock = threading.Lock()

    def remember(self, request_id: str) -> None:
        """Called on the request path: O(1), bounded."""
        self._recent[request_id] = None
        self._recent.move_to_end(request_id)
        if len(self._recent) > self.max_recent:
            self._recent.popitem(last=False)

    def served_here(self, request_id: str) -> bool:
        return request_id in self._recent

    def known(self, request_id: str) -> bool:
        """Blocking (storage I/O): call it off the event loop."""
        if request_id in self._recent:
            return True
        return self.logged(request_id) is not None

    def logged(self, request_id: str) -> tuple[str, str] | None:
        """(version, track) of the logged prediction row of `request_id`, None when not in the log
        (a file without those columns gives ("", ""): known, variant unknown). Blocking."""
        with self._lock:
            found = self._lookup(request_id)
            if found is not None:
                return found
            # Unknown ids cost at most one listing per interval, whatever a caller sends.
            if time.monotonic() - self._last_scan < self.min_rescan_seconds:
                return None
            self._last_scan = time.monotonic()
            for fs, path in self._new_files():
                ids = self._read_ids(fs, path)
                if ids is None:
                    continue
                self._files[path] = ids
                self._cached += len(ids)
                while self._cached > self.max_cached_ids and len(self._files) > 1:
                    _, old = self._files.popitem(last=False)
                    self._cached -= len(old)
            return self._lookup(request_id)

    def _lookup(self, request_id: str) -> tuple[str, str] | None:
        for ids in self._files.values():
            if request_id in ids:
                return ids[request_id]
        return None

    def _new_files(self) -> list[tuple[Any, str]]:
        import fsspec

        today = datetime.now(UTC).date()
        found: list[tuple[Any, str]] = []
        for back in range(self.lookback_days, -1, -1):
            day = today - timedelta(days=back)
            pattern = f"{self.uri}/predictions/date={day:%Y-%m-%d}/*.parquet"
            try:
                fs, _, paths = fsspec.get_fs_token_paths(pattern)
            except (OSError, ValueError):
                continue
            found += [(fs, p) for p in sorted(paths) if p not in self._files]
        return found

    def _read_ids(self, fs: Any, path: str) -> dict[str, tuple[str, str]] | None:
        """request id -> (version, track) of the file's prediction rows (shadow rows excluded: the
        caller was answered by the primary)."""
        import pyarrow.parquet as pq

        try:
            with fs.open(path, "rb") as fh:
                names = set(pq.read_schema(fh).names)
                fh.seek(0)
                wanted = [c for c in ("request_id", "version", "track", "kind") if c in names]
                table = pq.read_table(fh, columns=wanted).to_pydict()
        except Exception:  # a file being written or a storage hiccup: read it next time
            log.warning("request index: cannot read %s", path, exc_info=True)
            return None
        ids = table.get("request_id", [])
        versions = table.get("version") or [""] * len(ids)
        tracks = table.get("track") or [""] * len(ids)
        kinds = table.get("kind") or [None] * len(ids)
        variants: dict[tuple[str, str], tuple[str, str]] = {}  # one tuple per variant, shared
        out: dict[str, tuple[str, str]] = {}
        for rid, version, track, kind in zip(ids, versions, tracks, kinds, strict=True):
            if rid is None or kind == "shadow":
                continue
            key = (str(version or ""), str(track or ""))
            out.setdefault(str(rid), variants.setdefault(key, key))
        return out
