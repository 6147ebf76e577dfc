"""skops types a registered version's lineage asks for, trusted only from a fixed allow-list.

The built-in trainer (`mlrollout train`) records the non-default types its skops file holds in the
version tag mlrollout.skops_types, so that a retrained model serves without anyone editing
spec.serving.trustedTypes. A tag is written by whoever can write to the registry, so it is never
trusted as such: only the types below, which the built-in estimators need and which build no code
when loaded (a dtype, fitted tree structures), are taken from it. Anything else in the tag is
ignored with a warning; the loader then refuses it and names it, as for any untrusted type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger("mlrollout.runtime.lineage")

# = mlrollout.api.training.TAG_SKOPS_TYPES (the runtime imports nothing of the operator)
SKOPS_TYPES_TAG = "mlrollout.skops_types"
# Exactly what the built-in trainer's estimators need (tests/train checks each estimator against it).
LINEAGE_SAFE_TYPES = frozenset(
    {
        "numpy.dtype",  # linear models, logistic regression
        "sklearn.tree._tree.Tree",  # random forests
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # gradient boosting
    }
)


def from_tag(value: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(trusted, ignored) types of a mlrollout.skops_types tag value (comma-separated)."""
    named = [t.strip() for t in (value or "").split(",") if t.strip()]
    trusted = tuple(sorted({t for t in named if t in LINEAGE_SAFE_TYPES}))
    ignored = tuple(sorted({t for t in named if t not in LINEAGE_SAFE_TYPES}))
    return trusted, ignored


def trusted_from_tags(tags: Mapping[str, str], name: str, version: str) -> tuple[str, ...]:
    trusted, ignored = from_tag(tags.get(SKOPS_TYPES_TAG))
    if ignored:
        log.warning(
            "%s version %s: tag %s names types outside the lineage allow-list, not trusted: %s",
            name,
            version,
            SKOPS_TYPES_TAG,
            ", ".join(ignored),
        )
    return trusted


def registered_types(name: str, version: str, tracking_uri: str | None = None) -> tuple[str, ...]:
    """The allow-listed types version `version` of `name` records; () when the registry cannot say
    (the loader then refuses untrusted types with its usual message, nothing is guessed)."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        tags = dict(client.get_model_version(name, version).tags or {})
    except Exception as exc:  # MlflowException, network: trust nothing more
        log.warning("cannot read the lineage tags of %s version %s: %s", name, version, exc)
        return ()
    return trusted_from_tags(tags, name, version)
