"""Screenshots of the widget's panels and of a scribble run for docs/plugin.md (Xvfb).

    xvfb-run -a python scripts/screenshot_panels.py docs/images

Writes ``options-form.png`` (the classic backend's form, one tooltip's worth of help in the
docs), ``weights-panel.png`` (a model backend whose checkpoint is missing: the status,
**Get weights…** and Run disabled), ``weights-dialog.png`` (the question **Get weights…**
asks; answered No, so nothing is downloaded), ``scribbles-strokes.png`` (the sample stack's
middle slice with a few strokes painted from its ground truth: background 3, a cross per
object) and ``scribbles-run.png`` (the
window after classic ran on those strokes with unpainted pixels = unlabelled, on another
slice). The weights folder is pointed at an empty temporary one, so the weights pictures are
the same on every machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKGROUND = 3  # the background strokes' label: the sample's objects are 1 and 2


def _settle(seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _wait(condition: Any, timeout: float = 300.0) -> None:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("timed out waiting for the widget")
        _settle(0.05)


def weights_dialog(controls: Any, path: Path) -> None:
    """Click Get weights…, grab the question it asks, answer No (nothing is downloaded)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox

    grabbed = []

    def grab() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QMessageBox):
            QTimer.singleShot(100, grab)  # not shown yet
            return
        _settle(0.3)
        dialog.grab().save(str(path))
        grabbed.append(path)
        dialog.button(QMessageBox.StandardButton.No).click()

    QTimer.singleShot(300, grab)
    controls.weights_panel.get_button.click()  # modal: returns once answered
    if not grabbed or controls.weights_panel.worker is not None:
        raise RuntimeError("the Get weights question was not answered No")
    print(f"wrote {path}")


def painted_strokes(truth: Any) -> Any:
    """(Y, X) int32 strokes for one truth slice, as a person would paint them with a 3 px
    brush: the background strokes of ``strokes_from_truth`` (label ``BACKGROUND``) and a cross
    through the middle of each object (its own label), all 4 px inside their class."""
    import numpy as np
    from scipy import ndimage as ndi
    from skimage.segmentation import expand_labels

    from src_models.evaluation.strokes import strokes_from_truth

    out = np.where(strokes_from_truth(truth, BACKGROUND, erosion=4) == BACKGROUND, BACKGROUND, 0)
    for k in (int(k) for k in np.unique(truth) if k):
        inner = ndi.binary_erosion(truth == k, iterations=4)
        cy, cx = (int(v) for v in ndi.center_of_mass(inner))
        out[cy][inner[cy]] = k
        out[:, cx][inner[:, cx]] = k
    return expand_labels(out, 1)


def _cropped_canvas(viewer: Any, path: Path) -> None:
    """Save the canvas without the black margins around the image."""
    import numpy as np
    from skimage.io import imsave

    shot = viewer.screenshot(canvas_only=True)
    ys, xs = np.nonzero(shot[..., :3].max(axis=-1))
    imsave(str(path), shot[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def scribble_run(viewer: Any, widget: Any, out: Path) -> None:
    """Paint strokes on the sample's middle slice, run classic in scribble mode, and save
    the strokes and a proposed slice."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    from src_models.sample_data import synthetic_stack

    _, truth = synthetic_stack()
    middle = len(truth) // 2
    examples = viewer.layers["examples"]
    data = examples.data.copy()
    data[middle] = painted_strokes(truth[middle])
    examples.data = data
    controls = widget.controls
    controls.backend_combo.setCurrentIndex(controls.backend_combo.findData("classic"))
    controls.unpainted_combo.setCurrentText("unlabelled")
    controls.background_spin.setValue(BACKGROUND)
    viewer.layers.selection.active = examples
    viewer.window._qt_window.resize(1700, 1000)  # a wider canvas
    widget.goto(middle)
    viewer.reset_view()
    _settle()
    _cropped_canvas(viewer, out / "scribbles-strokes.png")
    print(f"wrote {out / 'scribbles-strokes.png'}")
    controls.run_button.click()
    _wait(lambda: widget.idle)
    widget.goto(middle + 2)
    viewer.reset_view()
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # e.g. a deprecation warning would cover the canvas
    _settle()
    viewer.screenshot(str(out / "scribbles-run.png"), canvas_only=False)
    print(f"wrote {out / 'scribbles-run.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/images")
    args = parser.parse_args()
    empty = tempfile.mkdtemp()
    os.environ["NAPARI_INCONTEXT_WEIGHTS"] = empty
    os.environ["XDG_CACHE_HOME"] = empty  # the user cache folder: empty too
    os.environ["HF_HUB_CACHE"] = empty

    import napari

    from napari_incontext.__main__ import open_demo

    viewer = napari.Viewer(title="napari-incontext", show=True)
    viewer.window._qt_window.resize(1400, 1100)  # no public API for the size
    widget = open_demo(viewer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    controls = widget.controls
    for backend, name in (("classic", "options-form.png"), ("dinov2", "weights-panel.png")):
        controls.backend_combo.setCurrentIndex(controls.backend_combo.findData(backend))
        _settle()
        controls.grab().save(str(out / name))
        print(f"wrote {out / name}")
    weights_dialog(controls, out / "weights-dialog.png")
    scribble_run(viewer, widget, out)
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
