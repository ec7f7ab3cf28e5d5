"""Package faces whose public names are imported on first use (PEP 562).

``import backtest`` (and every ``import backtest.<module>``, which runs the face first)
would otherwise load NumPy, Numba, Polars and DuckDB before the command line could even
print its ``--help``. Pure: no I/O, no state beyond the package's own namespace.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping


class _LazyFace(types.ModuleType):
    """A package module whose `_EXPORTS` (name -> module) load on first access."""

    def __getattr__(self, name: str):
        module = self.__dict__.get("_EXPORTS", {}).get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        types.ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: object) -> None:
        # Loading a submodule binds it on its package (`backtest.sweep` the module); a
        # public function of the same name keeps the name, as under eager imports.
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_EXPORTS", {}):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.__dict__.get("_EXPORTS", {})})


def lazy_face(package: str, exports: Mapping[str, str]) -> None:
    """Make `package` (its ``__name__``) load each public name of `exports` on first use."""
    module = sys.modules[package]
    module._EXPORTS = dict(exports)
    module.__class__ = _LazyFace
