"""Typed backend options: one place that turns user options into a config dataclass.

Every backend's hyperparameters are a frozen dataclass whose docstring has an ``Attributes:``
section. :func:`build_config` is the only way the CLI, the Python API and the widget build one:
unknown keys are a ``ValueError`` listing the valid ones, strings are converted by the field's
annotation (``"true"``/``"no"``/``"1"`` for booleans, numbers, ``none`` for optional fields,
``Literal`` choices), and each config's ``__post_init__`` checks ranges.

A field's range is declared once, as metadata: ``x: float = ranged(0.5, low=0, high=1)``.
:func:`check_ranges` (called by each config's ``__post_init__``) validates it, and
:func:`option_table` hands it on, with type, default, choices and help, to
``napari-incontext backends --options NAME``, the README's tables and the widget's forms
(spin-box limits, tooltips).
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

C = TypeVar("C")

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
_NONE = ("none", "null", "")


Bound = float | str | None  # a number, another field's name, or None (open)


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts.

    Attributes:
        low: smallest value (a number, the name of another field of the config, or None).
        high: largest value (same kinds as ``low``).
        positive: the value must be > 0 (``low`` is then None).
    """

    low: Bound = None
    high: Bound = None
    positive: bool = False

    def text(self) -> str:
        """Readable form: ``[0, 1]``, ``≥ 1``, ``≤ 5``, ``> 0``, ``≥ sigma_min``."""
        if self.positive:
            return "> 0" if self.high is None else f"(0, {self.high}]"
        if self.low is not None and self.high is not None:
            return f"[{self.low}, {self.high}]"
        if self.low is not None:
            return f"≥ {self.low}"
        return "" if self.high is None else f"≤ {self.high}"

    def numeric(self) -> tuple[float | None, float | None]:
        """(low, high) as numbers; a bound naming another field is None (not fixed)."""
        low, high = (b if isinstance(b, int | float) else None for b in (self.low, self.high))
        return (0.0 if self.positive else low), high


def ranged(default: Any, *, low: Bound = None, high: Bound = None, positive: bool = False) -> Any:
    """A dataclass field with a default and a :class:`Range` (checked by :func:`check_ranges`)."""
    return field(default=default, metadata={"range": Range(low, high, positive)})


def field_range(f: dataclasses.Field[Any]) -> Range | None:
    """The :class:`Range` declared on a dataclass field, if any."""
    return f.metadata.get("range")


def check_ranges(config: Any) -> None:
    """Check every field of a config dataclass that declares a :class:`Range`.

    Raises:
        ValueError: ``option NAME=VALUE is out of range: use a value in [lo, hi]`` or
            ``option NAME=VALUE must be > 0``.
    """
    for f in dataclasses.fields(config):
        bounds = field_range(f)
        if bounds is None:
            continue
        value = getattr(config, f.name)
        low, high = (
            getattr(config, b) if isinstance(b, str) else b for b in (bounds.low, bounds.high)
        )
        if bounds.positive:
            check_positive(**{f.name: value})
        check_range(f.name, value, low, high)


@dataclass(frozen=True)
class OptionInfo:
    """One config field as users see it.

    Attributes:
        name: option key.
        type: readable type, e.g. ``int``, ``float or none``, ``auto / float32``.
        default: the default value.
        choices: allowed values of a ``Literal`` field (empty otherwise).
        help: the field's line from the config's docstring.
        optional: True when ``none`` is a valid value.
        base: the non-None Python type (``bool``, ``int``, ``float``, ``str``).
        range: the values accepted (None = any of the type).
    """

    name: str
    type: str
    default: Any
    choices: tuple[Any, ...]
    help: str
    optional: bool
    base: builtins.type
    range: Range | None = None


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (annotation, False)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def _base_and_choices(annotation: Any) -> tuple[type, tuple[Any, ...]]:
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    if annotation in (bool, int, float, str):
        return annotation, ()
    raise TypeError(f"unsupported option type {annotation!r}: use bool, int, float, str, Literal")


