"""Take the README/docs screenshot of the widget in use (run under Xvfb in CI).

    xvfb-run -a python scripts/screenshot.py docs/images/plugin.png

Opens the sample stack, runs the classic backend, accepts the proposals scoring >= 0.85,
rejects the lowest-scoring one and shows it, then saves a window screenshot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _wait(condition, timeout: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("timed out waiting for the widget")
        QApplication.processEvents()
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/images/plugin.png")
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()

    import napari
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtWidgets import QApplication

    from napari_incontext.__main__ import open_demo

    viewer = napari.Viewer(title="napari-incontext", show=True)
    viewer.window._qt_window.resize(args.width, args.height)  # no public API for the size
    widget = open_demo(viewer)
    widget.controls.run_button.click()
    _wait(lambda: widget.idle)
    widget.review.threshold_spin.setValue(0.85)
    widget.review.accept_all_button.click()
    _wait(lambda: widget.idle)
    lowest = widget.session.next_lowest()
    if lowest is not None:
        widget.goto(lowest)
        widget.reject(lowest)
    viewer.layers.selection.active = viewer.layers["examples"]
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # e.g. napari's "PyQt5 is deprecated" warning would cover the canvas
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    viewer.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
