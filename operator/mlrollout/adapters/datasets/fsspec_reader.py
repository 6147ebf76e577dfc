"""Read a holdout or training table by URI: Parquet or CSV, local or in object storage.

S3-compatible servers other than AWS are reached through the endpoint MLflow already uses
(MLFLOW_S3_ENDPOINT_URL) or the AWS SDKs' AWS_ENDPOINT_URL; credentials come from the usual AWS
variables (the registry credentials Secret, as the serving pods get them).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any, Literal

import fsspec
import pandas as pd

Format = Literal["parquet", "csv"]
ENDPOINT_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class DatasetError(Exception):
    """The dataset cannot be read: missing, unreadable, or not a table. The message says which."""


def storage_options(uri: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    if not uri.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, Any] = {}
    client: dict[str, str] = {}
    endpoint = next((env[v] for v in ENDPOINT_VARIABLES if env.get(v)), None)
    if endpoint:
        client["endpoint_url"] = endpoint
    if env.get("AWS_DEFAULT_REGION"):
        client["region_name"] = env["AWS_DEFAULT_REGION"]
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options.update(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"])
        if env.get("AWS_SESSION_TOKEN"):
            options["token"] = env["AWS_SESSION_TOKEN"]
    if client:
        options["client_kwargs"] = client
    return options


def guess_format(uri: str) -> Format:
    path = uri.split("?", 1)[0].lower()
    for suffix in (".gz", ".bz2", ".zst", ".xz"):
        path = path.removesuffix(suffix)
    if path.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    return "parquet"


def read_table(uri: str, fmt: Format | None = None, env: Mapping[str, str] | None = None) -> pd.DataFrame:
    fmt = fmt or guess_format(uri)
    options = storage_options(uri, env)
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
        if not fs.exists(path):
            raise DatasetError(f"dataset {uri} does not exist")
        if fmt == "csv":
            frame = pd.read_csv(uri, storage_options=options or None, compression="infer")
        else:
            frame = pd.read_parquet(uri, storage_options=options or None)
    except DatasetError:
        raise
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset {uri} does not exist") from exc
    except PermissionError as exc:
        raise DatasetError(f"dataset {uri}: access denied ({exc})") from exc
    except ImportError as exc:
        raise DatasetError(f"dataset {uri}: no filesystem for this scheme ({exc})") from exc
    except Exception as exc:  # bad Parquet, bad CSV, network: all mean "cannot read", said once
        raise DatasetError(
            f"dataset {uri} cannot be read as {fmt}: {type(exc).__name__}: {exc}"[:600]
        ) from exc
    if frame.empty:
        raise DatasetError(f"dataset {uri} has no rows")
    return frame


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table (values and column names, not the file's bytes): for lineage."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:32]
