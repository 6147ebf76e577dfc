"""Load sent to a Service as users would send it: one-row predictions of random customers, in the
background, each answer recorded with its time, status code and latency."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.models import FEATURES


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when the answer came back
    status: int  # HTTP status; 0 when the Service could not be reached
    seconds: float
    body: str = ""  # the start of the answer
    request_id: str = ""  # the x-request-id answered (the runtime's own carry <hex>.<track>.<version>)


class Load:
    """`with Load(address) as load:` sends requests every `period` seconds from `workers` threads."""

    def __init__(
        self,
        address: str,
        period: float = 0.05,
        workers: int = 2,
        seed: int = 0,
        row: Callable[[random.Random], dict[str, float]] | None = None,
        feedback: Callable[[Answer, random.Random], dict[str, Any] | None] | None = None,
    ) -> None:
        """`row` makes one request's row (default: every feature N(0, 1)). `feedback`: called after
        each answered request; a body it returns is POSTed to /feedback through the same address (a
        user's conversion reported by the application)."""
        self.address, self.period = address, period
        self._row = row or (lambda rng: {f: round(rng.gauss(0, 1), 3) for f in FEATURES})
        self.feedback = feedback
        self.feedback_statuses: dict[int, int] = {}
        self.answers: list[Answer] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def first(self, predicate: Callable[[Answer], bool]) -> Answer | None:
        with self._lock:
            return next((a for a in self.answers if predicate(a)), None)

    def last(self, predicate: Callable[[Answer], bool]) -> Answer | None:
        with self._lock:
            return next((a for a in reversed(self.answers) if predicate(a)), None)

    def counts(self) -> dict[int, int]:
        with self._lock:
            found: dict[int, int] = {}
            for a in self.answers:
                found[a.status] = found.get(a.status, 0) + 1
            return found

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                row = self._row(self._rng)
            body = json.dumps({"dataframe_records": [row]}).encode()
            req = urllib.request.Request(
                f"http://{self.address}/invocations", data=body, headers={"Content-Type": "application/json"}
            )
            t0 = time.monotonic()
            text, rid = "", ""
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    text = r.read(200).decode(errors="replace")
                    status = r.status
                    rid = r.headers.get("x-request-id", "")
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:  # until kube-proxy has programmed the Service, or a pod went away
                status = 0
            answer = Answer(time.time(), status, time.monotonic() - t0, text, rid)
            with self._lock:
                self.answers.append(answer)
                outcome = self.feedback(answer, self._rng) if self.feedback and status == 200 else None
            if outcome is not None:
                self._post_feedback(outcome)

    def _post_feedback(self, body: dict[str, Any]) -> None:
        req = urllib.request.Request(
            f"http://{self.address}/feedback",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError:
            status = 0
        with self._lock:
            self.feedback_statuses[status] = self.feedback_statuses.get(status, 0) + 1
