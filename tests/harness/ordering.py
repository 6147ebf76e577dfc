"""Longest modules first, so that a run split across workers ends when its longest module does.

`make test` hands whole modules to pytest-xdist workers in collection order (`--dist loadfile
--no-loadscope-reorder`, through `module_scheduler`); each worker has its own control plane, so
modules never share one cluster's state. Modules that must share a worker form one scope.
Waiting on real parts dominates (rollouts, Jobs, pods starting), so the run's wall time is set by
how the long modules are packed: they must start first, not last. Their cost comes from
`tests/durations.json` (seconds per module, measured); a module not listed there is assumed to
be long, since new modules are usually integration tests.

`MLROLLOUT_RECORD_DURATIONS=1 make test` rewrites the file from the run's own measurements.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

DURATIONS = Path(__file__).resolve().parent.parent / "durations.json"
UNKNOWN_MODULE_SECONDS = 120.0
# Both build images in one Docker engine, whose data root caches the debootstrapped base image: a
# second engine (another worker) would build that base again, minutes of CPU.
SHARED_SCOPES = {
    "tests/charts/test_operator_image.py": "docker-engine",
    "tests/runtime/test_runtime_container.py": "docker-engine",
}


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def scope_of(nodeid: str) -> str:
    module = module_of(nodeid)
    return SHARED_SCOPES.get(module, module)


def load_costs(path: Path = DURATIONS) -> dict[str, float]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def longest_first(items: list[pytest.Item], costs: dict[str, float]) -> list[pytest.Item]:
    """Scopes by descending cost, a scope's modules together; within a module, pytest's own order
    (fixtures rely on it)."""
    rank: dict[str, int] = {}  # first appearance, of modules and of scopes
    scope_rank: dict[str, int] = {}
    scope_cost: dict[str, float] = defaultdict(float)
    for item in items:
        module, scope = module_of(item.nodeid), scope_of(item.nodeid)
        if module not in rank:
            rank[module] = len(rank)
            scope_rank.setdefault(scope, len(scope_rank))
            scope_cost[scope] += costs.get(module, UNKNOWN_MODULE_SECONDS)

    def key(item: pytest.Item) -> tuple[float, int, int]:
        scope = scope_of(item.nodeid)
        return (-scope_cost[scope], scope_rank[scope], rank[module_of(item.nodeid)])

    return sorted(items, key=key)


def module_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with our scopes: whole modules, SHARED_SCOPES kept together."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ModuleScheduling(config, log)


class DurationRecorder:
    """Sums setup, call and teardown time per module, as reported to the controlling process."""

    def __init__(self, path: Path = DURATIONS) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        measured = {m: round(s, 1) for m, s in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
        self.path.write_text(json.dumps(measured, indent=1) + "\n")
