"""One resolution cache per tracking URI: the registry is asked when a spec changes, when an entry is
older than the resync period, or after a webhook said the model changed, never on every tick.

Only answers are kept; a problem (registry down, alias missing) is asked again on the next tick, so
decide()'s own backoff stays in charge of a broken registry. Moving an alias or tagging goes to the
registry unchanged (the alias move is read back fresh by the caller's idempotency check).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlrollout.api.serving import ModelRef
from mlrollout.rollout.observed import RegistryProblem, ResolvedModel

Key = tuple[str, str | None, str | None]  # model name, version, alias


def key_of(ref: ModelRef) -> Key:
    return (ref.name, ref.version, ref.alias)


@dataclass
class ResolutionCache:
    """Thread-safe (ticks run in worker threads). `ttl` seconds, 0 disables caching (the old design)."""

    ttl: float
    clock: Callable[[], float] = time.monotonic
    max_entries: int = 10_000  # a bound, whatever the number of models: the oldest entry goes first
    _entries: dict[Key, tuple[float, ResolvedModel]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    asked: int = 0  # registry calls made through this cache (for the benchmark and tests)

    def resolve(
        self, ref: ModelRef, ask: Callable[[ModelRef], ResolvedModel | RegistryProblem], fresh: bool = False
    ) -> ResolvedModel | RegistryProblem:
        key = key_of(ref)
        now = self.clock()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and not fresh and self.ttl > 0 and now - hit[0] < self.ttl:
            return hit[1]
        answer = ask(ref)
        with self._lock:
            self.asked += 1
            if isinstance(answer, ResolvedModel) and self.ttl > 0:
                self._entries.pop(key, None)  # re-inserted last: dicts keep insertion order
                self._entries[key] = (now, answer)
                while len(self._entries) > self.max_entries:
                    del self._entries[next(iter(self._entries))]
            else:
                self._entries.pop(key, None)
        return answer

    def invalidate(self, model_name: str) -> int:
        """Forget every entry of the model (a webhook said it changed); how many were dropped."""
        with self._lock:
            gone = [k for k in self._entries if k[0] == model_name]
            for k in gone:
                del self._entries[k]
        return len(gone)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass
class ResolutionCaches:
    """One cache per tracking URI, made on first use."""

    ttl: float
    clock: Callable[[], float] = time.monotonic
    _caches: dict[str, ResolutionCache] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_uri(self, tracking_uri: str) -> ResolutionCache:
        with self._lock:
            cache = self._caches.get(tracking_uri)
            if cache is None:
                cache = self._caches[tracking_uri] = ResolutionCache(self.ttl, self.clock)
            return cache

    def invalidate(self, model_name: str) -> int:
        """A webhook names a model, not the server it came from: drop the model everywhere."""
        with self._lock:
            caches = list(self._caches.values())
        return sum(c.invalidate(model_name) for c in caches)

    @property
    def asked(self) -> int:
        with self._lock:
            return sum(c.asked for c in self._caches.values())
