"""Qt-free state of one annotation session: backend, caches, per-slice review state.

The widget owns one :class:`Session` and passes it explicitly; nothing here imports napari
or Qt, so the logic is testable without a viewer. Edits are detected by content hashes of
each slice of the user's labels (computed in workers), compared with a *baseline*: the
hash and status after the last accept (or the first look), so an undo returns a slice to
"proposed" and a redo to "accepted".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from napari_incontext._compat import block_triton_if_unsafe
from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.fitting import FitMemo
from src_models.order import WEAK_SHARE, weak_weight
from src_models.types import ExtraExamples, SliceResult

EXAMPLE = "example"
PROPOSED = "proposed"
ACCEPTED = "accepted"
REJECTED = "rejected"
EDITED = "edited"
PARTIAL = "partly accepted"
STATUSES = (EXAMPLE, PROPOSED, ACCEPTED, REJECTED, EDITED, PARTIAL)
LABELLED = (EXAMPLE, ACCEPTED, EDITED, PARTIAL)  # statuses of slices whose labels are examples
# How slices accepted without an edit count as examples in the next run: "weak" = together
# at most WEAK_SHARE of the painted or corrected slices (order.weak_weight).
ACCEPTED_WEIGHTS = ("weak", "full", "excluded")
STATE_VERSION = 1


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
    """Review state of one slice (or one image of a set).

    Attributes:
        status: one of :data:`STATUSES`.
        score: the review score of its proposal (None: never proposed).
        reasons: why the score is low ("object missing?", "size ×3.0").
        backend: the backend that proposed it.
        objects: per label id of the proposal, "accepted" or "rejected" (per-object review).
    """

    status: str
    score: float | None = None
    reasons: tuple[str, ...] = ()
    backend: str | None = None
    objects: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """The user's labels of a slice as last seen by the widget: content hash and status."""

    key: str
    status: str


