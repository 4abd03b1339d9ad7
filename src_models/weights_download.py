"""Explicit, user-requested downloads of checkpoints (``napari-incontext weights download``).

Nothing else in the package calls this module: models never download on their own. A file
is streamed to a per-process ``.<pid>-<token>.part.<file>`` beside its target with connect
and read timeouts, never past its expected size (the spec's, else ``Content-Length``); the
file on disk is then checked (not empty, the expected size, the sha256 or its published
prefix), probe-loaded weights-only, fsynced and only then renamed into place. A crash or a
bad file never leaves a half-written checkpoint where the loaders look. Every failure is one
``RuntimeError`` line naming its cause. Set ``NAPARI_INCONTEXT_OFFLINE=1`` to forbid
downloads (e.g. on a cluster without internet).

Why not ``pooch.retrieve``: measured on a local server, it wrote a 200 MB endless response
to disk and returned success (no size limit), it renames into place before a caller can
probe-load the file, and it takes full hashes only (DINOv3's official names carry sha256
prefixes). Its timeouts (requests) and temp files are what this module does with urllib.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import secrets
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src_models import weights
from src_models.atomic import pid_alive
from src_models.hashing import file_sha256
from src_models.weights import WeightsSpec, get_spec, probe_checkpoint

OFFLINE_ENV = "NAPARI_INCONTEXT_OFFLINE"
CHUNK = 1 << 20
TIMEOUT_S = 30.0
MAX_UNKNOWN_SIZE = 20 * 10**9  # no size from the spec or the server: stop here
Opener = Callable[[str], Any]
Report = Callable[[int, int | None], None]  # (bytes received, bytes expected or None)


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


def default_opener(url: str) -> Any:
    """``urlopen`` with a timeout on the connection and on every read."""
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)


def _expected_size(spec: WeightsSpec, response: Any) -> int | None:
    if spec.size is not None:
        return spec.size
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    if value is None:
        return None
    try:
        size = int(value)
    except ValueError:
        raise RuntimeError(f"the server sent a bad Content-Length {value!r}") from None
    if size <= 0:
        raise RuntimeError(f"the server announced an empty {spec.file_name} (Content-Length 0)")
    return size


def _receive(
    response: Any,
    part: Path,
    expected: int | None,
    progress: bool,
    desc: str,
    report: Report | None = None,
) -> int:
    """Copy the response into ``part`` (fsynced); bytes written. Stops past ``expected``;
    ``report(received, expected)`` after every block (the widget's progress bar)."""
    from tqdm import tqdm

    limit = expected if expected is not None else MAX_UNKNOWN_SIZE
    nbytes = 0
    with (
        tqdm(
            total=expected,
            unit="B",
            unit_scale=True,
            desc=desc,
            file=sys.stderr,
            disable=not progress,
        ) as bar,
        open(part, "xb") as handle,
    ):
        while block := response.read(min(CHUNK, limit + 1 - nbytes)):
            handle.write(block)
            nbytes += len(block)
            bar.update(len(block))
            if report is not None:
                report(nbytes, expected)
            if nbytes > limit:
                raise RuntimeError(
                    f"the server sent more than the expected {limit:,} bytes; nothing was kept"
                )
        handle.flush()
        os.fsync(handle.fileno())
    return nbytes


def _check_file(spec: WeightsSpec, part: Path, nbytes: int, expected: int | None) -> None:
    """Size, sha256 (of the file on disk) and a weights-only probe load."""
    if nbytes == 0:
        raise RuntimeError(f"the server sent an empty {spec.file_name}; nothing was kept")
    if expected is not None and nbytes != expected:
        raise RuntimeError(
            f"download of {spec.file_name} got {nbytes:,} bytes, expected {expected:,}; "
            "the transfer was cut or the server sent another file: try again"
        )
    if spec.sha256 is not None:
        digest = file_sha256(part)
        if not digest.startswith(spec.sha256):
            raise RuntimeError(
                f"download of {spec.file_name} has sha256 {digest[:16]}…, expected "
                f"{spec.sha256}; nothing was kept: try again or download it by hand"
            )
    probe_checkpoint(part, spec.file_name)


def _part_name(target: Path) -> Path:
    return target.with_name(f".{os.getpid()}-{secrets.token_hex(4)}.part.{target.name}")


def clean_stale_parts(target: Path) -> None:
    """Delete ``.part`` files of ``target`` left by processes that no longer run."""
    pattern = re.compile(rf"^\.(\d+)-[0-9a-f]{{8}}\.part\.{re.escape(target.name)}$")
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if match and not pid_alive(int(match[1])):
            entry.unlink(missing_ok=True)


def stream_to_file(
    spec: WeightsSpec,
    target: Path,
    opener: Opener = default_opener,
    progress: bool = True,
    report: Report | None = None,
) -> Path:
    """Download ``spec`` to ``target`` atomically and verified (see the module docstring).

    Args:
        spec: what to fetch.
        target: final path of the file.
        opener: ``url -> response`` with ``read(n)`` and optional ``headers``/``close``.
        progress: show a tqdm bar on stderr.
        report: called with (bytes received, bytes expected or None) after every block.
    """
    url = _source_url(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_parts(target)
    part = _part_name(target)
    response = opener(url)
    try:
        expected = _expected_size(spec, response)
        nbytes = _receive(response, part, expected, progress, spec.file_name, report)
        _check_file(spec, part, nbytes, expected)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
        close = getattr(response, "close", None)
        if close is not None:
            close()
    return target


def explain(error: BaseException, url: str, folder: Path) -> str:
    """One line naming the real cause of a download failure."""
    if isinstance(error, urllib.error.HTTPError):
        return f"the server answered {error.code} {error.reason} for {url}"
    reason = getattr(error, "reason", error)  # URLError wraps the socket error
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer from {url} within {TIMEOUT_S:.0f} s: the network is slow or down"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host of {url} ({reason.strerror}): no network or DNS"
    if isinstance(reason, PermissionError) or getattr(reason, "errno", None) == errno.EACCES:
        return f"permission denied writing in {folder}: make it writable or set another cache"
    if getattr(reason, "errno", None) == errno.ENOSPC:
        return f"the disk holding {folder} is full"
    if isinstance(reason, (ConnectionError, http.client.HTTPException)):
        return f"the connection to {url} broke ({type(reason).__name__}): try again"
    return f"{type(reason).__name__}: {reason}"


def download(
    spec: WeightsSpec | str,
    directory: Path | None = None,
    opener: Opener = default_opener,
    progress: bool = True,
    report: Report | None = None,
) -> Path:
    """Fetch ``spec`` into the user cache dir (or ``directory``) and return its path.

    Raises:
        RuntimeError: downloads are forbidden (``$NAPARI_INCONTEXT_OFFLINE``), the network,
            the server or the disk fails, or the file does not match the spec.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if not downloads_allowed():
        raise RuntimeError(
            f"downloads are disabled (${OFFLINE_ENV} is set); fetch {spec.url or spec.hf_id} "
            "on another machine and copy it into the weights directory"
        )
    folder = directory or weights.cache_dir()  # looked up at call time (tests move it)
    target = folder / spec.file_name
    url = _source_url(spec)
    try:
        return stream_to_file(spec, target, opener, progress, report)
    except RuntimeError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError: an OSError
        raise RuntimeError(
            f"could not download {spec.file_name}: {explain(error, url, folder)}; or download "
            f"{url} by hand and put it at {target}"
        ) from error
