"""Prometheus through prometheus-api-client: one analysis sample = the metric's value and the
candidate's request count over the window. Nothing raises: an unreachable server or a query that
does not parse becomes the sample's `error` (the analysis outcome `error`, which pauses a rollout).

The client is synchronous (requests): call it off the event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from mlrollout.rollout.analysis import MetricQueries, Sample


class QueryFailed(Exception):
    pass


@dataclass
class PrometheusProvider:
    address: str
    timeout: float = 5.0
    _client: PrometheusConnect = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # No retries: a tick must answer quickly; the analysis budgets decide what an outage means.
        self._client = PrometheusConnect(url=self.address, disable_ssl=True, retry=Retry(total=0))

    def query(self, promql: str) -> float | None:
        """The scalar value of an instant query (None when it returns no series)."""
        try:
            result = self._client.custom_query(query=promql, timeout=math.ceil(self.timeout))
        except PrometheusApiClientException as e:
            raise QueryFailed(f"query refused: {str(e)[:300]}") from e
        except Exception as e:  # requests' connection errors, timeouts, odd replies
            raise QueryFailed(f"Prometheus at {self.address} unreachable: {type(e).__name__}") from e
        if not isinstance(result, list):
            raise QueryFailed("unexpected reply shape from Prometheus")
        if not result:
            return None
        if len(result) > 1:
            raise QueryFailed(f"query returned {len(result)} series; it must give one value (use sum/avg)")
        try:
            return float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise QueryFailed("unexpected sample shape from Prometheus") from e

    def sample(self, metric: str, queries: MetricQueries) -> Sample:
        try:
            requests = self.query(queries.requests)
            value = self.query(queries.value)
        except QueryFailed as e:
            return Sample(metric=metric, value=None, requests=None, error=str(e))
        return Sample(metric=metric, value=value, requests=requests)

    def check(self, promql: str) -> str | None:
        """Why a PromQL expression is refused by the server (None when it parses and runs)."""
        try:
            self.query(promql)
        except QueryFailed as e:
            return str(e)
        return None
