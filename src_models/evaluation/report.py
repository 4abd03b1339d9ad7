"""Tables of evaluation results (Markdown pipes: readable in a terminal and in docs)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

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


BLOCK = r"<!-- (\w+):begin -->.*?<!-- \1:end -->"
"""A block of a docs page that one script maintains (``<!-- name:begin -->`` … ``end``)."""


def write_block(path: Path, name: str, body: str, title: str) -> None:
    """Replace block ``name`` of the page at ``path`` with ``body`` (appended when the page
    has no such block; a missing page starts with ``title``); the rest is kept."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = f"{begin}\n{body}\n{end}"
    page = path.read_text() if path.is_file() else f"{title}\n"
    if begin in page and end in page:
        head, rest = page.split(begin, 1)
        page = head + text + rest.split(end, 1)[1]
    else:
        page = page.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(page)


def kept_blocks(path: Path) -> str:
    """Every block of the page at ``path`` (for a script that rewrites the rest of it)."""
    if not path.is_file():
        return ""
    return "".join(f"\n{m.group(0)}\n" for m in re.finditer(BLOCK, path.read_text(), re.S))
