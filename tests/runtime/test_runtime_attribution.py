"""Feedback counts under the variant that served the request, whichever pod receives the POST (behind
a replica-ratio Service the receiver is any pod of any version): ids the runtime makes carry
`<hex>.<track>.<version>`; ids it served itself and ids in the inference log are attributed too.
Bounded: at most MAX_VARIANTS label sets per process; a resent outcome counts once."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import AppFactory
from mlrollout.runtime import attribution as at
from mlrollout.runtime.metric_names import TRACKS

ROW = [0.1] * 20
OUTCOMES = ("converted=proportion", "revenue=mean")


def counters(text: str, metric: str) -> dict[tuple[str, str, str], float]:
    """{(version, track, outcome): value} of one feedback counter in an exposition."""
    found: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        found[(labels["version"], labels["track"], labels["outcome"])] = float(line.rsplit(" ", 1)[1])
    return found


@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), st.sampled_from(TRACKS))
def test_tagged_ids_carry_their_variant(random_hex: str, track: str) -> None:
    rid = at.tagged_id(random_hex, "12", track)
    assert at.variant_of(rid) == ("12", track)


def test_ids_that_do_not_carry_a_known_variant_are_not_read_as_one() -> None:
    hx = "0" * 32
    for rid in ("abc", f"{hx}.stable", f"{hx}.blue.3", f"{hx[:-1]}.stable.3", f"{hx}.stable.{'v' * 33}"):
        assert at.variant_of(rid) is None, rid
    assert at.tagged_id(hx, "a version with spaces", "stable") == hx  # left untagged, never mangled
    variants = at.Variants(("1", "stable"), limit=2)
    assert variants.admits(("2", "canary"))
    variants.add(("2", "canary"))
    assert not variants.admits(("3", "canary")) and variants.admits(("1", "stable"))


def test_feedback_received_by_the_stable_pod_counts_for_the_canary_that_served(
    make_client: AppFactory, rf_path: Path
) -> None:
    stable = make_client(
        rf_path, model_name="rf", model_version="1", track="stable", feedback_outcomes=OUTCOMES
    )
    canary = make_client(
        rf_path, model_name="rf", model_version="2", track="canary", feedback_outcomes=OUTCOMES
    )
    served = canary.post("/invocations", json={"inputs": [ROW]}).headers["x-request-id"]
    assert at.variant_of(served) == ("2", "canary")
    r = stable.post("/feedback", json={"request_id": served, "outcome": "converted"})
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0}, r.text
    r = stable.post("/feedback", json={"request_id": served, "outcome": "revenue", "value": 3.0})
    assert r.status_code == 200
    text = stable.get("/metrics").text
    events = counters(text, "mlrollout_feedback_total")
    assert events[("2", "canary", "converted")] == 1.0 and events[("1", "stable", "converted")] == 0.0
    assert counters(text, "mlrollout_feedback_value_sum_total")[("2", "canary", "converted")] == 1.0
    assert counters(text, "mlrollout_feedback_value_squares_total")[("2", "canary", "revenue")] == 9.0


def test_a_resent_outcome_counts_once_and_a_refused_batch_counts_nothing(
    make_client: AppFactory, rf_path: Path
) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1", feedback_outcomes=OUTCOMES)
    served = c.post("/invocations", json={"inputs": [ROW]}).headers["x-request-id"]
    assert c.post("/feedback", json={"request_id": served, "outcome": "converted"}).json()["duplicates"] == 0
    again = c.post("/feedback", json={"request_id": served, "outcome": "converted"})
    assert again.status_code == 200 and again.json() == {"accepted": 1, "duplicates": 1}
    wrong_type = c.post("/feedback", json={"request_id": served, "outcome": "revenue", "value": "12"})
    assert wrong_type.status_code == 400 and wrong_type.json()["error_code"] == "OUT_OF_RANGE"
    assert counters(c.get("/metrics").text, "mlrollout_feedback_total")[("1", "stable", "converted")] == 1.0


def test_with_the_inference_log_an_unknown_id_is_refused_and_a_logged_one_keeps_its_variant(
    make_client: AppFactory, rf_path: Path, tmp_path: Path
) -> None:
    logdir = str(tmp_path / "log")
    canary = make_client(
        rf_path,
        model_name="rf",
        model_version="2",
        track="canary",
        inference_log_uri=logdir,
        feedback_outcomes=OUTCOMES,
    )
    stable = make_client(
        rf_path, model_name="rf", model_version="1", inference_log_uri=logdir, feedback_outcomes=OUTCOMES
    )
    own_id = "caller-chosen-id-7"  # a caller's id is kept as given: it carries no variant
    r = canary.post("/invocations", json={"inputs": [ROW]}, headers={"x-request-id": own_id})
    assert r.headers["x-request-id"] == own_id
    unknown = stable.post("/feedback", json={"request_id": "never-served", "outcome": "converted"})
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "UNKNOWN_REQUEST_ID"
    canary.app.state.runtime.log.flush()  # type: ignore[attr-defined]
    stable.app.state.runtime.requests.min_rescan_seconds = 0  # type: ignore[attr-defined]
    ok = stable.post("/feedback", json={"request_id": own_id, "outcome": "converted", "value": 1})
    assert ok.status_code == 200, ok.text
    events = counters(stable.get("/metrics").text, "mlrollout_feedback_total")
    assert events[("2", "canary", "converted")] == 1.0 and events[("1", "stable", "converted")] == 0.0


def test_variants_per_process_are_bounded(make_client: AppFactory, rf_path: Path) -> None:
    c = make_client(rf_path, model_name="rf", model_version="1", feedback_outcomes=OUTCOMES)
    statuses = []
    for i in range(at.MAX_VARIANTS + 5):
        rid = at.tagged_id(f"{i:032x}", f"v{i}", "canary")
        statuses.append(c.post("/feedback", json={"request_id": rid, "outcome": "converted"}).status_code)
    assert statuses.count(200) == at.MAX_VARIANTS - 1 and set(statuses[at.MAX_VARIANTS - 1 :]) == {422}
    labelled = {k[:2] for k in counters(c.get("/metrics").text, "mlrollout_feedback_total")}
    assert len(labelled) == at.MAX_VARIANTS
