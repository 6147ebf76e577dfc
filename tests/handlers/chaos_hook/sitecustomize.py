"""Loaded by the operator under test (PYTHONPATH): kills it inside the window between applying
children and writing status, at random with a given seed, and logs every alias move to a file, so a
test can tell an action repeated from one done once. Never installed outside the tests."""

from __future__ import annotations

import os
import random

_P = float(os.environ.get("MLROLLOUT_TEST_KILL_BEFORE_STATUS", "0") or 0)
_RNG = random.Random(os.environ.get("MLROLLOUT_TEST_SEED"))
_ALIAS_LOG = os.environ.get("MLROLLOUT_TEST_ALIAS_LOG")


def _install() -> None:
    from mlrollout.adapters.k8s.executor import KubeExecutor
    from mlrollout.adapters.registry.mlflow import MlflowRegistry

    patch_status = KubeExecutor.patch_status

    def dying_patch_status(self: KubeExecutor, *args: object, **kwargs: object) -> None:
        if _RNG.random() < _P:
            os._exit(137)  # children applied, status not written: the window under test
        patch_status(self, *args, **kwargs)  # type: ignore[arg-type]

    set_alias = MlflowRegistry.set_alias

    def logged_set_alias(self: MlflowRegistry, name: str, alias: str, version: str) -> object:
        if _ALIAS_LOG:
            with open(_ALIAS_LOG, "a") as log:
                log.write(f"{name} {alias} {version}\n")
        return set_alias(self, name, alias, version)

    KubeExecutor.patch_status = dying_patch_status  # type: ignore[method-assign]
    MlflowRegistry.set_alias = logged_set_alias  # type: ignore[method-assign,assignment]


if _P or _ALIAS_LOG:
    _install()
