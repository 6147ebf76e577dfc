"""The plugin's polling loops without a cluster: a Ctrl-C that Python swallowed still ends them."""

from __future__ import annotations

from typing import Any

import pytest

from mlrollout.cli import main


class Cluster:
    def __init__(self) -> None:
        self.reads = 0

    def get(self, name: str) -> dict[str, Any]:
        self.reads += 1
        main._Interrupts.seen = True  # as if Ctrl-C came while a finalizer ran: no exception here
        return {"metadata": {"name": name}, "status": {"phase": "Progressing"}}


@pytest.fixture(autouse=True)
def _reset() -> Any:
    yield
    main._Interrupts.seen = False


def test_watch_ends_on_a_swallowed_interrupt() -> None:
    cluster = Cluster()
    with pytest.raises(KeyboardInterrupt):
        main._watch(cluster, "churn", timeout=2, interval=0.01)  # type: ignore[arg-type]
    assert cluster.reads == 1


def test_wait_ends_on_a_swallowed_interrupt() -> None:
    cluster = Cluster()
    with pytest.raises(KeyboardInterrupt):
        main._wait_for_operator(cluster, "churn", "promote", "r1", timeout=2)  # type: ignore[arg-type]
    assert cluster.reads == 1
