"""What outlives the widget: the review state in layer metadata, and saved examples.

* The review state (statuses, scores, reasons, provenance) is kept in the user's labels
  layer's ``metadata``: closing and reopening the widget, or another widget on the same
  layers, continues the review.
* "Save examples" writes the examples themselves (pixels, labels, weights as ``.npz``; the
  backend and its options as ``.json``), never a pickled model: loading them into another
  stack refits the head there. Files are written atomically and never over existing ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from napari_incontext._layers import KEY
from napari_incontext._save import PROVENANCE_FILE
from src_models.types import ExtraExamples

EXAMPLES_FILE = "examples.npz"
SETTINGS_FILE = "examples.json"
FORMAT = "napari-incontext examples"
VERSION = 1


def read_review(layer: Any) -> dict[str, Any] | None:
    """The review state kept in a labels layer's metadata, if any."""
    meta = layer.metadata.get(KEY)
    return meta.get("review") if isinstance(meta, dict) else None


def write_review(layer: Any, state: dict[str, Any]) -> None:
    """Keep the review state in the labels layer's metadata (small: statuses and scores)."""
    meta = layer.metadata.get(KEY)
    layer.metadata[KEY] = {**(meta if isinstance(meta, dict) else {}), "review": state}


def read_provenance(layer: Any, n_slices: int) -> dict[str, Any] | None:
    """The ``provenance.json`` saved next to the file a labels layer was opened from (Save…
    writes both; its ``slices`` and ``runs``), when it describes a stack of ``n_slices``."""
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or not Path(path).is_file():
        return None
    record_path = Path(path).parent / PROVENANCE_FILE
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("mode") != "stack":
        return None
    return record if record.get("n_slices") == n_slices else None


def save_examples(
    folder: str | Path,
    examples: ExtraExamples,
    backend: str,
    options: dict[str, Any],
    names: list[str],
) -> Path:
    """Write ``examples.npz`` and ``examples.json`` into ``folder`` (created if missing).

    Refuses a folder that already holds either file: choose an empty folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / EXAMPLES_FILE, folder / SETTINGS_FILE]
    if any(t.exists() for t in targets):
        raise ValueError(f"{folder} already holds saved examples: choose an empty folder")
    arrays = {f"image_{i}": np.asarray(im) for i, im in enumerate(examples.images)}
    arrays |= {f"labels_{i}": np.asarray(lab) for i, lab in enumerate(examples.labels)}
    arrays["weights"] = np.asarray(examples.weights, np.float64)
    settings = {
        "format": FORMAT,
        "version": VERSION,
        "backend": backend,
        "options": {k: v for k, v in options.items() if k != "device"},
        "names": names,
        "count": len(examples.images),
    }
    tmp_npz, tmp_json = folder / f".{EXAMPLES_FILE}.tmp", folder / f".{SETTINGS_FILE}.tmp"
    with open(tmp_npz, "wb") as out:
        np.savez_compressed(out, **arrays)
    tmp_json.write_text(json.dumps(settings, indent=2))
    os.replace(tmp_npz, targets[0])
    os.replace(tmp_json, targets[1])
    return folder


def load_examples(folder: str | Path) -> tuple[ExtraExamples, str, dict[str, Any], list[str]]:
    """Read what :func:`save_examples` wrote: (examples, backend, options, names).

    Nothing is unpickled (``allow_pickle=False``).
    """
    folder = Path(folder)
    settings_path = folder / SETTINGS_FILE
    if not settings_path.is_file() or not (folder / EXAMPLES_FILE).is_file():
        raise ValueError(
            f"{folder} holds no saved examples ({EXAMPLES_FILE} and {SETTINGS_FILE}): choose "
            "a folder written by Save examples…"
        )
    settings = json.loads(settings_path.read_text())
    if settings.get("format") != FORMAT or settings.get("version") != VERSION:
        raise ValueError(f"{settings_path} is not a version-{VERSION} examples file")
    count = int(settings["count"])
    with np.load(folder / EXAMPLES_FILE, allow_pickle=False) as data:
        images = [data[f"image_{i}"] for i in range(count)]
        labels = [data[f"labels_{i}"] for i in range(count)]
        weights = [float(w) for w in data["weights"]]
    examples = ExtraExamples(images, labels, weights)
    return examples, settings["backend"], dict(settings["options"]), list(settings["names"])
