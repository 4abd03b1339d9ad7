"""Save the user's labels plus a provenance record of how each slice got them.

Nothing that napari-incontext did not write is ever replaced: when ``labels.tif`` /
``masks/`` / ``provenance.json`` already exist in the chosen folder and are not our own
unchanged earlier outputs (a ground-truth ``masks/`` folder, say), the save goes to the
first free ``labels-2.tif`` / ``masks-2`` / ``provenance-2.json``. Our own earlier outputs
are replaced only when the caller says so (the widget asks first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from src_models.atomic import write_json
from src_models.io import write_labels
from src_models.outputs import file_problem, folder_problem

if TYPE_CHECKING:
    from qtpy.QtWidgets import QWidget

    from napari_incontext._layers import Workspace
    from napari_incontext._session import Session

LABELS_FILE = "labels.tif"
MASKS_FOLDER = "masks"
PROVENANCE_FILE = "provenance.json"


def ask_replace(parent: QWidget, folder: str | Path, is_set: bool) -> bool | None:
    """Whether to replace our earlier outputs in ``folder``: True, False (none there, files
    not ours there too, or the user chose to save under new names) or None (cancelled, or
    the folder unreadable: shown)."""
    from napari.utils.notifications import show_error
    from qtpy.QtWidgets import QMessageBox

    try:
        earlier, others = earlier_outputs(folder, is_set)
    except OSError as error:
        show_error(f"Saving failed, nothing was replaced: {error}")
        return None
    if not earlier or others:
        return False
    names = ", ".join(p.name for p in earlier)
    Button = QMessageBox.StandardButton  # scoped: PyQt6 has no QMessageBox.Yes
    answer = QMessageBox.question(
        parent,
        "Replace earlier save?",
        f"{names} in this folder came from an earlier save. Replace them? "
        "(No saves next to them under new names.)",
        Button.Yes | Button.No | Button.Cancel,
        Button.No,
    )
    return None if answer == Button.Cancel else answer == Button.Yes


def safe_name(name: str) -> str:
    """A layer name usable as a file stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


@dataclass(frozen=True)
class SavePlan:
    """Where a save writes.

    Attributes:
        labels: ``labels.tif`` (stack) or ``masks`` (image set), maybe with a ``-N`` suffix.
        provenance: ``provenance.json``, with the same suffix.
        replaces: our own earlier outputs this save replaces.
    """

    labels: Path
    provenance: Path
    replaces: list[Path]


def _targets(folder: Path, is_set: bool, n: int) -> tuple[Path, Path]:
    tail = f"-{n}" if n > 1 else ""
    labels = folder / (f"{MASKS_FOLDER}{tail}" if is_set else f"labels{tail}.tif")
    return labels, folder / f"provenance{tail}.json"


def _ours(path: Path, is_set_labels: bool) -> bool:
    if is_set_labels:
        return path.is_dir() and not path.is_symlink() and folder_problem(path) is None
    return path.is_file() and not path.is_symlink() and file_problem(path) is None


def earlier_outputs(folder: str | Path, is_set: bool) -> tuple[list[Path], list[Path]]:
    """(our own earlier outputs, other files) at the default names in ``folder``."""
    labels, provenance = _targets(Path(folder), is_set, 1)
    ours, other = [], []
    for path, is_folder in ((labels, is_set), (provenance, False)):
        if path.exists() or path.is_symlink():
            (ours if _ours(path, is_folder) else other).append(path)
    return ours, other


def plan_save(folder: str | Path, is_set: bool, replace: bool) -> SavePlan:
    """The default names when they are free (or only hold our outputs and ``replace``),
    else the first free ``-N`` names."""
    folder = Path(folder)
    ours, other = earlier_outputs(folder, is_set)
    if not other and (replace or not ours):
        return SavePlan(*_targets(folder, is_set, 1), replaces=ours)
    n = 2
    while any(p.exists() or p.is_symlink() for p in _targets(folder, is_set, n)):
        n += 1
    return SavePlan(*_targets(folder, is_set, n), replaces=[])


def save_workspace(
    folder: str | Path, workspace: Workspace, session: Session, replace: bool = False
) -> SavePlan:
    """Write the user's labels and a provenance record into ``folder``.

    A stack becomes ``labels.tif`` (N, Y, X); an image set becomes ``masks/<image>.png``
    (one per image, empty where nothing was labelled). ``provenance.json`` lists every
    slice's status (example / accepted / edited / rejected / proposed), confidence and
    backend. Each output is written atomically (see :mod:`src_models.outputs`); see
    :func:`plan_save` for which names are used.

    Returns:
        The plan that was carried out (where the files went).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file: choose a folder to save into")
    plan = plan_save(folder, workspace.is_set, replace)
    labels = workspace.user_labels()
    names = [safe_name(n) for n in workspace.names()]
    if len({n.casefold() for n in names}) != len(names):
        names = [f"{i:04d}_{n}" for i, n in enumerate(names)]
    write_labels(plan.labels, labels, names if workspace.is_set else None)
    record = {
        "source": workspace.image.name,
        "mode": "image set" if workspace.is_set else "stack",
        "n_slices": len(workspace),
        "labels": plan.labels.name,
        **session.provenance(workspace.names()),
    }
    write_json(plan.provenance, record)
    return plan
