"""Request payloads -> a validated batch, checked against the model signature's input schema.

Every problem with the input raises InputError (a 4xx with a JSON message), never anything else.
All-numeric schemas take a fast path: rows are type-checked in Python and become one float64 array,
without pandas on the request path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NUMERIC = {"double", "float", "long", "integer", "boolean"}
INTEGRAL = {"long", "integer"}
OIP_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


class InputError(ValueError):
    """Bad input: becomes a 4xx with {"error_code": ..., "message": ...}."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MLflow DataType name: double, float, long, integer, boolean, string, binary, datetime
    required: bool = True


@dataclass
class Batch:
    """A validated batch: `array` (n, k) float64 for numeric schemas, else a DataFrame."""

    n: int
    array: np.ndarray[Any, Any] | None = None
    frame: pd.DataFrame | None = None

    def to_frame(self, columns: Sequence[str]) -> pd.DataFrame:
        if self.frame is not None:
            return self.frame
        assert self.array is not None
        return pd.DataFrame(self.array, columns=list(columns))

    def records(self, columns: Sequence[str]) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts, for the inference log."""
        if self.array is not None:
            return [dict(zip(columns, row, strict=False)) for row in self.array.tolist()]
        assert self.frame is not None
        return [{str(k): _plain(v) for k, v in r.items()} for r in self.frame.to_dict(orient="records")]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def concat(batches: Sequence[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    n = sum(b.n for b in batches)
    if all(b.array is not None for b in batches):
        return Batch(n=n, array=np.concatenate([b.array for b in batches if b.array is not None]))
    frames = [b.frame for b in batches if b.frame is not None]
    return Batch(n=n, frame=pd.concat(frames, ignore_index=True))


class InputSchema:
    def __init__(self, columns: Sequence[Column] | None) -> None:
        self.columns: tuple[Column, ...] = tuple(columns or ())
        self.names = [c.name for c in self.columns]
        self.index = {c.name: i for i, c in enumerate(self.columns)}
        self.known = bool(self.columns)
        self.numeric = self.known and all(c.type in NUMERIC for c in self.columns)
        # All double/float columns: plain numbers can skip the per-value checks.
        self.all_real = self.known and all(c.type in ("double", "float") for c in self.columns)

    @classmethod
    def from_mlmodel(cls, meta: dict[str, Any]) -> InputSchema:
        """From the MLmodel file's `signature.inputs` (a JSON list), without importing mlflow."""
        raw = (meta.get("signature") or {}).get("inputs")
        try:
            specs = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            specs = None
        if not isinstance(specs, list) or not specs:
            return cls(None)
        cols = []
        for spec in specs:
            if not isinstance(spec, dict) or "name" not in spec or spec.get("type") in (None, "tensor"):
                return cls(None)  # tensor or unnamed specs: the model validates its own input
            if spec["type"] not in OIP_DATATYPES:
                return cls(None)  # arrays, objects, maps: leave them to the model
            cols.append(Column(str(spec["name"]), str(spec["type"]), bool(spec.get("required", True))))
        return cls(cols)

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "type": c.type, "required": c.required} for c in self.columns]

    # -- payload formats ---------------------------------------------------------------------------

    def parse_mlflow(self, body: Any) -> Batch:
        """MLflow scoring protocol: dataframe_split, dataframe_records, instances, inputs."""
        if not isinstance(body, dict):
            raise InputError(
                "body must be a JSON object with one of the keys dataframe_split, "
                "dataframe_records, instances, inputs"
            )
        keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
        if len(keys) != 1:
            raise InputError(
                "body must have exactly one of the keys dataframe_split, dataframe_records, "
                f"instances, inputs; got {sorted(body)[:10]}"
            )
        payload = body[keys[0]]
        if keys[0] == "dataframe_split":
            if not isinstance(payload, dict):
                raise InputError("dataframe_split must be an object with 'columns' and 'data'")
            data = payload.get("data")
            columns = payload.get("columns")
            if not isinstance(data, list):
                raise InputError("dataframe_split.data must be a list of rows")
            if columns is not None and (
                not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
            ):
                raise InputError("dataframe_split.columns must be a list of strings")
            return self.from_rows(data, columns)
        if keys[0] == "inputs" and isinstance(payload, dict):
            return self.from_columns(payload)
        if not isinstance(payload, list):
            raise InputError(f"{keys[0]} must be a list")
        if payload and all(isinstance(r, dict) for r in payload):
            return self.from_records(payload)
        return self.from_rows(payload, None)

    def parse_v2(self, body: Any) -> Batch:
        """Open Inference Protocol v2: one tensor per column (shape [n] or [n,1]), or one [n, k] tensor."""
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
            raise InputError("body must be an object with a non-empty 'inputs' list of tensors")
        tensors = body["inputs"]
        for t in tensors:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or "data" not in t:
                raise InputError("each input tensor needs 'name', 'shape', 'datatype' and 'data'")
            if not isinstance(t["data"], list):
                raise InputError(f"input {t['name']!r}: data must be a list")
        if len(tensors) == 1 and tensors[0]["name"] not in self.index:
            t = tensors[0]
            data = t["data"]
            shape = t.get("shape")
            if data and not isinstance(data[0], list):
                k = len(self.columns) or (shape[-1] if isinstance(shape, list) and shape else 1)
                if not isinstance(k, int) or k <= 0 or len(data) % k:
                    raise InputError(f"input {t['name']!r}: {len(data)} values do not fill rows of {k}")
                data = [data[i : i + k] for i in range(0, len(data), k)]
            return self.from_rows(data, None)
        cols: dict[str, Any] = {}
        for t in tensors:
            data = t["data"]
            if data and isinstance(data[0], list):
                if not all(isinstance(v, list) and len(v) == 1 for v in data):
                    raise InputError(f"input {t['name']!r}: expected shape [n] or [n, 1]")
                data = [v[0] for v in data]
            cols[t["name"]] = data
        return self.from_columns(cols)

    # -- shapes --------------------------------------------------------------------------------------

    def from_columns(self, cols: Mapping[str, Any]) -> Batch:
        if not cols:
            raise InputError("empty input: no columns")
        lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in cols.items()}
        if any(v < 0 for v in lengths.values()):
            bad = [k for k, v in lengths.items() if v < 0]
            raise InputError(f"inputs: each column must be a list of values; not a list: {bad[:5]}")
        if len(set(lengths.values())) != 1:
            raise InputError(f"inputs: columns have different lengths: {dict(list(lengths.items())[:10])}")
        names = list(cols)
        n = next(iter(lengths.values()))
        rows = [[cols[c][i] for c in names] for i in range(n)]
        return self.from_rows(rows, names)

    def from_records(self, records: list[dict[str, Any]]) -> Batch:
        if not records:
            raise InputError("empty input: no rows")
        if self.known:
            self._check_names(records[0].keys())
            names = self.names
            rows = []
            for i, r in enumerate(records):
                if len(r) != len(names) or any(c not in r for c in names):
                    self._check_names(r.keys(), where=f"row {i}: ")
                rows.append([r.get(c) for c in names])
            return self._validated(rows)
        names = list(dict.fromkeys(k for r in records for k in r))
        return self._open(pd.DataFrame.from_records(records, columns=names))

    def from_rows(self, data: list[Any], columns: list[str] | None) -> Batch:
        if not data:
            raise InputError("empty input: no rows")
        if not all(isinstance(r, list) for r in data):
            # A flat list is one row for a known schema with several columns, else a single column.
            if self.known and len(self.columns) > 1 and len(data) == len(self.columns):
                data = [data]
            else:
                data = [[v] for v in data]
        width = len(columns) if columns is not None else (len(self.columns) if self.known else len(data[0]))
        for i, r in enumerate(data):
            if len(r) != width:
                raise InputError(f"row {i} has {len(r)} values, expected {width}")
        if columns is not None and len(set(columns)) != len(columns):
            raise InputError("duplicate column names")
        if not self.known:
            return self._open(pd.DataFrame(data, columns=columns))
        if columns is not None and columns != self.names:
            self._check_names(columns)
            order = [columns.index(c) for c in self.names]
            data = [[r[j] for j in order] for r in data]
        return self._validated(data)

    # -- validation ----------------------------------------------------------------------------------

    def _check_names(self, given: Any, where: str = "") -> None:
        given = list(given)
        missing = [c for c in self.names if c not in given]
        extra = [c for c in given if c not in self.index]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing[:20]}")
            if extra:
                parts.append(f"unexpected columns {[str(c) for c in extra[:20]]}")
            raise InputError(where + "; ".join(parts) + f"; the model expects {self.names[:50]}")

    def _validated(self, rows: list[list[Any]]) -> Batch:
        if self.all_real and {type(v) for r in rows for v in r} <= {float, int}:
            arr = self._real_array(rows)
            if not np.isnan(arr).any():
                return Batch(n=len(rows), array=arr)
        cols = self.columns
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                col = cols[j]
                if v is None or (type(v) is float and math.isnan(v)):
                    if col.required or col.type not in ("double", "float"):
                        if col.required:
                            raise InputError(
                                f"row {i}, column {col.name!r}: missing value (null/NaN) "
                                f"but the signature marks the column as required"
                            )
                        raise InputError(
                            f"row {i}, column {col.name!r}: missing value in a {col.type} column"
                        )
                    continue
                if not _fits(col.type, v):
                    raise InputError(
                        f"row {i}, column {col.name!r}: expected {col.type}, "
                        f"got {type(v).__name__} {str(v)[:40]!r}"
                    )
        if self.numeric:
            return Batch(n=len(rows), array=self._real_array(rows))
        frame = pd.DataFrame(rows, columns=self.names)
        for c in cols:
            frame[c.name] = _cast(frame[c.name], c)
        return Batch(n=len(rows), frame=frame)

    def _real_array(self, rows: list[list[Any]]) -> np.ndarray[Any, Any]:
        """float64 rows, or a 400: an integer beyond float range or an infinity is never a feature."""
        try:
            arr = np.array(rows, dtype=np.float64)
        except OverflowError as exc:
            i, j = next((i, j) for i, r in enumerate(rows) for j, v in enumerate(r) if not finite_number(v))
            raise InputError(
                f"row {i}, column {self.names[j]!r}: number out of the 64-bit float range"
            ) from exc
        bad = np.argwhere(np.isinf(arr))
        if len(bad):
            i, j = int(bad[0][0]), int(bad[0][1])
            raise InputError(f"row {i}, column {self.names[j]!r}: non-finite number {rows[i][j]!r}")
        return arr

    def _open(self, frame: pd.DataFrame) -> Batch:
        if len(frame) == 0:
            raise InputError("empty input: no rows")
        return Batch(n=len(frame), frame=frame)


