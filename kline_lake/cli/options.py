"""Typed click options whose bad values are one `kline-lake: error: ...` line (exit 2).

click's own INT/FLOAT types print a usage dump for a bad value; these types show the same
`INTEGER`/`FLOAT` in `--help` but raise InputError, which `kline_lake.cli.run_cli` maps
to one line and exit status 2 like every other bad input.
"""

from __future__ import annotations

from typing import Any

import click

from kline_lake.errors import InputError


def _flag(param: click.Parameter | None) -> str:
    return param.opts[0] if param is not None and param.opts else "value"


class Integer(click.ParamType):
    """A whole number within `[low, high]` (`high` None: no upper bound)."""

    name = "integer"

    def __init__(self, low: int, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise InputError(f"{_flag(param)} must be an integer, got {value!r}") from None
        if number < self.low or (self.high is not None and number > self.high):
            bounds = f">= {self.low}" if self.high is None else f"within {self.low}..{self.high}"
            raise InputError(f"{_flag(param)} must be {bounds}, got {number}")
        return number


class Number(click.ParamType):
    """A number `>= low` (of `unit`, seconds by default; None: a plain factor); `whole`
    demands an integral value (and shows INTEGER)."""

    name = "float"

    def __init__(self, low: float, *, whole: bool = False, unit: str | None = "seconds") -> None:
        self.low, self.whole, self.unit = low, whole, unit
        if whole:
            self.name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            what = f"a number of {self.unit}" if self.unit else "a number"
            raise InputError(f"{_flag(param)} must be {what}, got {value!r}") from None
        if not number >= self.low:
            raise InputError(f"{_flag(param)} must be >= {self.low:g}, got {value}")
        if self.whole and not number.is_integer():
            raise InputError(f"{_flag(param)} must be a whole number of {self.unit}, got {value}")
        return number
