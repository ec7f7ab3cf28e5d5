"""Parsing ``--param`` values: ``fast=10``, ``fast=5:50:5`` (a range), ``fast=5,10,20``.

Ranges are ``start:stop:step``, inclusive of start and exclusive of stop, like Python's
``range`` but also for floats (``lower=20:35:2.5``). Integers stay integers; float
ranges step in decimal arithmetic, so ``0.1:0.7:0.1`` gives 0.3, not
0.30000000000000004 (each value is the float nearest the decimal the user wrote).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal

from kline_lake.errors import InputError

Number = int | float


def parse_number(text: str, name: str) -> Number:
    """'10' -> 10, '2.5' -> 2.5; InputError naming the parameter otherwise."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"parameter {name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"parameter {name}: {text!r} is not a finite number")
    return value


def parse_range(text: str, name: str) -> list[Number]:
    """'5:50:5' -> [5, 10, ..., 45]; step defaults to 1."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InputError(f"parameter {name}: range {text!r} must be start:stop[:step]")
    start, stop = parse_number(parts[0], name), parse_number(parts[1], name)
    step = parse_number(parts[2], name) if len(parts) == 3 else 1
    if step <= 0:
        raise InputError(f"parameter {name}: range step must be positive, got {step}")
    if all(isinstance(v, int) for v in (start, stop, step)):
        values: list[Number] = list(range(start, stop, step))
    else:
        values = _decimal_range(parts[0], parts[1], parts[2] if len(parts) == 3 else "1")
    if not values:
        raise InputError(f"parameter {name}: range {text!r} is empty (stop is exclusive)")
    return values


def _decimal_range(start: str, stop: str, step: str) -> list[Number]:
    """The float range [start, stop) stepped exactly in decimal (texts already parsed
    as finite numbers by `parse_number`)."""
    lo, hi, inc = (Decimal(t.strip()) for t in (start, stop, step))
    count = math.ceil((hi - lo) / inc) if hi > lo else 0
    return [float(lo + k * inc) for k in range(count)]


def parse_param(text: str) -> tuple[str, list[Number]]:
    """'name=value' | 'name=a:b:s' | 'name=a,b,c' -> (name, values)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise InputError(f"--param {text!r} must look like name=value")
    if ":" in value:
        return name, parse_range(value, name)
    return name, [parse_number(v, name) for v in value.split(",")]


def parse_stop(text: str | None, name: str) -> float | list[float] | None:
    """A ``--sl-stop``/``--tp-stop`` value: ``0.02`` -> 0.02; ``0.01:0.05:0.01`` or
    ``0.01,0.02`` -> the levels (a sweep); None -> None."""
    if text is None:
        return None
    values = [float(v) for v in parse_param(f"{name}={text}")[1]]
    return values if any(c in text for c in ":,") else values[0]


def parse_params(items: Iterable[str]) -> dict[str, list[Number]]:
    """Every --param, in order; InputError on a repeated name."""
    out: dict[str, list[Number]] = {}
    for item in items:
        name, values = parse_param(item)
        if name in out:
            raise InputError(f"parameter {name} given twice")
        out[name] = values
    return out


def single_values(grid: Mapping[str, Sequence[Number]]) -> dict[str, Number]:
    """For `backtest run`: each parameter must have exactly one value."""
    out = {}
    for name, values in grid.items():
        if len(values) != 1:
            raise InputError(f"parameter {name} has {len(values)} values; use `backtest sweep`")
        out[name] = values[0]
    return out


def grid_product(grid: Mapping[str, Sequence[Number]]) -> list[dict[str, Number]]:
    """Cartesian product of the parameter values, first parameter varying slowest."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(list(grid[n]) for n in names))]


def grid_size(grid: Mapping[str, Sequence[Number]]) -> int:
    """Number of combinations of the grid (its product), without building them."""
    return math.prod(len(values) for values in grid.values())


def grid_blocks(grid: Mapping[str, Sequence[Number]], block: int
                ) -> Iterator[list[dict[str, Number]]]:
    """`grid_product` in consecutive blocks of at most `block` points, built lazily so
    only one block of dicts exists at a time (sweeps chunk large grids with it)."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    names = list(grid)
    combos = itertools.product(*(list(grid[n]) for n in names))
    while chunk := list(itertools.islice(combos, block)):
        yield [dict(zip(names, combo, strict=True)) for combo in chunk]
