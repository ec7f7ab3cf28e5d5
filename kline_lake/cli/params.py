"""Typed click parameters shared by the `kline-lake` commands.

Each type checks its value while the command line is parsed (a bad value is click's usage
error, exit 2, before anything runs) and names itself in ``--help`` (``DATE``,
``SYMBOL[,SYMBOL...]``) instead of click's ``TEXT``.
"""

from __future__ import annotations

from datetime import datetime

import click

from kline_lake.core.markets import validate_symbol
from kline_lake.core.timeutil import parse_utc_us, us_to_datetime
from kline_lake.errors import InputError


class UtcTime(click.ParamType):
    """A UTC date or datetime (``2024-01-01``, ``2024-01-01T12:30``), as an aware datetime."""

    name = "date"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DATE"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return us_to_datetime(parse_utc_us(str(value), what=param.name if param else "date"))
        except InputError as exc:
            self.fail(str(exc), param, ctx)


class SymbolList(click.ParamType):
    """Comma-separated symbols (``BTCUSDT,ETHUSDT``), each checked, as a list."""

    name = "symbols"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "SYMBOL[,SYMBOL...]"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        names = [s.strip() for s in str(value).split(",") if s.strip()]
        if not names:
            self.fail("expected at least one symbol, e.g. BTCUSDT", param, ctx)
        try:
            return [validate_symbol(s) for s in names]
        except InputError as exc:
            self.fail(str(exc), param, ctx)


class Symbol(click.ParamType):
    """One symbol (``BTCUSDT``), checked."""

    name = "symbol"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "SYMBOL"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        try:
            return validate_symbol(str(value).strip())
        except InputError as exc:
            self.fail(str(exc), param, ctx)


UTC_TIME = UtcTime()
SYMBOL = Symbol()
SYMBOL_LIST = SymbolList()
