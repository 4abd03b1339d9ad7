"""What a run was, as its outputs record it: the backend, its options and its automatic choices.

A backend with options left to "auto" (``classic``: ``per_slice``, ``position``, and the
engine's ``link="auto"``) decides them from the data; the engine reports them in the first
slice's timings as ``auto_*`` keys (1.0 = on, plus the measures that decided them, e.g.
``drift``). The CLI writes :func:`run_record` into the TIFF's description, the folder's
manifest and the zarr store's attributes; the widget into ``provenance.json``'s ``runs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

FLAGS = ("link", "per_slice", "position")  # the choices that switch something on or off


def automatic_choices(timings: Mapping[str, float], link_auto: bool = True) -> dict[str, float]:
    """The automatic choices in a slice's ``timings`` (the ``auto_*`` keys, unprefixed).

    ``link`` is dropped when the run was told whether to link (``link_auto`` False): then
    the data decided nothing about it.
    """
    chosen = {k[5:]: float(v) for k, v in timings.items() if k.startswith("auto_")}
    if not link_auto:
        chosen.pop("link", None)
    return chosen


def describe_choices(choices: Mapping[str, float], sep: str = " ") -> str:
    """The on/off choices in words, e.g. ``link on, per_slice off`` (``sep="="``:
    ``link=on, per_slice=off``); empty when nothing was chosen."""
    flags = [k for k in FLAGS if k in choices]
    return ", ".join(f"{k}{sep}{'on' if choices[k] else 'off'}" for k in flags)


def backend_options(backend: Any) -> dict[str, Any]:
    """Every option of ``backend``'s config dataclass (None = left to "auto"); {} without one."""
    config = getattr(backend, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return {}
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def run_record(backend: Any, choices: Mapping[str, float], **more: Any) -> dict[str, Any]:
    """JSON-ready record of one run: ``backend`` (its registry name), ``options`` (its
    config), ``automatic_choices`` (:func:`automatic_choices`) and ``more`` (e.g. ``link``)."""
    return {
        "backend": str(getattr(backend, "name", type(backend).__name__)),
        "options": backend_options(backend),
        "automatic_choices": dict(choices),
        **more,
    }
