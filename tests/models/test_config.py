"""Options → typed configs in one place: unknown keys, conversion, ranges, help text."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import pytest

from src_models import cli
from src_models.backends.configs import ClassicConfig, Dinov2Insid3Config, Insid3Config
from src_models.config import build_config, convert, option_table, parse_pairs
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
    assert "| `per_slice` | bool or none | `none` |" in capsys.readouterr().out
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
