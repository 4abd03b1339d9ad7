"""The review score ranks a missed object first, says why, and Accept all leaves it alone."""

from __future__ import annotations

import numpy as np

from napari_incontext._layers import CONFIDENCE, role
from src_models.scoring import ACCEPT_THRESHOLD
from tests.plugin.plugin_helpers import EXAMPLE, N_SLICES, proposals, run_and_wait, wait_idle

LOST = N_SLICES - 1  # the last slice: the objects are gone from the picture


def test_a_missed_object_is_first_in_the_table_with_its_reason(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    image = viewer.layers["stack"].data.copy()
    image[LOST] = np.median(image[LOST])  # nothing left to find: the proposal comes out empty
    viewer.layers["stack"].data = image
    widget.review.confidence_check.setChecked(True)
    run_and_wait(qtbot, widget)

    assert not proposals(viewer).data[LOST].any()
    state = widget.session.slices[LOST]
    confident = max(s.score for i, s in widget.session.slices.items() if i not in (EXAMPLE, LOST))
    assert state.score < confident  # the head is sure of the empty slice, the score is not
    table = widget.review.table
    table.refresh_now()
    assert table.row_index(0) == LOST
    assert "missing?" in table.row_text(0, 3)  # e.g. "object 1 missing?, object 2 missing?"

    widget.review.threshold_spin.setValue(ACCEPT_THRESHOLD)
    widget.review.accept_all_button.click()
    wait_idle(qtbot, widget)
    assert widget.session.status(LOST) == "proposed"  # not accepted blindly

    conf = [layer for layer in viewer.layers if role(layer) == CONFIDENCE]
    assert len(conf) == 1 and conf[0].data.dtype == np.uint8
    filled = [i for i in range(N_SLICES) if conf[0].data[i].any()]
    assert filled == [i for i in range(N_SLICES) if i != EXAMPLE]
    assert viewer.layers.selection.active.name == "examples"  # the user's labels stay active
