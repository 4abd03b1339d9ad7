"""Measuring the review score and accept-then-rerun; the docs blocks the scripts maintain."""

from __future__ import annotations

import numpy as np
import pytest

from src_models import engine
from src_models.backends.classic import ClassicBackend
from src_models.backends.configs import ClassicConfig
from src_models.evaluation.protocols import drain
from src_models.evaluation.report import kept_blocks, write_block
from src_models.evaluation.review import accept_then_rerun, score_quality
from src_models.sample_data import synthetic_stack


def test_score_quality_ranks_and_counts_what_accept_all_takes() -> None:
    items = [
        {"iou": 0.9, "score": 0.95, "confidence": 0.9},
        {"iou": 0.8, "score": 0.85, "confidence": 0.7},
        {"iou": 0.1, "score": 0.2, "confidence": 0.95},  # a miss the head is sure of
        {"iou": 0.5, "score": 0.6, "confidence": 0.6},
    ]
    row = score_quality(items, threshold=0.8, old_threshold=0.8)
    assert row["rho score"] == 1.0 and row["rho confidence"] < 0.5
    assert row["accepted (score)"] == 2 and row["bad accepted (score)"] == 0
    assert row["accepted (confidence)"] == 2 and row["bad accepted (confidence)"] == 1
    assert np.isclose(row["IoU accepted (score)"], 0.85)


def test_accept_then_rerun_compares_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    # linking reads the accepted slices as neighbours even when they are out of the fit, which
    # may drop a part of a proposal; what this test checks is the fit
    monkeypatch.setattr(engine, "link_to_neighbour", lambda index, lab, conf, *a, **k: (lab, conf))
    image, truth = synthetic_stack(n_slices=8, size=48, seed=2)
    backend = ClassicBackend(ClassicConfig(n_estimators=8, max_depth=8, texture=False))
    policies = {"full": lambda n: 1.0, "excluded": lambda n: 0.0}
    full, excluded = drain(accept_then_rerun(image, truth, backend, policies))
    assert (full.policy, excluded.policy) == ("full", "excluded")
    assert full.accepted == excluded.accepted == 4  # scores >= the median of 7 proposals
    assert excluded.rest_after == excluded.rest_before  # nothing changed in the fit
    assert full.rest_after != full.rest_before


def test_blocks_are_replaced_in_place_and_kept(tmp_path) -> None:
    page = tmp_path / "page.md"
    write_block(page, "one", "first", "# Title")
    write_block(page, "two", "second", "# Title")
    write_block(page, "one", "again", "# Title")
    text = page.read_text()
    assert text.startswith("# Title") and "first" not in text
    assert text.index("again") < text.index("second")  # replaced where it was
    assert kept_blocks(page).count(":begin -->") == 2
