"""The ModelDeployment a child object belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlrollout.api import names


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        """Controller reference: garbage collection removes children even if the finalizer never runs."""
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def selector(self) -> dict[str, str]:
        return {names.LABEL_DEPLOYMENT: self.name}
