"""The operator's copy of its children: trimmed to what a reconcile reads, indexed by owner, never
taken back to an older version by a late watch event, and our own deletes gone at once."""

from __future__ import annotations

import sys
import threading
from typing import Any

from mlrollout.adapters.k8s.cache import ChildCache, trim
from mlrollout.api import names


def deployment(name: str, rv: str, owner: str = "churn", uid: str = "d-1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": uid,
            "resourceVersion": rv,
            "generation": 2,
            "labels": {names.LABEL_DEPLOYMENT: owner, names.LABEL_TRACK: "stable"},
            "annotations": {
                names.ANNOTATION_SPEC_HASH: "h1",
                "kubectl.kubernetes.io/last-applied-configuration": "x" * 5000,
            },
            "managedFields": [{"manager": "mlrollout", "fieldsV1": {"f:spec": {}}}],
            "ownerReferences": [{"kind": names.KIND, "uid": "md-1", "name": owner}],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "spec": {"containers": [{"name": "model", "image": "i", "env": [{"x": "y" * 4000}]}]}
            },
        },
        "status": {"availableReplicas": 3, **status},
    }


def test_trim_keeps_what_the_reconcile_reads_and_drops_the_rest() -> None:
    kept = trim("Deployment", deployment("churn-stable", "5"))
    assert kept["spec"] == {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}}
    assert kept["metadata"]["annotations"] == {names.ANNOTATION_SPEC_HASH: "h1"}
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["ownerReferences"][0]["uid"] == "md-1"
    assert kept["status"] == {"availableReplicas": 3}
    assert kept["kind"] == "Deployment"
    assert sys.getsizeof(str(kept)) < 1000 < sys.getsizeof(str(deployment("churn-stable", "5")))


def test_children_listed_by_owner_and_moved_between_owners_by_label() -> None:
    cache = ChildCache()
    cache.put("Deployment", deployment("churn-stable", "5"))
    cache.put("Deployment", deployment("churn-canary", "6", uid="d-2"))
    cache.put("Deployment", deployment("fraud-stable", "7", owner="fraud", uid="d-3"))
    assert [d["metadata"]["name"] for d in cache.owned("Deployment", "ml", "churn")] == [
        "churn-canary",
        "churn-stable",
    ]
    assert cache.owned("Service", "ml", "churn") == []
    relabelled = deployment("fraud-stable", "8", owner="churn", uid="d-3")
    cache.put("Deployment", relabelled)
    assert cache.owned("Deployment", "ml", "fraud") == []
    assert len(cache.owned("Deployment", "ml", "churn")) == 3


def test_a_late_watch_event_never_takes_an_entry_back() -> None:
    cache = ChildCache()
    cache.put("Deployment", deployment("churn-stable", "10", availableReplicas=1))  # our own apply
    cache.put("Deployment", deployment("churn-stable", "9", availableReplicas=0))  # the watch, late
    held = cache.get("Deployment", "ml", "churn-stable")
    assert held is not None and held["metadata"]["resourceVersion"] == "10"
    cache.put("Deployment", deployment("churn-stable", "11", availableReplicas=2))
    held = cache.get("Deployment", "ml", "churn-stable")
    assert held is not None and held["status"]["availableReplicas"] == 2


def test_deletes_of_the_same_object_go_and_of_an_older_one_do_not() -> None:
    cache = ChildCache()
    cache.put("Deployment", deployment("churn-stable", "10", uid="new"))
    # The DELETED event of an earlier object of the same name, arriving after we made the new one.
    cache.remove("Deployment", deployment("churn-stable", "8", uid="old"))
    assert cache.get("Deployment", "ml", "churn-stable") is not None
    cache.remove("Deployment", deployment("churn-stable", "12", uid="new"))
    assert cache.get("Deployment", "ml", "churn-stable") is None
    assert cache.owned("Deployment", "ml", "churn") == []
    cache.put("Deployment", deployment("churn-stable", "13"))
    cache.forget("Deployment", "ml", "churn-stable")  # our own delete
    assert cache.get("Deployment", "ml", "churn-stable") is None and len(cache) == 0


def test_kinds_it_does_not_hold_are_ignored() -> None:
    cache = ChildCache(frozenset({"Service"}))
    cache.put("Deployment", deployment("churn-stable", "1"))
    assert len(cache) == 0 and not cache.holds("Deployment") and cache.holds("Service")


def test_readers_and_writers_in_threads() -> None:
    """Watches write on the event loop while reconciles read in the pool: no 'changed size during
    iteration', every entry ends up indexed once."""
    cache = ChildCache()
    errors: list[BaseException] = []

    def write(offset: int) -> None:
        try:
            for i in range(300):
                cache.put(
                    "Deployment", deployment(f"m{i}-stable", str(offset + i), owner=f"m{i % 7}", uid=f"u{i}")
                )
        except BaseException as e:
            errors.append(e)

    def read() -> None:
        try:
            for i in range(300):
                cache.owned("Deployment", "ml", f"m{i % 7}")
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=f, args=a)
        for f, a in [(write, (0,)), (write, (1000,)), (read, ()), (read, ())]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) == 300
    assert sum(len(cache.owned("Deployment", "ml", f"m{k}")) for k in range(7)) == 300
