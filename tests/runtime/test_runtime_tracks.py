"""The runtime accepts every track the operator deploys it on (a blue-green preview included)."""

from __future__ import annotations

import pytest

from mlrollout.api import names
from mlrollout.runtime import config
from mlrollout.runtime import metric_names as n
from mlrollout.runtime.__main__ import parse_args


@pytest.mark.parametrize("track", names.TRACKS)
def test_every_operator_track_is_a_runtime_track(track: str) -> None:
    assert track in config.TRACKS and track in n.TRACKS
    assert parse_args(["--track", track]).track == track
    assert config.LiveConfig().merged({"track": track}).track == track


def test_an_unknown_track_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--track", "purple"])
