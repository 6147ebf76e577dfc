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
        self._files: OrderedDict[str, frozenset[str]] = OrderedDict()
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
        with self._lock:
            if any(request_id in ids for ids in self._files.values()):
                return True
            # Unknown ids cost at most one listing per interval, whatever a caller sends.
            if time.monotonic() - self._last_scan < self.min_rescan_seconds:
                return False
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
            return any(request_id in ids for ids in self._files.values())

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

    def _read_ids(self, fs: Any, path: str) -> frozenset[str] | None:
        import pyarrow.parquet as pq

        try:
            with fs.open(path, "rb") as fh:
                column = pq.read_table(fh, columns=["request_id"]).column("request_id")
        except Exception:  # a file being written or a storage hiccup: read it next time
            log.warning("request index: cannot read %s", path, exc_info=True)
            return None
        return frozenset(str(v) for v in column.to_pylist() if v is not None)
