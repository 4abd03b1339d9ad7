"""Save the examples of this stack to label another one, and load them there.

The files (see :mod:`._persist`) hold the example slices' pixels, labels and weights and the
backend settings; loading refits the head on the new stack, so nothing executable is stored.
Reading the slices and writing the files happen in a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_info, show_warning

from napari_incontext._persist import load_examples, save_examples
from napari_incontext._session import ACCEPTED, EDITED, EXAMPLE, Session
from napari_incontext._workers import start_function
from src_models.types import ExtraExamples

if TYPE_CHECKING:
    from napari_incontext._layers import Workspace
    from napari_incontext._widget import InContextWidget


def example_indices(session: Session) -> list[int]:
    """Slices that are examples of the next run (painted, corrected or accepted, weight > 0)."""
    return sorted(
        i
        for i, state in session.slices.items()
        if state.status in (EXAMPLE, EDITED, ACCEPTED) and session.weight(i) > 0
    )


def collect(
    workspace: Workspace, indices: list[int], weights: dict[int, float], extra: Any
) -> tuple[ExtraExamples, list[str]]:
    """Copies of the example slices (worker side), plus examples loaded before."""
    images, names = workspace.images(), workspace.names()
    kept: list[int] = []
    pixels, labels = [], []
    for i in indices:
        lab = np.array(workspace.user_slice(i))
        if lab.any():
            kept.append(i)
            pixels.append(np.array(images[i]))
            labels.append(lab)
    found = ExtraExamples(pixels, labels, [weights[i] for i in kept])
    out_names = [names[i] for i in kept]
    if extra is not None:
        found = ExtraExamples(
            found.images + extra.images, found.labels + extra.labels, found.weights + extra.weights
        )
        out_names += [f"loaded example {j}" for j in range(len(extra.images))]
    if not found.images:
        raise ValueError("no example to save: paint, correct or accept a slice first")
    return found, out_names


def save_current_examples(widget: InContextWidget, folder: str) -> None:
    workspace, session = widget.workspace, widget.session
    settings = widget.controls.settings(for_run=False)
    indices = example_indices(session)
    weights = session.weights(indices)

    def job() -> str:
        examples, names = collect(workspace, indices, weights, session.extra)
        save_examples(folder, examples, settings.backend, settings.options, names)
        return f"Saved {len(examples.images)} example(s) to {folder}"

    widget.saving = start_function(job, on_done=show_info, on_finished=widget.file_work_done)


def load_into(widget: InContextWidget, folder: str) -> None:
    def done(result: tuple[ExtraExamples, str, dict[str, Any], list[str]]) -> None:
        examples, backend, options, _names = result
        widget.session.extra = examples
        combo = widget.controls.backend_combo
        if combo.findData(backend) >= 0:
            combo.setCurrentIndex(combo.findData(backend))
        options = dict(options)
        widget.controls.device_combo.setCurrentText(str(options.pop("device", "auto")))
        try:
            widget.controls.options_form.set_values(options)
        except ValueError as error:
            show_warning(f"the saved options were not restored: {error}")
        widget.review.status_label.setText(
            f"{len(examples.images)} example(s) loaded ({backend}): Run labels this stack "
            "with them (paint here too to add examples)"
        )

    widget.saving = start_function(
        load_examples, folder, on_done=done, on_finished=widget.file_work_done
    )
