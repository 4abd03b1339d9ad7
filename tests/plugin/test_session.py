"""The Qt-free session: statuses from label hashes, weights, review order, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from napari_incontext._session import Session, backend_choices
from src_models import registry
from src_models.hashing import content_key
from src_models.registry import BackendInfo
from src_models.types import SliceResult


def _result(index: int, score: float, reasons: tuple[str, ...] = ()) -> SliceResult:
    empty = np.zeros((4, 4), np.int32)
    return SliceResult(index, empty, np.zeros((4, 4), np.float32), score, reasons=reasons)


def _see(session: Session, index: int, labels: np.ndarray) -> str | None:
    return session.observe(index, content_key(labels), bool(labels.any()))


def test_observe_marks_examples_edits_undo_and_redo() -> None:
    session = Session()
    labels = np.zeros((4, 4, 4), np.int32)
    labels[1, :2] = 1
    assert _see(session, 1, labels[1]) == "example"
    assert _see(session, 0, labels[0]) is None

    session.record(_result(2, 0.4), "classic")
    labels[2, 0, 0] = 3  # the widget accepts slice 2
    session.set_status(2, "accepted")
    session.set_baseline(2, content_key(labels[2]))
    labels[2, 0, 0] = 0  # Ctrl+Z
    assert _see(session, 2, labels[2]) == "proposed"
    labels[2, 0, 0] = 3  # Ctrl+Shift+Z
    assert _see(session, 2, labels[2]) == "accepted"
    labels[2, 1, 1] = 3  # the person corrects the accepted slice
    assert _see(session, 2, labels[2]) == "edited"
    labels[1, 3, 3] = 2  # more painting on an example keeps it an example
    assert _see(session, 1, labels[1]) == "example"
    labels[3, 1, 1] = 1  # paints a slice that never had a proposal
    assert _see(session, 3, labels[3]) == "example"


def test_weights_follow_how_a_slice_got_its_labels() -> None:
    session = Session()
    for index, status in enumerate(["example", "edited", "accepted", "partly accepted"]):
        session.set_status(index, status)
    assert session.weights([0, 1, 2, 3]) == {0: 1.0, 1: 1.0, 2: 0.2, 3: 0.0}
    for index in range(4, 24):  # many accepted slices weigh together 0.2 of the verified ones
        session.set_status(index, "accepted")
    assert session.weight(2) == 0.2 * 2 / 21
    session.accepted_weight = "excluded"
    assert session.weight(2) == 0.0
    session.accepted_weight = "full"
    assert session.weight(2) == 1.0


def test_objects_are_decided_one_by_one() -> None:
    session = Session()
    session.record(_result(5, 0.5), "classic")
    assert session.decide_object(5, 1, "accepted", [1, 2]) == "partly accepted"
    assert session.next_lowest() == 5  # still waiting for the other object
    assert session.decide_object(5, 2, "rejected", [1, 2]) == "accepted"
    session.record(_result(6, 0.5), "classic")
    assert session.decide_object(6, 2, "rejected", [2]) == "rejected"


def test_record_keeps_a_slice_the_user_labelled_during_the_run() -> None:
    session = Session()
    session.set_status(2, "edited")
    session.record(_result(2, 0.9, ("size ×2.0",)), "classic")
    assert session.status(2) == "edited" and session.slices[2].score == 0.9
    assert session.slices[2].reasons == ("size ×2.0",)


def test_review_order_next_lowest_and_threshold() -> None:
    session = Session()
    session.set_status(0, "example")
    for index, score in [(1, 0.9), (2, 0.2), (3, 0.5), (4, 0.7)]:
        session.record(_result(index, score), "classic")
    session.set_status(4, "rejected")
    assert [r[0] for r in session.review_rows()] == [2, 3, 4, 1, 0]
    assert session.next_lowest() == 2
    assert session.next_lowest(after=2) == 3
    assert session.next_lowest(after=1) == 2  # wraps around
    assert session.above(0.5) == [1, 3]  # rejected 4 is left out
    with pytest.raises(ValueError, match="choose one of"):
        session.set_status(1, "maybe")


def test_state_round_trips_through_plain_data() -> None:
    import json

    session = Session()
    session.record(_result(3, 0.25, ("object missing?",)), "classic")
    session.decide_object(3, 1, "accepted", [1, 2])
    session.set_baseline(3, "abc")
    session.proposal_edits.add(4)
    session.accepted_weight = "excluded"
    again = Session()
    again.restore(json.loads(json.dumps(session.to_dict())))
    assert again.slices == session.slices and again.baseline == session.baseline
    assert again.proposal_edits == {4} and again.accepted_weight == "excluded"
    assert again.snapshot().slices == session.slices


def test_backend_rebuilt_only_when_options_change() -> None:
    session = Session()
    first = session.backend("classic", n_estimators=5)
    assert session.backend("classic", n_estimators=5) is first
    assert session.backend("classic", n_estimators=6) is not first


def test_backend_choices_survive_a_broken_availability_check(monkeypatch) -> None:
    def broken(config: object) -> list[str]:
        raise ImportError("backbone module not written yet")

    classic = registry.BACKENDS["classic"]
    info = BackendInfo(
        "heavy",
        "needs weights",
        classic.config,
        classic.builder,
        needs=broken,
        gpu_recommended=True,
    )
    monkeypatch.setitem(registry.BACKENDS, "heavy", info)
    labels = {c.name: c.label for c in backend_choices()}
    assert labels["classic"] == "classic"
    assert labels["heavy"] == "heavy (no weights, GPU recommended)"
