"""5-field cron: table of known fire times, and properties checked against a minute-by-minute scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlrollout.rollout import cron

T = datetime(2026, 1, 7, 10, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", T, T + timedelta(minutes=1)),
        ("0 * * * *", T, datetime(2026, 1, 7, 11, 0, tzinfo=UTC)),
        ("@hourly", T, datetime(2026, 1, 7, 11, 0, tzinfo=UTC)),
        ("*/15 * * * *", T, datetime(2026, 1, 7, 10, 45, tzinfo=UTC)),
        ("5/20 * * * *", T, datetime(2026, 1, 7, 10, 45, tzinfo=UTC)),
        ("0 3 * * *", T, datetime(2026, 1, 8, 3, 0, tzinfo=UTC)),
        ("@daily", T, datetime(2026, 1, 8, 0, 0, tzinfo=UTC)),
        ("0 3 * * 1", T, datetime(2026, 1, 12, 3, 0, tzinfo=UTC)),  # next Monday
        ("0 3 * * mon", T, datetime(2026, 1, 12, 3, 0, tzinfo=UTC)),
        ("0 0 * * 7", T, datetime(2026, 1, 11, 0, 0, tzinfo=UTC)),  # 7 is Sunday
        ("@weekly", T, datetime(2026, 1, 11, 0, 0, tzinfo=UTC)),
        ("30 2 1 * *", T, datetime(2026, 2, 1, 2, 30, tzinfo=UTC)),
        ("0 0 1 jan *", T, datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("0 12 1-5 * *", T, datetime(2026, 2, 1, 12, 0, tzinfo=UTC)),
        ("0 9-17/4 * * *", T, datetime(2026, 1, 7, 13, 0, tzinfo=UTC)),
        ("0,30 * * * *", T, datetime(2026, 1, 7, 11, 0, tzinfo=UTC)),
        # both day fields restricted: either matches (the 15th, or any Friday)
        ("0 0 15 * fri", T, datetime(2026, 1, 9, 0, 0, tzinfo=UTC)),
        ("0 0 29 2 *", T, datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_after(expression: str, after: datetime, expected: datetime) -> None:
    schedule = cron.parse(expression)
    assert schedule.next_after(after) == expected
    assert schedule.last_at_or_before(expected) == expected
    assert schedule.last_at_or_before(expected - timedelta(minutes=1)) != expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day of week: 8"),
        ("* * * foo *", "month: 'foo'"),
        ("5-1 * * * *", "backwards"),
        ("*/0 * * * *", "step must be at least 1"),
        ("a,b * * * *", "minute"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron.parse(expression)


def test_never_firing_expression_gives_none() -> None:
    schedule = cron.parse("0 0 31 2 *")
    assert schedule.next_after(T) is None
    assert schedule.last_at_or_before(T) is None


def test_last_between_is_the_latest_slot_in_the_window_only() -> None:
    schedule = cron.parse("0 3 * * *")
    day3 = datetime(2026, 1, 7, 3, 0, tzinfo=UTC)
    assert schedule.last_between(day3 - timedelta(days=3), T) == day3  # missed slots fire once
    assert schedule.last_between(day3, T) is None  # (after, until]: the slot acted on is not again
    assert schedule.last_between(day3 - timedelta(seconds=1), day3) == day3


_FIELD = st.one_of(
    st.just("*"),
    st.integers(1, 20).map(lambda n: f"*/{n}"),
    st.lists(st.integers(0, 59), min_size=1, max_size=3).map(lambda xs: ",".join(map(str, xs))),
)
_HOURS = st.one_of(st.just("*"), st.integers(0, 23).map(str), st.integers(1, 12).map(lambda n: f"*/{n}"))
_DOM = st.one_of(st.just("*"), st.integers(1, 28).map(str), st.just("1-10"))
_DOW = st.one_of(st.just("*"), st.integers(0, 7).map(str), st.just("mon-fri"))
_TIMES = st.datetimes(datetime(2025, 1, 1), datetime(2030, 1, 1)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
)


@settings(max_examples=60, deadline=None)
@given(_FIELD, _HOURS, _DOM, _DOW, _TIMES)
def test_next_after_is_the_first_match_of_a_scan(
    minute: str, hour: str, dom: str, dow: str, start: datetime
) -> None:
    schedule = cron.parse(f"{minute} {hour} {dom} * {dow}")
    found = schedule.next_after(start)
    assert found is not None
    assert found > start and schedule.matches(found)
    # nothing in between matches (scan at most 3 days of minutes: the strategies fire more often)
    probe = start + timedelta(minutes=1)
    while probe < found and probe < start + timedelta(days=3):
        assert not schedule.matches(probe), probe
        probe += timedelta(minutes=1)
    assert schedule.last_at_or_before(found) == found
    previous = schedule.last_at_or_before(found - timedelta(minutes=1))
    assert previous is None or previous <= start
