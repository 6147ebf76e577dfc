"""Prometheus for analysis, through prometheus-api-client (synchronous: run it off the event loop).

Nothing raises out of sample() or check(): an unreachable server, a refused or failed query and a
reply that is not Prometheus's all become a Sample with `error` set, which analysis counts against
the error budget (the rollout pauses; it never promotes or rolls back on it).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from mlrollout.rollout.analysis import MetricQueries, Sample

ERROR_LIMIT = 300
# The client's exception text: HTTP Status Code 400 (b'{"status":"error","errorType":...,"error":...}')
_BODY = re.compile(r"\((b'.*'|b\".*\")\)\s*$", re.S)


class QueryError(Exception):
    """A query that did not give one number; the message is fit for a status condition."""


class PrometheusProvider:
    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout
        # No retries: the next analysis interval is the retry, and a tick must not block for long.
        self._client = PrometheusConnect(url=self.address, retry=Retry(total=0), timeout=timeout)

    def sample(self, metric_name: str, queries: MetricQueries) -> Sample:
        try:
            value = self.query(queries.value)
            requests_seen = self.query(queries.requests)
        except QueryError as e:
            return Sample(metric_name, None, None, str(e))
        return Sample(metric_name, value, requests_seen, None)

    def query(self, promql: str) -> float | None:
        """One number, or None when the query matched nothing. Raises QueryError, nothing else."""
        try:
            result: Any = self._client.custom_query(promql)
        except PrometheusApiClientException as e:
            raise QueryError(_clip(f"query failed: {_prometheus_error(str(e))}")) from None
        except (
            ValueError,
            KeyError,
            TypeError,
            IndexError,
        ):  # first: JSONDecodeError is a RequestException too
            raise QueryError(
                f"Prometheus at {self.address} answered with something that is not its API"
            ) from None
        except requests.RequestException as e:
            raise QueryError(_clip(f"Prometheus at {self.address} unreachable: {_first_line(e)}")) from None
        return _one_number(result)

    def check(self, promql: str) -> str | None:
        """The parse error of `promql`, or None when it parses (or Prometheus could not tell)."""
        try:
            self._client.custom_query(promql)
        except PrometheusApiClientException as e:
            body = _error_body(str(e))
            if body.get("errorType") == "bad_data":
                return _clip(str(body.get("error", "")))
        except (requests.RequestException, ValueError, KeyError, TypeError, IndexError):
            return None
        return None

    def is_online(self) -> bool:
        try:
            return bool(self._client.check_prometheus_connection())
        except requests.RequestException:
            return False

    def close(self) -> None:
        self._client.close()


def _one_number(result: Any) -> float | None:
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return _number(result[1])  # a scalar: [time, "value"]
    if not isinstance(result, list):
        raise QueryError("Prometheus answered with something that is not its API")
    if not result:
        return None
    if len(result) > 1:
        raise QueryError(
            f"query returned {len(result)} series; analysis needs one number (aggregate it, e.g. sum(...))"
        )
    first = result[0]
    if not isinstance(first, dict) or "value" not in first:
        raise QueryError("query returned a range or a string; analysis needs an instant number")
    return _number(first["value"][1])


def _number(text: Any) -> float:
    try:
        return float(text)  # Prometheus writes NaN, +Inf, -Inf as text too
    except (TypeError, ValueError):
        raise QueryError(f"query returned {str(text)[:40]!r}, not a number") from None


def _prometheus_error(text: str) -> str:
    """Prometheus's own message ("1:5: parse error: ...") out of the client's exception text."""
    body = _error_body(text)
    return str(body["error"]) if "error" in body else _first_line(text)


def _error_body(text: str) -> dict[str, Any]:
    found = _BODY.search(text)
    if not found:
        return {}
    try:
        body = json.loads(ast.literal_eval(found.group(1)))
    except (ValueError, SyntaxError):
        return {}
    return body if isinstance(body, dict) else {}


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."
