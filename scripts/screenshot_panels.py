"""Screenshots of the widget's options form and weights panel for docs/plugin.md (Xvfb).

    xvfb-run -a python scripts/screenshot_panels.py docs/images

Writes ``options-form.png`` (the classic backend's form, one tooltip's worth of help in the
docs) and ``weights-panel.png`` (a model backend whose checkpoint is missing: the status,
**Get weights…** and Run disabled). The weights folder is pointed at an empty temporary one,
so the second picture is the same on every machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _settle(seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


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
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
