"""Metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.evaluation import metrics


def _square(shape: tuple[int, int], y: int, x: int, size: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y : y + size, x : x + size] = True
    return m


def test_iou_and_dice_hand_values() -> None:
    pred = np.zeros((4, 4), int)
    truth = np.zeros((4, 4), int)
    pred[0:2, 0:2] = 1  # 4 pixels
    truth[0:2, 1:3] = 1  # 4 pixels, overlap 2
    assert metrics.iou(pred, truth) == pytest.approx(2 / 6)
    assert metrics.dice(pred, truth) == pytest.approx(2 * 2 / 8)


def test_empty_masks_are_exact() -> None:
    empty, full = np.zeros((3, 3)), np.ones((3, 3))
    assert metrics.iou(empty, empty) == 1.0
    assert metrics.dice(empty, empty) == 1.0
    assert metrics.davis_j(empty, empty) == 1.0
    assert metrics.boundary_f(empty, empty) == 1.0
    assert metrics.iou(empty, full) == 0.0
    assert metrics.iou(full, empty) == 0.0
    assert metrics.dice(empty, full) == 0.0


def test_shape_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="differ"):
        metrics.iou(np.zeros((2, 2)), np.zeros((2, 3)))


def test_object_ious_per_id() -> None:
    pred = np.array([[1, 1, 2], [0, 0, 2]])
    truth = np.array([[1, 0, 2], [0, 0, 0]])
    ious = metrics.object_ious(pred, truth, [1, 2, 3])
    assert ious == {1: pytest.approx(1 / 2), 2: pytest.approx(1 / 2), 3: 1.0}


def test_accumulator_miou_and_fb_iou() -> None:
    acc = metrics.IoUAccumulator()
    # image 1: class 1, pred covers 2 of 2 truth pixels plus 2 extra (I 2, U 4)
    acc.add(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 0, 0]]), [1])
    # image 2: class 2, exact (I 1, U 1)
    acc.add(np.array([[2, 0, 0, 0]]), np.array([[2, 0, 0, 0]]), [2])
    assert acc.class_iou() == {1: pytest.approx(0.5), 2: 1.0}
    assert acc.miou() == pytest.approx(0.75)
    # background: pred bg {img2: 3 px}, truth bg {img1: 2, img2: 3} → I 3, U 5
    # foreground: pred fg 5, truth fg 3, I 3 → U 5
    assert acc.fb_iou() == pytest.approx((3 / 5 + 3 / 5) / 2)


def test_boundary_map_matches_hand_drawn_davis_convention() -> None:
    mask = _square((5, 5), 1, 1, 3)
    expected = np.array(
        [[1, 1, 1, 1, 0], [1, 0, 0, 1, 0], [1, 0, 0, 1, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0]], bool
    )
    np.testing.assert_array_equal(metrics.boundary_map(mask), expected)
    # the image border is not a boundary
    assert not metrics.boundary_map(np.ones((4, 4))).any()


def test_boundary_tolerance_is_davis_rounded_up() -> None:
    assert metrics.boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.7)
    assert metrics.boundary_tolerance((100, 100)) == 2  # ceil(1.13)
    assert metrics.boundary_tolerance((100, 100), bound_th=3) == 3


def test_boundary_f_cases() -> None:
    shape = (100, 100)
    truth = _square(shape, 20, 20, 30)
    assert metrics.boundary_f(truth, truth) == 1.0
    # shifted by 1 px: within the 2 px tolerance
    assert metrics.boundary_f(_square(shape, 21, 20, 30), truth) == 1.0
    # far away: no boundary pixel within tolerance
    assert metrics.boundary_f(_square(shape, 60, 60, 30), truth) == 0.0
    # one of two equal squares: precision 1, recall 1/2 → F = 2/3
    two = truth | _square(shape, 60, 60, 30)
    p, r = metrics.boundary_precision_recall(truth, two)
    assert (p, r) == (1.0, pytest.approx(0.5))
    assert metrics.boundary_f(truth, two) == pytest.approx(2 / 3)
    # one side empty
    assert metrics.boundary_precision_recall(np.zeros(shape), truth) == (1.0, 0.0)
    assert metrics.boundary_f(np.zeros(shape), truth) == 0.0
    assert metrics.boundary_f(truth, np.zeros(shape)) == 0.0


def test_j_and_f_mean() -> None:
    out = metrics.j_and_f([1.0, 0.5], [0.5, 0.0])
    assert out == {"J": 0.75, "F": 0.25, "J&F": 0.5}


def test_instance_matching_hungarian_at_half() -> None:
    truth = np.zeros((10, 10), int)
    truth[0:2, 0:2] = 1
    truth[4:6, 4:6] = 2
    truth[8:10, 8:10] = 3
    pred = np.zeros_like(truth)
    pred[0:2, 0:2] = 5  # exact → IoU 1
    pred[4:6, 4:6] = 7
    pred[6, 4:6] = 7  # 4 / 6
    pred[8, 8] = 9  # 1 / 4 < 0.5: not a match
    m = metrics.match_instances(pred, truth)
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.mean_matched_iou == pytest.approx((1 + 4 / 6) / 2)
    assert [(t, p) for t, p, _ in m.pairs] == [(1, 5), (2, 7)]


def test_instance_matching_is_one_to_one_and_exact_on_empty() -> None:
    truth = np.zeros((4, 6), int)
    truth[:, 0:3] = 1
    truth[:, 3:6] = 2
    merged = (truth > 0).astype(int)  # one prediction covering both: IoU 1/2 with each
    m = metrics.match_instances(merged, truth)
    assert (m.tp, m.fp, m.fn) == (1, 0, 1)
    empty = metrics.match_instances(np.zeros((3, 3), int), np.zeros((3, 3), int))
    assert (empty.tp, empty.fp, empty.fn, empty.f1) == (0, 0, 0, 1.0)
    none_found = metrics.match_instances(np.zeros_like(truth), truth)
    assert (none_found.fn, none_found.recall, none_found.f1) == (2, 0.0, 0.0)
