"""The Qt-free session: statuses from label edits, review order, backend reuse."""

from __future__ import annotations

import numpy as np
import pytest

from napari_incontext._session import Session, backend_choices
from src_models import registry
from src_models.registry import BackendInfo
from src_models.types import SliceResult


def _result(index: int, score: float) -> SliceResult:
    return SliceResult(index, np.zeros((4, 4), np.int32), np.zeros((4, 4), np.float32), score)


def test_sync_marks_examples_edits_and_undone_accepts() -> None:
    session = Session()
    labels = np.zeros((4, 4, 4), np.int32)
    labels[1, :2] = 1
    assert session.sync(labels) == [1]
    assert session.status(1) == "example" and session.status(0) is None

    session.record(_result(2, 0.4), "classic")
    labels[2, 0, 0] = 3  # the user corrects slice 2
    assert session.sync_slice(2, labels[2]) == "edited"
    labels[2, 0, 0] = 0  # ... and erases it again (or undoes an accept)
    assert session.sync_slice(2, labels[2]) == "proposed"
    labels[3, 1, 1] = 1  # paints a slice that never had a proposal
    assert session.sync(labels) == [1, 3]
    assert session.status(3) == "edited"


def test_record_keeps_a_slice_the_user_labelled_during_the_run() -> None:
    session = Session()
    session.set_status(2, "edited")
    session.record(_result(2, 0.9), "classic")
    assert session.status(2) == "edited" and session.slices[2].score == 0.9


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
