"""Explicit, user-requested downloads of checkpoints (``napari-incontext weights download``).

Nothing else in the package calls this module: models never download on their own. A file
is streamed to ``<cache dir>/<file>.part``, hashed while it arrives, checked against the
spec's sha256 and size, then renamed into place, so a crash or a bad file never leaves a
half-written checkpoint where the loaders look. Set ``NAPARI_INCONTEXT_OFFLINE=1`` to forbid
downloads altogether (e.g. on a cluster without internet).
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from src_models.weights import WeightsSpec, cache_dir, get_spec

OFFLINE_ENV = "NAPARI_INCONTEXT_OFFLINE"
CHUNK = 1 << 20


def downloads_allowed() -> bool:
    """False when ``$NAPARI_INCONTEXT_OFFLINE`` is set to anything but ``0``/empty."""
    return os.environ.get(OFFLINE_ENV, "") in ("", "0")


def _source_url(spec: WeightsSpec) -> str:
    if spec.gated:
        raise RuntimeError(f"{spec.name} weights are gated: {spec.how_to_get}")
    if spec.url:
        return spec.url
    if spec.hf_id:
        return f"https://huggingface.co/{spec.hf_id}/resolve/main/{spec.hf_file}"
    raise RuntimeError(f"{spec.name} has no download source: {spec.how_to_get}")


def _check(spec: WeightsSpec, digest: str, nbytes: int, part: Path) -> None:
    if spec.size is not None and nbytes != spec.size:
        part.unlink(missing_ok=True)
        raise RuntimeError(
            f"download of {spec.file_name} got {nbytes} bytes, expected {spec.size}; "
            "the transfer was cut or the server sent another file: try again"
        )
    if spec.sha256 is not None and not digest.startswith(spec.sha256):
        part.unlink(missing_ok=True)
        raise RuntimeError(
            f"download of {spec.file_name} has sha256 {digest[:16]}…, expected {spec.sha256}; "
            "nothing was kept: try again or download it by hand"
        )


def stream_to_file(
    spec: WeightsSpec,
    target: Path,
    opener: Callable[[str], object] = urllib.request.urlopen,
    progress: bool = True,
) -> Path:
    """Download ``spec`` to ``target`` atomically (``.part`` + rename), verifying it.

    Args:
        spec: what to fetch.
        target: final path of the file.
        opener: ``url -> response`` with ``read(n)`` and optional ``headers`` (tests pass a fake).
        progress: show a tqdm bar on stderr.
    """
    from tqdm import tqdm

    url = _source_url(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    nbytes = 0
    response = opener(url)
    total = spec.size
    headers = getattr(response, "headers", None)
    if total is None and headers is not None and headers.get("Content-Length"):
        total = int(headers["Content-Length"])
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=spec.file_name,
        file=sys.stderr,
        disable=not progress,
    )
    try:
        with open(part, "wb") as handle:
            while block := response.read(CHUNK):  # type: ignore[attr-defined]
                handle.write(block)
                digest.update(block)
                nbytes += len(block)
                bar.update(len(block))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        close = getattr(response, "close", None)
        if close is not None:
            close()
    _check(spec, digest.hexdigest(), nbytes, part)
    os.replace(part, target)
    return target


def download(
    spec: WeightsSpec | str,
    directory: Path | None = None,
    opener: Callable[[str], object] = urllib.request.urlopen,
    progress: bool = True,
) -> Path:
    """Fetch ``spec`` into the user cache dir (or ``directory``) and return its path.

    Raises:
        RuntimeError: downloads are forbidden (``$NAPARI_INCONTEXT_OFFLINE``), the network
            fails, or the file does not match the spec's size or sha256.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if not downloads_allowed():
        raise RuntimeError(
            f"downloads are disabled (${OFFLINE_ENV} is set); fetch {spec.url or spec.hf_id} "
            "on another machine and copy it into the weights directory"
        )
    target = (directory or cache_dir()) / spec.file_name
    try:
        return stream_to_file(spec, target, opener, progress)
    except OSError as error:  # URLError is an OSError
        raise RuntimeError(
            f"could not download {spec.file_name} ({error}); check the network, or download "
            f"{spec.url or spec.hf_id} by hand and put it at {target}"
        ) from error
