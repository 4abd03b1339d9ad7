"""Tables of evaluation results (Markdown pipes: readable in a terminal and in docs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from src_models.evaluation.protocols import EvalResult

COUNT_KEYS = (
    "pairs",
    "slices",
    "sequences",
    "corrections",
    "true instances",
    "reached",
    "cache hits (re-run)",
)


def format_value(key: str, value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if key in COUNT_KEYS and isinstance(value, (int, float)):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def results_table(results: Sequence[EvalResult], columns: Sequence[str] | None = None) -> str:
    """One row per result: dataset, backend, the summary columns, seconds and the note.

    Args:
        columns: summary keys to show (default: every key, in first-seen order).
    """
    if columns is None:
        seen: dict[str, None] = {}
        for r in results:
            seen.update(dict.fromkeys(r.summary))
        columns = list(seen)
    header = ["dataset", "backend", *columns, "seconds", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r.dataset, r.backend]
        cells += [format_value(c, r.summary[c]) if c in r.summary else "" for c in columns]
        cells += [f"{r.seconds:.1f}", r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