@dataclass
class Session:
    """Backend, feature cache and review state shared by successive runs.

    Attributes:
        cache: features of every slice seen so far; survives re-runs and backend rebuilds.
        memo: what the head was last fitted on (an unchanged example set is not refitted).
        slices: review state per slice index; slices never touched are absent.
        baseline: per slice, the labels' hash and status after the last accept / first look.
        proposal_edits: slices whose proposal the user painted: a run never overwrites them,
            and accepting them counts as a correction.
        accepted_weight: one of :data:`ACCEPTED_WEIGHTS`.
        resume: settings and slices of the last run, so a run with the same settings after
            a cancel proposes only what is missing.
        generation: per slice, a counter bumped by every write of the widget; a hash
            computed in a worker before the write is stale and dropped.
        extra: examples loaded from another stack (used by every run until cleared).
        runs: per run, its backend, options and automatic choices
            (:func:`src_models.provenance.run_record`), oldest first; Save writes them.
    """

    cache: FeatureCache = field(default_factory=FeatureCache)
    memo: FitMemo = field(default_factory=FitMemo)
    slices: dict[int, SliceState] = field(default_factory=dict)
    baseline: dict[int, Baseline] = field(default_factory=dict)
    proposal_edits: set[int] = field(default_factory=set)
    accepted_weight: str = "weak"
    resume: dict[str, Any] = field(default_factory=dict)
    generation: dict[int, int] = field(default_factory=dict)
    extra: ExtraExamples | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    _backend: Backend | None = None
    _backend_spec: tuple[str, str] | None = None

    # ------------------------------------------------------------------ backend
    def backend(self, name: str, **options: Any) -> Backend:
        """The backend for (name, options), rebuilt only when they changed.

        Keeping the same object keeps a loaded model (and its fitted head) in memory.
        """
        from src_models.registry import build_backend

        block_triton_if_unsafe()
        spec = (name, repr(sorted(options.items())))
        if self._backend is None or spec != self._backend_spec:
            self._backend = build_backend(name, **options)
            self._backend_spec = spec
        return self._backend

    @property
    def built_backend(self) -> Backend | None:
        """The backend the last run built (None before the first)."""
        return self._backend

    # ------------------------------------------------------------------ review state
    def reset_review(self) -> None:
        """Forget the review (other layers); keep the cache and the backend."""
        self.slices.clear()
        self.baseline.clear()
        self.proposal_edits.clear()
        self.resume.clear()
        self.runs.clear()

    def status(self, index: int) -> str | None:
        state = self.slices.get(index)
        return state.status if state else None

    def set_status(self, index: int, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: choose one of {', '.join(STATUSES)}")
        self.slices.setdefault(index, SliceState(status)).status = status

    def has_proposal(self, index: int) -> bool:
        """True when the slice has a proposal that was not fully accepted yet."""
        state = self.slices.get(index)
        return state is not None and state.score is not None and state.status != ACCEPTED

    def record(self, result: SliceResult, backend_name: str) -> None:
        """Store a proposal's score and reasons; the slice becomes "proposed".

        A slice the user labelled while the run was going keeps its status.
        """
        state = self.slices.get(result.index)
        keep = state is not None and state.status in LABELLED
        self.slices[result.index] = SliceState(
            state.status if state and keep else PROPOSED,
            float(result.score),
            tuple(result.reasons),
            backend_name,
        )
        self.proposal_edits.discard(result.index)

    def touch(self, index: int) -> None:
        self.generation[index] = self.generation.get(index, 0) + 1

    def set_baseline(self, index: int, key: str, status: str | None = None) -> None:
        """Remember the labels of ``index`` (hash ``key``) as belonging to ``status``."""
        self.baseline[index] = Baseline(key, status or self.status(index) or EXAMPLE)

    def observe(self, index: int, key: str, has_labels: bool) -> str | None:
        """Update a slice's status from a hash of its labels; return the new status.

        Labels equal to the baseline restore the baseline's status (a redo); changed labels
        make the slice "edited" (an example's stay "example"), and emptied labels fall back
        to "proposed" (an undone accept). A slice seen for the first time with labels is an
        original "example", or "edited" when it had a proposal.
        """
        base, state = self.baseline.get(index), self.slices.get(index)
        if base is None:
            if has_labels and state is not None and state.status in LABELLED:
                self.set_baseline(index, key)  # a review restored from a file: adopt it
            elif has_labels:
                had_proposal = state is not None and state.score is not None
                self.set_status(index, EDITED if had_proposal else EXAMPLE)
                self.set_baseline(index, key)
        elif key == base.key:
            self.set_status(index, base.status)
        elif has_labels:
            self.set_status(index, EXAMPLE if base.status == EXAMPLE else EDITED)
        elif state is not None:
            if state.score is None:
                del self.slices[index]
            else:
                state.status, state.objects = PROPOSED, {}
        return self.status(index)

    def decide_object(self, index: int, label: int, decision: str, ids: Sequence[int]) -> str:
        """Record "accepted"/"rejected" for object ``label`` of the proposal on ``index``
        (whose ids are ``ids``); return the slice's status.

        The slice is "partly accepted" (left out of runs) until every object is decided,
        then "accepted" when any object was accepted, else "rejected".
        """
        state = self.slices.setdefault(index, SliceState(PROPOSED))
        state.objects[int(label)] = decision
        if set(map(int, ids)) <= set(state.objects):
            accepted = ACCEPTED in state.objects.values()
            state.status = ACCEPTED if accepted else REJECTED
        else:
            state.status = PARTIAL
        return state.status

    # ------------------------------------------------------------------ runs
    def weights(self, examples: Sequence[int]) -> dict[int, float]:
        """Example weight of each slice holding labels: 1 for painted or corrected slices,
        0 for partly reviewed ones, and for accepted ones as chosen (weak: together at most
        :data:`~src_models.engine.WEAK_SHARE` of the verified ones)."""
        statuses = {i: self.status(i) for i in examples}
        accepted = sum(s == ACCEPTED for s in statuses.values())
        verified = sum(s not in (ACCEPTED, PARTIAL) for s in statuses.values())
        chosen = {
            "weak": weak_weight(WEAK_SHARE, verified, accepted),
            "full": 1.0,
            "excluded": 0.0,
        }[self.accepted_weight]
        rule = {ACCEPTED: chosen, PARTIAL: 0.0}
        return {i: rule.get(s or EXAMPLE, 1.0) for i, s in statuses.items()}

    def example_slices(self) -> list[int]:
        """Slices whose labels are examples of the next run (any weight)."""
        return sorted(i for i, s in self.slices.items() if s.status in LABELLED)

    def weight(self, index: int) -> float:
        return self.weights(sorted({*self.example_slices(), index}))[index]

    # ------------------------------------------------------------------ review helpers
    def review_rows(self) -> list[tuple[int, SliceState]]:
        """(index, state) of every known slice, lowest score first; unscored slices last."""
        rows = list(self.slices.items())
        return sorted(rows, key=lambda r: (r[1].score is None, r[1].score or 0.0, r[0]))

    def next_lowest(self, after: int | None = None) -> int | None:
        """The lowest-score slice still waiting for review ("proposed" or "partly
        accepted"); with ``after``, the next one after it in review order (wrapping)."""
        pending = [i for i, s in self.review_rows() if s.status in (PROPOSED, PARTIAL)]
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
        """JSON-ready record of every slice's status, score, reasons and backend, and of
        every run's backend, options and automatic choices (``runs``)."""
        rows = []
        for index in sorted(self.slices):
            state = self.slices[index]
            row: dict[str, Any] = {
                "index": index,
                "status": state.status,
                "confidence": state.score,
                "reasons": list(state.reasons),
                "backend": state.backend,
                "weight": self.weight(index) if state.status != PROPOSED else None,
            }
            if state.objects:
                row["objects"] = {str(k): v for k, v in state.objects.items()}
            if names is not None:
                row["name"] = names[index]
            rows.append(row)
        return {"slices": rows, "runs": [dict(run) for run in self.runs]}

    def restore_provenance(self, saved: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Load the statuses, scores and reasons of a saved ``provenance.json`` (its slices'
        labels are adopted as baselines the first time the widget reads them): the record,
        or its ``slices`` alone; files saved before ``runs`` existed load the same."""
        rows = saved.get("slices", []) if isinstance(saved, Mapping) else saved
        runs = saved.get("runs", []) if isinstance(saved, Mapping) else []
        self.reset_review()
        self.runs = [dict(run) for run in runs if isinstance(run, Mapping)]
        for row in rows:
            if row.get("status") not in STATUSES:
                continue
            objects = {int(k): v for k, v in (row.get("objects") or {}).items()}
            self.slices[int(row["index"])] = SliceState(
                row["status"],
                row.get("confidence"),
                tuple(row.get("reasons") or ()),
                row.get("backend"),
                objects,
            )

    def snapshot(self) -> Session:
        """A copy of the review state (not the cache or backend) for a worker to read."""
        copy = Session(cache=FeatureCache(max_bytes=0), accepted_weight=self.accepted_weight)
        copy.restore(self.to_dict())
        return copy

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The review state as JSON-ready data (kept in the labels layer's metadata)."""
        return {
            "version": STATE_VERSION,
            "slices": {str(i): asdict(s) for i, s in self.slices.items()},
            "baseline": {str(i): asdict(b) for i, b in self.baseline.items()},
            "proposal_edits": sorted(self.proposal_edits),
            "accepted_weight": self.accepted_weight,
            "runs": [dict(run) for run in self.runs],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`to_dict` wrote (unknown versions are ignored)."""
        if data.get("version") != STATE_VERSION:
            return
        self.reset_review()
        for i, s in data.get("slices", {}).items():
            objects = {int(k): v for k, v in s.get("objects", {}).items()}
            self.slices[int(i)] = SliceState(
                s["status"], s["score"], tuple(s["reasons"]), s["backend"], objects
            )
        for i, b in data.get("baseline", {}).items():
            self.baseline[int(i)] = Baseline(b["key"], b["status"])
        self.proposal_edits = set(data.get("proposal_edits", []))
        self.runs = [dict(run) for run in data.get("runs", []) if isinstance(run, Mapping)]
        if data.get("accepted_weight") in ACCEPTED_WEIGHTS:
            self.accepted_weight = data["accepted_weight"]
