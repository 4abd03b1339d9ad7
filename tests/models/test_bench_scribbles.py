"""scripts/bench_scribbles.py on a tiny fake DAVIS folder: --datasets davis writes the DAVIS
section and keeps the ISBI section of the block as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.io import imsave

from tests.helpers import load_script

ISBI = "### ISBI 2012 (EM membranes, 512 × 512)\n\nProduced by an earlier run.\n\n| a |\n|---|"


def _script():
    return load_script("bench_scribbles")


def _fake_davis(data: Path, frames: int = 3) -> None:
    """One sequence "disc": a bright disc moving right on noise, (48, 64) RGB + its mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :64]
    images = data / "davis2016_val" / "JPEGImages" / "disc"
    masks = data / "davis2016_val" / "Annotations" / "disc"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for f in range(frames):
        mask = (yy - 24) ** 2 + (xx - 20 - 4 * f) ** 2 < 12**2
        image = rng.integers(0, 60, (48, 64, 3)) + 180 * mask[..., None]
        imsave(images / f"{f:05d}.jpg", image.astype(np.uint8), check_contrast=False)
        imsave(masks / f"{f:05d}.png", (mask * 255).astype(np.uint8), check_contrast=False)


def test_davis_only_run_keeps_the_isbi_section(tmp_path):
    _fake_davis(tmp_path)
    out = tmp_path / "benchmarks.md"
    out.write_text(
        f"# Benchmarks\n\n<!-- scribbles:begin -->\n## old\n\n{ISBI}\n<!-- scribbles:end -->\n"
    )
    args = ["--data", str(tmp_path), "--out", str(out), "--datasets", "davis", "--strokes", "3"]
    assert _script().main([*args, "--sequences", "1", "--frames", "3", "--step", "1"]) == 0

    page = out.read_text()
    assert ISBI in page
    davis = page.split("### DAVIS", 1)[1]
    assert "--datasets davis --sequences 1 --frames 3 --step 1" in davis
    rows = [line for line in davis.splitlines() if line.startswith("| ") and "%" in line]
    assert [r.split(" | ")[1] for r in rows] == ["background", "unlabelled", "background (before)"]
    dense_iou = float(rows[0].split(" | ")[4])
    assert dense_iou > 0.8  # a bright disc on noise: the dense example finds it
