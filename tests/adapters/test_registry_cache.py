"""The shared resolution cache: asked once per model until it expires, a spec change or a webhook."""

from __future__ import annotations

import threading

import pytest

from mlrollout.adapters.registry.cache import ResolutionCache, ResolutionCaches
from mlrollout.api.serving import ModelRef
from mlrollout.rollout.observed import RegistryProblem, ResolvedModel


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """Counts calls; answers with whatever version the test set for the alias."""

    def __init__(self) -> None:
        self.calls = 0
        self.versions: dict[str, str] = {"churn": "3"}
        self.down = False

    def resolve(self, ref: ModelRef) -> ResolvedModel | RegistryProblem:
        self.calls += 1
        if self.down:
            return RegistryProblem("RegistryUnavailable", "connection refused")
        return ResolvedModel(ref.name, self.versions[ref.name], alias=ref.alias)


CHAMPION = ModelRef(name="churn", alias="champion")


def test_asked_once_within_the_resync_period_then_again_after_it() -> None:
    clock, registry = Clock(), Registry()
    cache = ResolutionCache(ttl=300, clock=clock)
    for _ in range(50):
        assert cache.resolve(CHAMPION, registry.resolve) == ResolvedModel("churn", "3", alias="champion")
    assert registry.calls == 1
    registry.versions["churn"] = "4"
    clock.now += 299
    assert cache.resolve(CHAMPION, registry.resolve).version == "3"  # type: ignore[union-attr]
    clock.now += 2
    assert cache.resolve(CHAMPION, registry.resolve).version == "4"  # type: ignore[union-attr]
    assert registry.calls == 2


def test_fresh_asks_and_refreshes_the_entry_for_everyone() -> None:
    clock, registry = Clock(), Registry()
    cache = ResolutionCache(ttl=300, clock=clock)
    cache.resolve(CHAMPION, registry.resolve)
    registry.versions["churn"] = "5"
    assert cache.resolve(CHAMPION, registry.resolve, fresh=True).version == "5"  # type: ignore[union-attr]
    assert cache.resolve(CHAMPION, registry.resolve).version == "5"  # type: ignore[union-attr]
    assert registry.calls == 2


def test_a_webhook_drops_every_entry_of_the_model_only() -> None:
    registry = Registry()
    registry.versions["fraud"] = "1"
    caches = ResolutionCaches(ttl=300, clock=Clock())
    a, b = caches.for_uri("http://a:5000"), caches.for_uri("http://b:5000")
    assert caches.for_uri("http://a:5000") is a
    a.resolve(CHAMPION, registry.resolve)
    a.resolve(ModelRef(name="churn", version="3"), registry.resolve)
    b.resolve(CHAMPION, registry.resolve)
    a.resolve(ModelRef(name="fraud", alias="champion"), registry.resolve)
    assert caches.invalidate("churn") == 3
    assert (len(a), len(b)) == (1, 0)
    assert caches.asked == 4


def test_problems_are_never_kept() -> None:
    registry = Registry()
    cache = ResolutionCache(ttl=300, clock=Clock())
    cache.resolve(CHAMPION, registry.resolve)
    registry.down = True
    assert isinstance(cache.resolve(CHAMPION, registry.resolve, fresh=True), RegistryProblem)
    registry.down = False
    assert isinstance(cache.resolve(CHAMPION, registry.resolve), ResolvedModel)
    assert registry.calls == 3


def test_ttl_zero_is_the_old_design_asking_every_time() -> None:
    registry = Registry()
    cache = ResolutionCache(ttl=0, clock=Clock())
    for _ in range(5):
        cache.resolve(CHAMPION, registry.resolve)
    assert registry.calls == 5 and len(cache) == 0 and cache.asked == 5


def test_bounded_whatever_the_number_of_models() -> None:
    registry = Registry()
    registry.versions = {f"m{i}": "1" for i in range(100)}
    cache = ResolutionCache(ttl=300, clock=Clock(), max_entries=10)
    for i in range(100):
        cache.resolve(ModelRef(name=f"m{i}", alias="champion"), registry.resolve)
    assert len(cache) == 10
    cache.resolve(ModelRef(name="m99", alias="champion"), registry.resolve)  # the newest stayed
    assert registry.calls == 100


@pytest.mark.parametrize("threads", [8])
def test_shared_by_worker_threads(threads: int) -> None:
    registry = Registry()
    registry.versions = {f"m{i}": "1" for i in range(20)}
    cache = ResolutionCache(ttl=300, clock=Clock())

    def work() -> None:
        for _ in range(50):
            for i in range(20):
                assert isinstance(
                    cache.resolve(ModelRef(name=f"m{i}", alias="a"), registry.resolve), ResolvedModel
                )

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(cache) == 20 and cache.asked == registry.calls
    assert registry.calls < 20 * threads + 1  # at most one miss per model and thread, never per call
