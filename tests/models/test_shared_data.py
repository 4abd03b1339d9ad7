"""Real data from ../shared/data (skipped on a fresh clone without it)."""

from __future__ import annotations

import numpy as np
import tifffile

from src_models.engine import propagate
from src_models.registry import build_backend
from tests.helpers import iou, shared_data


def test_classic_propagates_the_isbi_em_stack_better_than_copying() -> None:
    folder = shared_data("isbi2012_em_membrane")
    image = tifffile.imread(folder / "images_stack_zyx.tif")[:4]
    truth = (tifffile.imread(folder / "labels_stack_zyx.tif")[:4] > 0).astype(np.int32)
    labels = np.zeros_like(truth)
    labels[0] = truth[0]
    scores = {
        r.index: iou(r.labels == 1, truth[r.index] == 1)
        for r in propagate(image, labels, build_backend("classic"))
    }
    copy = {i: iou(truth[0] == 1, truth[i] == 1) for i in scores}
    assert np.mean(list(scores.values())) > 0.75
    assert np.mean(list(scores.values())) > np.mean(list(copy.values())) + 0.05
