"""Main-thread time of choosing a weights file in the widget: the file check (size, sha256,
weights-only probe) on the main thread, as before, against the worker check now.

A file of SAM vit_b's exact size (375 MB, zeros: its sha256 does not match, so it is hashed
in full every time) under the official name is chosen for the SAM weights slot of classic
with ``sam_refine=vit_b``. Prints the seconds the main thread is blocked and the seconds until
the answer is shown.

    xvfb-run -a python scripts/bench_weights_check.py [--folder DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="where the 375 MB file goes (temp)")
    args = parser.parse_args()
    import torch  # noqa: F401 - imported first, so neither timing includes the import
    from qtpy.QtWidgets import QApplication

    from napari_incontext import _weights_check
    from napari_incontext._weights_panel import WeightsPanel
    from src_models.backends.configs import ClassicConfig
    from src_models.weights import get_spec

    app = QApplication.instance() or QApplication([])
    spec = get_spec("sam_vit_b")
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        path = Path(folder) / spec.file_name
        with path.open("wb") as handle:
            handle.write(bytes(spec.size or 0))
        start = time.perf_counter()
        _weights_check.file_problem(path, [spec])  # what the main thread did before
        before = time.perf_counter() - start
        _weights_check._CHECKED.clear()
        panel = WeightsPanel()
        options = {"sam_refine": "vit_b", "sam_weights": str(path)}
        start = time.perf_counter()
        panel.show_for("classic", ClassicConfig(), options)
        blocked = time.perf_counter() - start
        while panel.checks.in_flight:
            app.processEvents()
            time.sleep(0.005)
        answer = time.perf_counter() - start
        print(f"before: main thread blocked {before:.2f} s (the check ran there)")
        print(f"now: main thread blocked {blocked * 1000:.1f} ms, answer after {answer:.2f} s")
        print(f"answer: {panel.status_label.text()[:90]}")


if __name__ == "__main__":
    main()
