"""Sticky buckets: every key lands in exactly one variant, the candidate's share of keys is its weight."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.adapters.traffic import routing as r

HEX_KEYS = st.text(alphabet="0123456789abcdefABCDEF", min_size=2, max_size=40)
KEYS = st.one_of(HEX_KEYS, st.text(min_size=0, max_size=20).filter(lambda s: "\n" not in s))


def matches(regex: str | None, value: str) -> bool:
    return regex is not None and re.fullmatch(regex, value) is not None


@given(weight=st.integers(0, 100), key=KEYS)
def test_a_key_matches_the_variant_of_its_bucket_and_only_that(weight: int, key: str) -> None:
    cut = r.candidate_buckets(weight)
    canary = matches(r.header_regex(0, cut), key)
    stable = matches(r.header_regex(cut, r.BUCKETS), key)
    bucket = r.bucket_of(key)
    if bucket is None:
        assert not canary and not stable
    else:
        assert canary == (bucket < cut) and stable == (bucket >= cut)


@given(weight=st.integers(0, 100), key=HEX_KEYS, other=st.sampled_from(["", "a=1; ", "theme=dark; x=y; "]))
def test_cookie_regex_reads_the_named_cookie_only(weight: int, key: str, other: str) -> None:
    cut = r.candidate_buckets(weight)
    header = f"{other}uid={key}; tail=zz"
    bucket = r.bucket_of(key)
    assert bucket is not None
    assert matches(r.cookie_regex("uid", 0, cut), header) == (bucket < cut)
    assert matches(r.cookie_regex("uid", cut, r.BUCKETS), header) == (bucket >= cut)
    assert not matches(r.cookie_regex("uid", 0, r.BUCKETS), f"{other}xuid={key}")


@pytest.mark.parametrize(("weight", "buckets"), [(0, 0), (10, 26), (50, 128), (100, 256), (1, 3)])
def test_candidate_buckets_follow_the_weight(weight: int, buckets: int) -> None:
    assert r.candidate_buckets(weight) == buckets


def test_empty_ranges_have_no_regex() -> None:
    assert r.header_regex(0, 0) is None and r.header_regex(256, 256) is None


def test_uuid_users_split_like_the_weight() -> None:
    users = [str(uuid.UUID(int=i * 7919 + 12345678901234567890)) for i in range(4000)]
    users = [str(uuid.uuid5(uuid.NAMESPACE_DNS, u)) for u in users]
    cut = r.candidate_buckets(20)
    share = sum(matches(r.header_regex(0, cut), u) for u in users) / len(users)
    assert abs(share - cut / r.BUCKETS) < 4 * (0.2 * 0.8 / len(users)) ** 0.5
