"""Operator settings from the environment the Helm chart sets."""

from __future__ import annotations

import pytest

from mlrollout.handlers.settings import Settings


def test_defaults_watch_all_namespaces() -> None:
    s = Settings.from_env({})
    assert s.namespaces == ()
    assert s.health_port == 8080
    assert s.peering is None
    assert not s.verbose


def test_namespaces_are_a_comma_list() -> None:
    s = Settings.from_env({"MLROLLOUT_NAMESPACES": " ml, team-b ,,", "MLROLLOUT_VERBOSE": "1"})
    assert s.namespaces == ("ml", "team-b")
    assert s.verbose


def test_chart_variables() -> None:
    env = {
        "MLROLLOUT_HEALTH_PORT": "9090",
        "MLROLLOUT_PEERING": "mlrollout",
        "MLROLLOUT_LOG_FORMAT": "JSON",
        "POD_NAME": "op-0",
        "MLROLLOUT_HEARTBEAT_SECONDS": "2.5",
    }
    s = Settings.from_env(env)
    assert (s.health_port, s.peering, s.log_format, s.instance, s.heartbeat_seconds) == (
        9090,
        "mlrollout",
        "json",
        "op-0",
        2.5,
    )


def test_shard_selector_equality_and_existence_terms() -> None:
    s = Settings.from_env({"MLROLLOUT_SELECTOR": "team=fraud, tier ,"})
    assert s.selector == (("team", "fraud"), ("tier", None))
    assert Settings.from_env({}).selector == ()


@pytest.mark.parametrize("bad", ["team!=fraud", "team in (a,b)", "=x", "team="])
def test_shard_selector_refuses_what_kopf_filters_cannot_express(bad: str) -> None:
    with pytest.raises(ValueError, match="MLROLLOUT_SELECTOR"):
        Settings.from_env({"MLROLLOUT_SELECTOR": bad})
