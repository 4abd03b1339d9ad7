"""Save the user's labels plus a provenance record of how each slice got them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from src_models.io import ImageSet, write_labels

if TYPE_CHECKING:
    from napari_incontext._layers import Workspace
    from napari_incontext._session import Session

LABELS_FILE = "labels.tif"
MASKS_FOLDER = "masks"
PROVENANCE_FILE = "provenance.json"


def safe_name(name: str) -> str:
    """A layer name usable as a file stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


def save_workspace(folder: str | Path, workspace: Workspace, session: Session) -> Path:
    """Write the user's labels and ``provenance.json`` into ``folder``.

    A stack becomes ``labels.tif`` (N, Y, X); an image set becomes ``masks/<image>.png``
    (one per image, empty where nothing was labelled). ``provenance.json`` lists every
    slice's status (example / accepted / edited / rejected / proposed), confidence and
    backend. Each file is written to a temporary sibling first, then renamed.

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = workspace.user_labels()
    names = [safe_name(n) for n in workspace.names()]
    if len(set(names)) != len(names):
        names = [f"{i:04d}_{n}" for i, n in enumerate(names)]
    if workspace.is_set:
        write_labels(folder / MASKS_FOLDER, labels, ImageSet([], names, folder))
    else:
        write_labels(folder / LABELS_FILE, labels, ImageSet([], None, folder))
    record = {
        "source": workspace.image.name,
        "mode": "image set" if workspace.is_set else "stack",
        "n_slices": len(workspace),
        **session.provenance(workspace.names()),
    }
    tmp = folder / f".{PROVENANCE_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, folder / PROVENANCE_FILE)
    return folder