def finite_number(v: Any) -> bool:
    """An int or float that is a finite 64-bit float (bools are not numbers here)."""
    if type(v) is int:
        try:
            return math.isfinite(float(v))
        except OverflowError:
            return False
    return type(v) is float and math.isfinite(v)


def _fits(type_name: str, v: Any) -> bool:
    t = type(v)
    if type_name in ("double", "float"):
        return finite_number(v)
    if type_name in INTEGRAL:
        bound = 2**63 if type_name == "long" else 2**31
        return (t is int or (t is float and v.is_integer())) and -bound <= v < bound
    if type_name == "boolean":
        return t is bool or (t is int and v in (0, 1))
    if type_name in ("string", "binary", "datetime"):
        return t is str
    return True


def _cast(series: pd.Series[Any], col: Column) -> pd.Series[Any]:
    try:
        if col.type == "datetime":
            return pd.to_datetime(series)
        dtype = {
            "double": "float64",
            "float": "float32",
            "long": "int64",
            "integer": "int32",
            "boolean": "bool",
            "string": "object",
            "binary": "object",
        }[col.type]
        if series.isna().any() and dtype.startswith("int"):
            return series.astype("float64")
        return series.astype(dtype)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise InputError(f"column {col.name!r}: cannot read as {col.type}: {exc}") from exc


def oip_datatype(arr: np.ndarray[Any, Any]) -> str:
    kind = arr.dtype.kind
    if kind == "f":
        return "FP32" if arr.dtype.itemsize == 4 else "FP64"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"