def _docstring_help(cls: type) -> dict[str, str]:
    """``name: text`` lines (continuations joined) of the ``Attributes:`` sections of ``cls``
    and its bases (a subclass's line wins)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        out |= _attributes_section(klass.__dict__.get("__doc__") or "")
    return out


def _attributes_section(doc: str) -> dict[str, str]:
    _, _, section = doc.partition("Attributes:")
    out: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        match = re.match(r"^\s{4,8}([A-Za-z_][\w, ]*):\s*(.*)$", line)
        if match and all(n.strip().isidentifier() for n in match[1].split(",")):
            names = [n.strip() for n in match[1].split(",")]
            for name in names:
                out[name] = match[2].strip()
        elif line.strip() and names:
            for name in names:
                out[name] += " " + line.strip()
    return out


def option_table(cls: type) -> list[OptionInfo]:
    """Describe every field of a config dataclass (in declaration order)."""
    hints = typing.get_type_hints(cls)
    helps = _docstring_help(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        inner, optional = _split_optional(hints[f.name])
        base, choices = _base_and_choices(inner)
        shown = " / ".join(str(c) for c in choices) if choices else base.__name__
        rows.append(
            OptionInfo(
                name=f.name,
                type=f"{shown} or none" if optional else shown,
                default=f.default,
                choices=choices,
                help=helps.get(f.name, ""),
                optional=optional,
                base=base,
                range=field_range(f),
            )
        )
    return rows


def convert(info: OptionInfo, value: Any) -> Any:
    """Convert a user value (often a string from the CLI or a form) to the field's type.

    Raises:
        ValueError: naming the option, the value and what is accepted.
    """
    text = value.strip().lower() if isinstance(value, str) else None
    if value is None or (info.optional and text in _NONE):
        if info.optional:
            return None
        raise ValueError(f"option {info.name} cannot be none: give a {info.type}")
    try:
        out = _convert_base(info.base, value, text)
    except (TypeError, ValueError):
        raise ValueError(f"option {info.name}={value!r}: expected {info.type}") from None
    if info.choices and out not in info.choices:
        allowed = ", ".join(str(c) for c in info.choices)
        raise ValueError(f"option {info.name}={value!r}: choose one of {allowed}")
    return out


def _convert_base(base: type, value: Any, text: str | None) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
        if text in _TRUE or (not isinstance(value, str) and value in (0, 1)):
            return text in _TRUE if text is not None else bool(value)
        if text in _FALSE:
            return False
        raise ValueError(value)
    if base is int:
        if isinstance(value, bool):
            raise TypeError(value)
        number = float(value) if isinstance(value, str) else value
        if not float(number).is_integer():
            raise ValueError(value)
        return int(number)
    if base is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def build_config(cls: type[C], options: Mapping[str, Any] | None = None, *, owner: str = "") -> C:
    """Build ``cls`` from user options.

    Args:
        cls: a config dataclass (fields typed bool/int/float/str/Literal, optionally ``| None``).
        options: key → value; values may be strings (converted by annotation).
        owner: the backend name, for messages.

    Raises:
        ValueError: an unknown key (the message lists the valid keys), a value of the wrong
            type, or a range error from the config's ``__post_init__``.
    """
    table = {info.name: info for info in option_table(cls)}
    options = dict(options or {})
    unknown = sorted(set(options) - set(table))
    if unknown:
        where = f" for {owner}" if owner else ""
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)}{where}: valid options are "
            f"{', '.join(table)} (see `napari-incontext backends --options NAME`)"
        )
    values = {key: convert(table[key], value) for key, value in options.items()}
    try:
        return cls(**values)
    except TypeError as error:  # a wrong combination the dataclass itself refuses
        raise ValueError(f"invalid options{f' for {owner}' if owner else ''}: {error}") from None


def parse_pairs(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` (the CLI's ``--option``, the widget's text field) → dict of strings.

    Values stay strings: :func:`build_config` converts them by the field's type.
    """
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {pair!r}: write it as key=value")
        options[key.strip()] = value.strip()
    return options


def check_range(name: str, value: float | None, low: float | None, high: float | None) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (None bounds are open; None passes)."""
    if value is None:
        return
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"option {name}={value} is out of range: use a value in [{lo}, {hi}]")


def check_positive(**values: float | None) -> None:
    """Raise ``ValueError`` for any value that is not > 0 (None passes)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"option {name}={value} must be > 0")
