"""The order modules are handed to workers: longest first, each module's tests kept together."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.ordering import (
    SHARED_SCOPES,
    UNKNOWN_MODULE_SECONDS,
    DurationRecorder,
    load_costs,
    longest_first,
)


def _items(*nodeids: str) -> list[Any]:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_long_modules_first_and_each_module_in_its_own_order() -> None:
    items = _items("a.py::t1", "b.py::t1", "a.py::t2", "c.py::t1", "b.py::t2")
    costs = {"a.py": 1.0, "b.py": 500.0, "c.py": 30.0}
    assert [i.nodeid for i in longest_first(items, costs)] == [
        "b.py::t1",
        "b.py::t2",
        "c.py::t1",
        "a.py::t1",
        "a.py::t2",
    ]


def test_an_unmeasured_module_counts_as_long_and_ties_keep_collection_order() -> None:
    items = _items("new.py::t", "old.py::t", "other.py::t")
    costs = {"old.py": UNKNOWN_MODULE_SECONDS + 1, "other.py": UNKNOWN_MODULE_SECONDS}
    assert [i.nodeid for i in longest_first(items, costs)] == ["old.py::t", "new.py::t", "other.py::t"]


def test_a_missing_or_malformed_file_means_no_costs(tmp_path: Path) -> None:
    assert load_costs(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("[1, 2")
    assert load_costs(tmp_path / "bad.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert load_costs(tmp_path / "list.json") == {}


def test_recorded_durations_sum_phases_per_module_and_load_back(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    recorder = DurationRecorder(path)
    for nodeid, seconds in [("a.py::t1", 1.25), ("a.py::t1", 2.0), ("b.py::t", 9.0), ("a.py::t2", 0.5)]:
        recorder.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, duration=seconds))  # type: ignore[arg-type]
    recorder.pytest_sessionfinish(None, 0)  # type: ignore[arg-type]
    assert load_costs(path) == {"b.py": 9.0, "a.py": 3.8}
    assert list(load_costs(path)) == ["b.py", "a.py"]


def test_a_shared_scope_runs_together_at_the_cost_of_all_its_modules() -> None:
    image, container = SHARED_SCOPES
    items = _items("long.py::t", f"{image}::t", "mid.py::t", f"{container}::t")
    costs = {"long.py": 300.0, image: 200.0, container: 150.0, "mid.py": 250.0}
    assert [i.nodeid for i in longest_first(items, costs)] == [
        f"{image}::t",
        f"{container}::t",
        "long.py::t",
        "mid.py::t",
    ]


def test_every_module_that_starts_a_docker_engine_shares_one_scope() -> None:
    tests = Path(__file__).resolve().parent.parent
    users = {
        str(p.relative_to(tests.parent))
        for p in tests.rglob("test_*.py")
        if "docker_engine" in p.read_text() and p.parent.name != "harness"
    }
    assert users == set(SHARED_SCOPES) and len(set(SHARED_SCOPES.values())) == 1
