"""Qt-free state of one annotation session: backend, feature cache, per-slice review status.

The widget owns one :class:`Session` and passes it explicitly; nothing here imports napari
or Qt, so the logic is testable without a viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_incontext._compat import block_triton_if_unsafe
from src_models.backends.base import Backend
from src_models.cache import FeatureCache, content_key
from src_models.types import SliceResult

EXAMPLE = "example"
PROPOSED = "proposed"
ACCEPTED = "accepted"
REJECTED = "rejected"
EDITED = "edited"
STATUSES = (EXAMPLE, PROPOSED, ACCEPTED, REJECTED, EDITED)
# Statuses whose labels (in the user's labels layer) count as examples for the next run.
EXAMPLE_STATUSES = (EXAMPLE, ACCEPTED, EDITED)


@dataclass(frozen=True)
class BackendChoice:
    """A registry entry as the widget shows it."""

    name: str
    description: str
    weights_available: bool
    gpu_recommended: bool

    @property
    def label(self) -> str:
        notes = [] if self.weights_available else ["no weights"]
        if self.gpu_recommended:
            notes.append("GPU recommended")
        return f"{self.name} ({', '.join(notes)})" if notes else self.name


def backend_choices() -> list[BackendChoice]:
    """Every registered backend with its weight status (file checks only, no model import)."""
    from src_models.registry import list_backends

    return [BackendChoice(**entry) for entry in list_backends()]


@dataclass
class SliceState:
    """Review state of one slice (or one image of a set)."""

    status: str
    score: float | None = None
    backend: str | None = None


@dataclass
class Session:
    """Backend, feature cache and review state shared by successive runs.

    Attributes:
        cache: features of every slice seen so far; survives re-runs and backend rebuilds
            (keys include the backend's ``feature_key``).
        slices: review state per slice index; slices never touched are absent.
        snapshot: content hash of each slice of the user's labels after the last run start
            or accept; a slice whose labels no longer match was edited by the user.
    """

    cache: FeatureCache = field(default_factory=FeatureCache)
    slices: dict[int, SliceState] = field(default_factory=dict)
    snapshot: dict[int, str] = field(default_factory=dict)
    _backend: Backend | None = None
    _backend_spec: tuple[str, str] | None = None

    # ------------------------------------------------------------------ backend
    def backend(self, name: str, **options: Any) -> Backend:
        """The backend for (name, options), rebuilt only when they changed.

        Keeping the same object keeps a loaded model in memory across runs.
        """
        from src_models.registry import build_backend

        block_triton_if_unsafe()
        spec = (name, repr(sorted(options.items())))
        if self._backend is None or spec != self._backend_spec:
            self._backend = build_backend(name, **options)
            self._backend_spec = spec
        return self._backend

    # ------------------------------------------------------------------ review state
    def reset_review(self) -> None:
        """Forget statuses and snapshots (new layers); keep the cache and the backend."""
        self.slices.clear()
        self.snapshot.clear()

    def status(self, index: int) -> str | None:
        state = self.slices.get(index)
        return state.status if state else None

    def set_status(self, index: int, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: choose one of {', '.join(STATUSES)}")
        state = self.slices.setdefault(index, SliceState(status))
        state.status = status

    def has_proposal(self, index: int) -> bool:
        """True when the slice has a proposal that was not accepted yet (even if edited)."""
        state = self.slices.get(index)
        return state is not None and state.score is not None and state.status != ACCEPTED

    def record(self, result: SliceResult, backend_name: str) -> None:
        """Store a proposal's score; the slice becomes "proposed".

        A slice the user labelled while the run was going keeps its status.
        """
        state = self.slices.get(result.index)
        status = state.status if state and state.status in EXAMPLE_STATUSES else PROPOSED
        self.slices[result.index] = SliceState(status, float(result.score), backend_name)

    def remember(self, index: int, labels: np.ndarray) -> None:
        """Take the snapshot of one slice of the user's labels (after a run start or accept)."""
        self.snapshot[index] = content_key(np.asarray(labels))

    def sync_slice(self, index: int, labels: np.ndarray) -> str | None:
        """Update one slice's status from the user's labels; return the new status.

        A slice whose labels changed since the snapshot is "edited" when it holds labels
        (it becomes an example), or falls back to "proposed"/unknown when it was emptied
        (e.g. an accept that was undone). Unchanged slices keep their status; on the first
        look, a slice holding labels is an original "example".
        """
        labels = np.asarray(labels)
        key = content_key(labels)
        previous = self.snapshot.get(index)
        state = self.slices.get(index)
        if previous is None:
            if labels.any() and (state is None or state.status != EXAMPLE):
                self.set_status(index, EXAMPLE)
        elif key != previous:
            if labels.any():
                if state is None or state.status != EXAMPLE:
                    self.set_status(index, EDITED)
            elif state is not None:
                if state.score is None:
                    del self.slices[index]
                else:
                    state.status = PROPOSED
        self.snapshot[index] = key
        return self.status(index)

    def sync(self, labels: Sequence[np.ndarray] | np.ndarray) -> list[int]:
        """Sync every slice; return the example indices (slices holding labels), ascending."""
        for index, lab in enumerate(labels):
            self.sync_slice(index, lab)
        return [i for i, lab in enumerate(labels) if np.asarray(lab).any()]

    # ------------------------------------------------------------------ review helpers
    def review_rows(self) -> list[tuple[int, float | None, str]]:
        """(index, score, status) of every known slice, lowest confidence first.

        Examples (no score) come last, then by index.
        """
        rows = [(i, s.score, s.status) for i, s in self.slices.items()]
        return sorted(rows, key=lambda r: (r[1] is None, r[1] if r[1] is not None else 0, r[0]))

    def next_lowest(self, after: int | None = None) -> int | None:
        """The lowest-confidence slice still waiting for review ("proposed").

        With ``after``, the next one after that slice in review order (wrapping around).
        """
        pending = [r[0] for r in self.review_rows() if r[2] == PROPOSED]
        if not pending:
            return None
        if after in pending:
            return pending[(pending.index(after) + 1) % len(pending)]
        return pending[0]

    def above(self, threshold: float) -> list[int]:
        """Proposed slices whose score is >= threshold, ascending index."""
        return sorted(
            i
            for i, s in self.slices.items()
            if s.status == PROPOSED and s.score is not None and s.score >= threshold
        )

    def provenance(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready record of every slice's status, confidence and backend."""
        rows = []
        for index in sorted(self.slices):
            state = self.slices[index]
            row: dict[str, Any] = {
                "index": index,
                "status": state.status,
                "confidence": state.score,
                "backend": state.backend,
            }
            if names is not None:
                row["name"] = names[index]
            rows.append(row)
        return {"slices": rows}
