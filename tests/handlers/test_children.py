"""Which ModelDeployment a watched child wakes, and which child events wake nobody."""

from __future__ import annotations

from mlrollout.api import names
from mlrollout.handlers import children


def child(
    status: dict[str, object] | None = None, generation: int = 1, owner_kind: str = names.KIND
) -> dict[str, object]:
    return {
        "metadata": {
            "name": "churn-stable",
            "namespace": "ml",
            "generation": generation,
            "resourceVersion": "7",
            "labels": {names.LABEL_DEPLOYMENT: "churn", names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "ownerReferences": [
                {"apiVersion": names.API_VERSION, "kind": owner_kind, "name": "churn", "uid": "u-1"}
            ],
        },
        "status": status or {},
    }


def test_owner_by_reference_and_by_label() -> None:
    assert children.owner_uids(child()) == {"u-1"}
    assert children.owner_uids(child(owner_kind="CronJob")) == frozenset()  # a monitor CronJob's Job
    assert children.owner_name(child(owner_kind="CronJob")) == ("ml", "churn")
    assert children.owner_name({"metadata": {"namespace": "ml"}}) is None


def test_only_generation_and_status_changes_count() -> None:
    base = children.change_key(child({"readyReplicas": 1}))
    bumped = child({"readyReplicas": 1})
    bumped["metadata"]["resourceVersion"] = "8"  # type: ignore[index]
    assert children.change_key(bumped) == base
    assert children.change_key(child({"readyReplicas": 2})) != base
    assert children.change_key(child({"readyReplicas": 1}, generation=2)) != base


def test_every_watched_kind_is_one_the_operator_creates() -> None:
    plurals = {k.plural for k in children.WATCHED}
    assert {"deployments", "services", "jobs", "cronjobs"} <= plurals
    assert f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}" == children.CHILD_SELECTOR
