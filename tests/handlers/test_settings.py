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
    assert s.health_host == "0.0.0.0"  # in a pod: probes and scrapes come to the pod address
    assert Settings.from_env(env | {"MLROLLOUT_HEALTH_HOST": "127.0.0.1"}).health_host == "127.0.0.1"


def test_shard_selector_equality_and_existence_terms() -> None:
    s = Settings.from_env({"MLROLLOUT_SELECTOR": "team=fraud, tier ,"})
    assert s.selector == (("team", "fraud"), ("tier", None))
    assert Settings.from_env({}).selector == ()


@pytest.mark.parametrize("bad", ["team!=fraud", "team in (a,b)", "=x", "team="])
def test_shard_selector_refuses_what_kopf_filters_cannot_express(bad: str) -> None:
    with pytest.raises(ValueError, match="MLROLLOUT_SELECTOR"):
        Settings.from_env({"MLROLLOUT_SELECTOR": bad})


def test_event_driven_defaults_and_the_polling_design() -> None:
    s = Settings.from_env({})
    assert (s.heartbeat_seconds, s.registry_resync_seconds, s.watch_children) == (300.0, 300.0, True)
    assert s.max_concurrent_reconciles == 8 and s.webhook_secret is None
    old = Settings.from_env({"MLROLLOUT_POLLING": "true", "MLROLLOUT_RESYNC_SECONDS": "600"})
    assert (old.heartbeat_seconds, old.registry_resync_seconds, old.watch_children) == (10.0, 0.0, False)
    s = Settings.from_env(
        {
            "MLROLLOUT_RESYNC_SECONDS": "120",
            "MLROLLOUT_REGISTRY_RESYNC_SECONDS": "30",
            "MLROLLOUT_MAX_CONCURRENT_RECONCILES": "4",
            "MLROLLOUT_WEBHOOK_SECRET": "x",
            "MLROLLOUT_PEERING_PRIORITY": "7",
            "MLROLLOUT_PEERING_LIFETIME": "15",
        }
    )
    assert (s.heartbeat_seconds, s.registry_resync_seconds, s.max_concurrent_reconciles) == (120.0, 30.0, 4)
    assert (s.webhook_secret, s.peering_priority, s.peering_lifetime) == ("x", 7, 15)
    # An alias moved without a webhook is seen on a tick: the shorter registry resync sets the pace.
    assert s.resync_seconds == 30.0 and Settings.from_env({}).resync_seconds == 300.0
    assert old.resync_seconds == 10.0  # polling: the registry on every 10 s tick
    with pytest.raises(ValueError, match="MLROLLOUT_MAX_CONCURRENT_RECONCILES"):
        Settings.from_env({"MLROLLOUT_MAX_CONCURRENT_RECONCILES": "0"})
