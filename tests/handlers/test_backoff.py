"""The pure backoff after API errors: exponential, jittered, capped, never under Retry-After."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlrollout.handlers.backoff import Backoff, retry_after


def test_doubles_from_the_base_up_to_the_cap() -> None:
    b = Backoff(base=1.0, factor=2.0, cap=60.0)
    full = [b.delay(n, jitter=0.999999) for n in range(1, 9)]
    assert [round(d) for d in full] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert b.delay(1, jitter=0.0) == 0.5  # the lower half of the spread


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    b = Backoff(base=1.0, cap=30.0)
    assert b.delay(1, jitter=0.0, retry_after=7) == 7
    assert b.delay(1, jitter=0.0, retry_after=500) == 30
    assert b.delay(6, jitter=0.999, retry_after=1) > 15


@given(
    st.integers(min_value=-5, max_value=10_000),
    st.floats(min_value=-1, max_value=2),
    st.none() | st.floats(0, 1e6),
)
def test_always_positive_and_bounded(failures: int, jitter: float, after: float | None) -> None:
    b = Backoff(base=0.5, factor=3.0, cap=120.0)
    assert 0.25 <= b.delay(failures, jitter, after) <= 120.0


def test_retry_after_header() -> None:
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({"retry-after": "1"}) == 1.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after({"Retry-After": "-1"}) is None
    assert retry_after(None) is None and retry_after({}) is None
