"""Options → typed configs in one place: unknown keys, conversion, ranges, help text."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import pytest

from src_models import cli
from src_models.backends.configs import ClassicConfig, Dinov2Insid3Config, Insid3Config
from src_models.config import (
    build_config,
    check_ranges,
    convert,
    option_table,
    parse_pairs,
    ranged,
)
from src_models.registry import BACKENDS, build_backend, split_refine_options
from src_models.timing import NULL_TIMER, Timer


@dataclass(frozen=True)
class Toy:
    """A config with every supported field type.

    Attributes:
        flag: a switch.
        count: how many; continues
            on a second line.
        ratio, scale: two floats sharing one line.
        mode: a choice.
        limit: optional integer.
    """

    flag: bool = False
    count: int = 3
    ratio: float = 0.5
    scale: float = 1.0
    mode: Literal["fast", "slow"] = "fast"
    limit: int | None = None


def test_strings_are_converted_by_annotation() -> None:
    config = build_config(
        Toy, {"flag": "yes", "count": "7", "ratio": "0.25", "mode": "slow", "limit": "none"}
    )
    assert config == Toy(flag=True, count=7, ratio=0.25, mode="slow", limit=None)
    assert build_config(Toy, {"flag": "False", "limit": "4"}) == Toy(flag=False, limit=4)
    assert build_config(Toy, {"flag": 1, "count": 2.0}) == Toy(flag=True, count=2)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"flagg": "1"}, "unknown option.*flagg.*valid options are flag, count"),
        ({"flag": "maybe"}, "flag='maybe': expected bool"),
        ({"flag": "2"}, "flag='2': expected bool"),
        ({"count": "2.5"}, "count='2.5': expected int"),
        ({"count": True}, "count=True: expected int"),
        ({"ratio": "abc"}, "ratio='abc': expected float"),
        ({"mode": "medium"}, "choose one of fast, slow"),
        ({"count": None}, "count cannot be none"),
        ({"count": "none"}, "count=.none.: expected int"),
    ],
)
def test_bad_options_are_value_errors_that_say_what_is_valid(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_config(Toy, options)


def test_ranges_are_checked_by_each_config() -> None:
    with pytest.raises(ValueError, match="sigma_min=0.0 must be > 0"):
        build_config(ClassicConfig, {"sigma_min": "0"})
    with pytest.raises(ValueError, match="sigma_max=0.5 is out of range"):
        build_config(ClassicConfig, {"sigma_max": "0.5"})
    with pytest.raises(ValueError, match="tau=1.5 is out of range"):
        build_config(Insid3Config, {"tau": 1.5})


@dataclass(frozen=True)
class Ranged:
    """A config whose ranges are declared on its fields.

    Attributes:
        low: at least 1.
        high: at least low, at most 10.
        scale: above zero.
    """

    low: int = ranged(2, low=1)
    high: float = ranged(5.0, low="low", high=10)
    scale: float | None = ranged(None, positive=True)

    def __post_init__(self) -> None:
        check_ranges(self)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"low": 0}, r"option low=0 is out of range: use a value in \[1, inf\]"),
        ({"high": 11}, r"option high=11.0 is out of range: use a value in \[2, 10\]"),
        ({"low": 6, "high": 5}, r"option high=5.0 is out of range: use a value in \[6, 10\]"),
        ({"scale": "0"}, "option scale=0.0 must be > 0"),
    ],
)
def test_declared_ranges_are_checked_and_described(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_config(Ranged, options)
    assert build_config(Ranged, {"scale": "none"}) == Ranged()
    rows = {row.name: row for row in option_table(Ranged)}
    assert [rows[n].range.text() for n in rows] == ["≥ 1", "[low, 10]", "> 0"]
    assert rows["high"].range.numeric() == (None, 10) and rows["scale"].range.numeric()[0] == 0


def test_every_backend_range_is_checked_by_its_config() -> None:
    with pytest.raises(ValueError, match=r"n_estimators=0 is out of range: use a value in \[1, "):
        build_config(ClassicConfig, {"n_estimators": "0"})
    with pytest.raises(ValueError, match="max_depth=0 must be > 0"):
        build_config(ClassicConfig, {"max_depth": "0"})
    for info in BACKENDS.values():  # every declared range refuses a value past its bound
        for row in option_table(info.config):
            low, high = row.range.numeric() if row.range else (None, None)
            for bad in (low - 1 if low is not None else None, high + 1 if high else None):
                if bad is not None and row.base in (int, float):
                    with pytest.raises(ValueError, match=f"option {row.name}="):
                        build_config(info.config, {row.name: bad})


def test_option_table_reads_types_defaults_and_help_from_the_docstring() -> None:
    rows = {row.name: row for row in option_table(Toy)}
    assert list(rows) == ["flag", "count", "ratio", "scale", "mode", "limit"]
    assert rows["count"].help == "how many; continues on a second line."
    assert rows["ratio"].help == rows["scale"].help == "two floats sharing one line."
    assert rows["mode"].choices == ("fast", "slow") and rows["mode"].type == "fast / slow"
    assert rows["limit"].optional and rows["limit"].type == "int or none"
    # a subclass inherits the help of the fields it does not redocument
    sub = {row.name: row for row in option_table(Dinov2Insid3Config)}
    assert sub["backbone"].default == "dinov2_vits14" and "DINOv3" in sub["backbone"].help
    assert sub["tau"].help.startswith("clustering similarity threshold")


def test_every_registered_config_documents_every_option() -> None:
    for info in BACKENDS.values():
        for row in option_table(info.config):
            assert row.help, f"{info.name}: option {row.name} has no help line"
            assert convert(row, row.default) == row.default


def test_parse_pairs_keeps_strings_and_refuses_malformed() -> None:
    assert parse_pairs(["a=1", " b = x y "]) == {"a": "1", "b": "x y"}
    with pytest.raises(ValueError, match="key=value"):
        parse_pairs(["novalue"])


def test_registry_refuses_typos_and_weights_a_backend_does_not_take() -> None:
    with pytest.raises(ValueError, match="unknown option.*per_slise.*per_slice"):
        build_backend("classic", per_slise=True)
    with pytest.raises(ValueError, match="classic takes no weights file: drop weights"):
        build_backend("classic", weights="model.pth")
    with pytest.raises(ValueError, match="dinov2 takes weights: drop head_weights"):
        build_backend("dinov2", head_weights="decoder.pth")
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        build_backend("nope")


def test_device_on_a_cpu_only_backend_is_said() -> None:
    with pytest.warns(UserWarning, match="classic runs on the CPU only: device cuda is ignored"):
        build_backend("classic", device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_backend("classic", device="cpu")


def test_sam_refine_options_are_split_and_validated() -> None:
    own, refine = split_refine_options({"texture": "false", "sam_refine": "vit_b"})
    assert own == {"texture": "false"} and refine == {"model": "vit_b"}
    assert split_refine_options({"sam_refine": "none"}) == ({}, {})
    with pytest.raises(ValueError, match="need sam_refine"):
        split_refine_options({"sam_refine_use_box": "false"})
    with pytest.raises(ValueError, match="unknown option.*use_boxx for sam_refine"):
        build_backend("classic", sam_refine="vit_b", sam_refine_use_boxx=False)


def test_cli_option_typo_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backends", "--options", "classic"]) == 0
    out = capsys.readouterr().out
    assert "| `per_slice` | bool or none | `none` |  |" in out
    assert "| `n_estimators` | int | `16` | [1, 10000] |" in out  # the declared range
    assert "| `sigma_max` | float | `10.0` | ≥ sigma_min |" in out
    assert cli.main(["backends", "--options", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown backend 'nope'" in err


def test_timer_accumulates_stages_and_the_null_timer_records_nothing() -> None:
    timer = Timer()
    for _ in range(2):
        with timer("stage"):
            pass
    timer.add("stage", 1.0)
    assert set(timer.seconds) == {"stage"} and 1.0 <= timer.seconds["stage"] < 1.5
    with NULL_TIMER("stage"):
        pass
    assert NULL_TIMER.seconds == {}


def test_the_readme_documents_every_backends_options_from_the_same_table() -> None:
    from pathlib import Path

    from src_models.commands.backends_cmd import options_table
    from src_models.registry import BACKENDS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for name in BACKENDS:  # exactly what `napari-incontext backends --options NAME` prints
        assert f"### `{name}`\n\n{options_table(name)}\n" in readme, name
