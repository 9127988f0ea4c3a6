"""less.utils.config_options: command-line options declared from a typed config's fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from less.utils import config_from_args, config_options


@dataclass
class Example:
    epochs: int = 3
    rate: float = 1  # an int literal: the annotation, not the value, gives the type
    name: str = "xs"
    shuffle: bool = True
    limit: float | None = None
    items: list[str] = field(default_factory=list)


def parser(**options) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    config_options(p, Example(name="small"), **options)
    return p


def test_defaults_and_types_come_from_the_config_fields():
    p = parser(epochs="passes", rate=None, name=None, shuffle=None, limit=None)
    defaults = vars(p.parse_args([]))
    assert defaults == {"epochs": 3, "rate": 1, "name": "small", "shuffle": True, "limit": None}
    given = vars(
        p.parse_args(["--rate", "0.5", "--shuffle", "false", "--limit", "2.5", "--epochs", "7"])
    )
    assert given["rate"] == 0.5 and given["shuffle"] is False and given["limit"] == 2.5
    assert given["epochs"] == 7 and isinstance(given["epochs"], int)
    assert [a.help for a in p._actions if a.dest == "epochs"] == ["passes"]
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--epochs", "1.5"])


def test_prefix_and_choices():
    p = argparse.ArgumentParser(exit_on_error=False)
    config_options(p, Example(), prefix="unit", choices={"name": ["xs", "small"]}, name=None)
    assert p.parse_args(["--unit-name", "small"]).unit_name == "small"
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--unit-name", "huge"])


def test_unknown_fields_and_other_types_are_refused():
    with pytest.raises(TypeError, match="no field 'epoch'"):
        parser(epoch=None)
    with pytest.raises(TypeError, match="items: a list\\[str\\] option is declared by hand"):
        parser(items=None)


def test_config_from_args_takes_same_named_options_then_overrides():
    p = parser(epochs=None, rate=None)
    p.add_argument("--unrelated", default="x")  # not a field: ignored
    args = p.parse_args(["--epochs", "9"])
    config = config_from_args(Example, args, name="medium")
    assert (config.epochs, config.rate, config.name) == (9, 1, "medium")
    assert config.shuffle is True and config.items == []  # no option: the field's default
    assert config_from_args(Example, args, epochs=2).epochs == 2  # overrides win
