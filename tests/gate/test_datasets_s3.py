"""Datasets read with s3:// through fsspec/s3fs from a real S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from harness.s3 import S3Server
from mlrollout.adapters.datasets.fsspec_reader import DatasetError, read_table

FRAME = pd.DataFrame({"tenure": [1, 5, 9], "plan": ["basic", "plus", "premium"], "churned": [1, 0, 0]})


@pytest.mark.services
def test_s3(s3_server: S3Server) -> None:
    bucket = s3_server.bucket("datasets-test")
    buf = io.BytesIO()
    FRAME.to_parquet(buf)
    uri = s3_server.put(bucket, "churn/holdout.parquet", buf.getvalue())
    env = s3_server.env()
    pd.testing.assert_frame_equal(read_table(uri, env=env), FRAME)
    csv = s3_server.put(bucket, "churn/holdout.csv", FRAME.to_csv(index=False).encode())
    pd.testing.assert_frame_equal(read_table(csv, env=env), FRAME)
    with pytest.raises(DatasetError, match="does not exist"):
        read_table(f"s3://{bucket}/churn/missing.parquet", env=env)
