"""Inference log: rotated Parquet files, bounded memory, labels joinable by request id."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from conftest import AppFactory
from mlrollout.runtime.inference_log import InferenceLog

COLS = [f"f{i}" for i in range(20)]


def read(path: Path, stream: str) -> pd.DataFrame:
    files = sorted((path / stream).rglob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def test_predictions_and_labels_join_by_request_id(
    make_client: AppFactory, rf_path: Path, tmp_path: Path
) -> None:
    logdir = tmp_path / "log"
    c = make_client(
        rf_path,
        model_name="rf",
        model_version="3",
        inference_log_uri=str(logdir),
        track="canary",
        feedback_outcomes=("converted",),
    )
    rows = [[0.1 * i + j for i in range(20)] for j in range(3)]
    r = c.post("/invocations", json={"dataframe_split": {"columns": COLS, "data": rows}})
    rid = r.headers["x-request-id"]
    c.post("/invocations", json={"instances": rows[:1]}, headers={"x-request-id": "fixed-id"})
    c.post("/feedback", json={"request_id": rid, "label": 1})
    c.post("/feedback", json={"request_id": "fixed-id", "outcome": "converted", "value": 3.0})
    c.app.state.runtime.log.flush()  # type: ignore[attr-defined]
    preds = read(logdir, "predictions")
    labels = read(logdir, "labels")
    assert len(preds) == 4 and set(preds.request_id) == {rid, "fixed-id"}
    assert set(preds.columns) >= {
        "request_id",
        "row",
        "timestamp",
        "model",
        "version",
        "track",
        "prediction",
        "input.f0",
        "input.f19",
    }
    assert (preds.track == "canary").all() and (preds.version == "3").all()
    first = preds[preds.request_id == rid].sort_values("row")
    assert first["input.f1"].tolist() == [0.1, 1.1, 2.1]
    assert first.prediction.tolist() == r.json()["predictions"]
    assert str(preds.timestamp.dtype).startswith("datetime64")
    joined = preds.merge(labels, on="request_id", suffixes=("", "_label"))
    assert len(joined) == 4 and set(joined.outcome) == {"label", "converted"}


def test_rotation_by_rows(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), rotate_rows=10, rotate_seconds=3600)
    log.start()
    for i in range(35):
        log.log_predictions(f"r{i}", "m", "1", "stable", [{"a": float(i)}], [i % 2])
    log.close()
    files = sorted((tmp_path / "predictions").rglob("*.parquet"))
    assert len(files) == 4
    assert sum(len(pd.read_parquet(f)) for f in files) == 35


def test_rotation_by_time(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), rotate_rows=10_000, rotate_seconds=0.2)
    log.start()
    log.log_predictions("r", "m", "1", "stable", [{"a": 1.0}], [1])
    deadline = time.monotonic() + 5
    while not list((tmp_path / "predictions").rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((tmp_path / "predictions").rglob("*.parquet"))
    log.close()


def test_a_reader_never_sees_a_half_written_local_file(tmp_path: Path, monkeypatch: Any) -> None:
    import pyarrow.parquet as pq

    real_write, seen_while_writing = pq.write_table, []

    def write_table(table: Any, where: Any, **kwargs: Any) -> None:
        seen_while_writing.extend((tmp_path / "predictions").rglob("*.parquet"))
        real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    log = InferenceLog(str(tmp_path), rotate_rows=1)
    log.start()
    log.log_predictions("r1", "m", "1", "stable", [{"a": 1.0}], [1])
    log.close()
    assert seen_while_writing == [] and len(read(tmp_path, "predictions")) == 1
    assert [p.name for p in (tmp_path / "predictions").rglob("*") if p.is_file()] == [
        Path(log.files_written[0]).name
    ]


def test_bounded_memory_never_blocks(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = InferenceLog(
        str(tmp_path), max_queue=100, on_drop=dropped.append
    )  # writer not started: queue fills

    def flood() -> None:
        for i in range(1000):
            log.log_predictions(f"r{i}", "m", "1", "stable", [{"a": 1.0}], [1])

    # With no writer draining the queue, a blocking put would never return: a liveness check.
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "logging blocked on a full queue"
    assert log.queue.qsize() == 100 and log.dropped == 900 and sum(dropped) == 900


def test_object_store_uri_through_fsspec() -> None:
    import fsspec

    log = InferenceLog("memory://mlrollout-test/log", rotate_rows=5)
    log.start()
    log.log_predictions("r1", "m", "1", "stable", [{"a": 1.0, "b": "x"}], ["yes"])
    log.log_label("r1", "m", "1", "stable", label="yes")
    log.close()
    fs = fsspec.filesystem("memory")
    files = fs.glob("/mlrollout-test/log/**/*.parquet")
    assert len(files) == 2
    with fs.open(next(f for f in files if "/predictions/" in f), "rb") as fh:
        df = pd.read_parquet(fh)
    assert df["input.b"].tolist() == ["x"] and df.prediction.tolist() == ["yes"]


def test_storage_outage_is_contained(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    log = InferenceLog(str(blocker), rotate_rows=1)
    log.start()
    log.log_predictions("r1", "m", "1", "stable", [{"a": 1.0}], [1])
    log.close()  # the write fails inside the writer thread, logged, nothing raised
    assert log.files_written == []
