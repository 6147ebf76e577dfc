"""Datasets by URI: local Parquet and CSV (s3:// is in tests/gate/test_datasets_s3.py, beside its server)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlrollout.adapters.datasets.fsspec_reader import DatasetError, fingerprint, guess_format, read_table

FRAME = pd.DataFrame({"tenure": [1, 5, 9], "plan": ["basic", "plus", "premium"], "churned": [1, 0, 0]})


def test_local_parquet_and_csv(tmp_path: Path) -> None:
    FRAME.to_parquet(tmp_path / "h.parquet")
    FRAME.to_csv(tmp_path / "h.csv.gz", index=False)
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "h.parquet")), FRAME)
    pd.testing.assert_frame_equal(read_table(f"file://{tmp_path}/h.csv.gz"), FRAME)
    assert fingerprint(read_table(str(tmp_path / "h.parquet"))) == fingerprint(FRAME)
    assert fingerprint(FRAME.assign(churned=[0, 0, 0])) != fingerprint(FRAME)


@pytest.mark.parametrize(
    ("uri", "fmt"), [("s3://b/x.parquet", "parquet"), ("/d/x.CSV.gz", "csv"), ("/d/x", "parquet")]
)
def test_guess_format(uri: str, fmt: str) -> None:
    assert guess_format(uri) == fmt


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_table(str(tmp_path / "nope.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="cannot be read as parquet"):
        read_table(str(tmp_path / "bad.parquet"))
    with pytest.raises(DatasetError, match=r"no filesystem|cannot be read"):
        read_table("nosuchscheme://x/y.parquet")
