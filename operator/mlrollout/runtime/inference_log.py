"""Inference log: one row per prediction (request id, time, version, track, inputs, prediction),
written to rotated Parquet files under a directory or any fsspec URI (s3://, gs://, memory://).

The request path only appends to a bounded queue (never blocks, drops and counts when full); a
background thread writes files. Labels from /feedback go to a sibling `labels/` folder with the same
request id, so that monitoring joins them later.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("mlrollout.runtime.inference_log")

PREDICTIONS = "predictions"
LABELS = "labels"


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, default=str)


class InferenceLog:
    def __init__(
        self,
        uri: str,
        rotate_rows: int = 50_000,
        rotate_seconds: float = 60.0,
        max_queue: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.rotate_rows = max(1, rotate_rows)
        self.rotate_seconds = rotate_seconds
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=max_queue)
        self.on_drop = on_drop
        self.dropped = 0
        self.files_written: list[str] = []
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._flush_now = threading.Event()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def _put(self, stream: str, row: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait((stream, row))
        except queue.Full:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop(1)

    def log_predictions(
        self,
        request_id: str,
        model: str,
        version: str,
        track: str,
        records: list[dict[str, Any]],
        predictions: list[Any],
        kind: str = "primary",
        latency_ms: float | None = None,
    ) -> None:
        ts = time.time()
        for i, (inputs, pred) in enumerate(zip(records, predictions, strict=False)):
            row = {
                "request_id": request_id,
                "row": i,
                "timestamp": ts,
                "model": model,
                "version": version,
                "track": track,
                "kind": kind,
                "prediction": _cell(pred),
                "latency_ms": latency_ms,
            }
            for k, v in inputs.items():
                row[f"input.{k}"] = _cell(v)
            self._put(PREDICTIONS, row)

    def log_label(
        self,
        request_id: str,
        model: str,
        version: str,
        track: str,
        label: Any = None,
        outcome: str | None = None,
        value: float | None = None,
    ) -> None:
        self._put(
            LABELS,
            {
                "request_id": request_id,
                "timestamp": time.time(),
                "model": model,
                "version": version,
                "track": track,
                "label": _cell(label),
                "outcome": outcome,
                "value": value,
            },
        )

    def flush(self, timeout: float = 10.0) -> None:
        """Write whatever is buffered now (tests, shutdown)."""
        done = threading.Event()
        self._put("__flush__", {"event": done})
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._started:
            self.flush(timeout)
            try:
                self.queue.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)

    # -- writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        buffers: dict[str, list[dict[str, Any]]] = {PREDICTIONS: [], LABELS: []}
        opened = time.monotonic()
        while True:
            try:
                item = self.queue.get(timeout=max(0.05, self.rotate_seconds / 4))
            except queue.Empty:
                item = ("__tick__", {})
            if item is None:
                self._write_all(buffers)
                return
            stream, row = item
            if stream in buffers:
                buffers[stream].append(row)
            full = any(len(b) >= self.rotate_rows for b in buffers.values())
            due = time.monotonic() - opened >= self.rotate_seconds
            if stream == "__flush__" or full or due:
                self._write_all(buffers)
                opened = time.monotonic()
                if stream == "__flush__":
                    row["event"].set()

    def _write_all(self, buffers: dict[str, list[dict[str, Any]]]) -> None:
        for stream, rows in buffers.items():
            if rows:
                try:
                    self._write(stream, rows)
                except Exception:  # a storage outage must never reach the request path
                    log.exception("inference log: could not write %d %s rows", len(rows), stream)
                buffers[stream] = []

    def _write(self, stream: str, rows: list[dict[str, Any]]) -> None:
        import fsspec
        import pyarrow as pa
        import pyarrow.parquet as pq
        from fsspec.implementations.local import LocalFileSystem

        cols: dict[str, list[Any]] = {}
        for r in rows:
            for k in r:
                cols.setdefault(k, [])
        for k in cols:
            cols[k] = [r.get(k) for r in rows]
        arrays = {}
        for k, vals in cols.items():
            if k == "timestamp":
                arrays[k] = pa.array(
                    [datetime.fromtimestamp(v, UTC) for v in vals], pa.timestamp("us", "UTC")
                )
                continue
            try:
                arrays[k] = pa.array(vals)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in one column: keep them as text
                arrays[k] = pa.array([None if v is None else str(v) for v in vals], pa.string())
        table = pa.table(arrays)
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        path = f"{self.uri}/{stream}/date={now:%Y-%m-%d}/{name}"
        fs, _, (real,) = fsspec.get_fs_token_paths(path)
        parent = real.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        if isinstance(fs, LocalFileSystem):  # readers glob *.parquet: write aside, then rename (atomic)
            partial = f"{parent}/.{name}.partial"
            with fs.open(partial, "wb") as fh:
                pq.write_table(table, fh)
            fs.mv(partial, real)
        else:  # an object store's PUT is atomic already; a copy + delete would only double the cost
            with fs.open(real, "wb") as fh:
                pq.write_table(table, fh)
        self.files_written.append(path)
