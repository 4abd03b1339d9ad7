"""Check that the README's backend table quotes its numbers from the docs it cites.

Every cell of the "CPU seconds" column names the page its numbers come from (a backticked
``docs/...md``); each number there given in seconds, as a ratio (×) or with decimals must
appear verbatim on that page. Run by .ci/run before the tests:

    .venv/bin/python scripts/check_readme_numbers.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"\d+(?:\.\d+)?(?=\s?(?:s\b|s/|×))|\d+\.\d+")
CITED = re.compile(r"`(docs/[\w/.-]+\.md)`")


def table_rows(readme: str) -> list[list[str]]:
    """The cells of each row of the table under ``## Backends``."""
    section = readme.split("## Backends", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def problems(readme: str) -> list[str]:
    found = []
    for cells in table_rows(readme):
        name, timing = cells[0], cells[-1]
        pages = CITED.findall(timing)
        if not pages:
            found.append(f"{name}: the timing cell cites no docs/ page")
            continue
        text = " ".join((ROOT / page).read_text(encoding="utf-8") for page in pages)
        for number in NUMBER.findall(timing):
            if not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text):
                found.append(f"{name}: {number} is not in {', '.join(pages)}")
    return found


def main() -> int:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if not table_rows(readme):
        print("README.md has no backend table under '## Backends'", file=sys.stderr)
        return 1
    found = problems(readme)
    for line in found:
        print(f"README.md: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
