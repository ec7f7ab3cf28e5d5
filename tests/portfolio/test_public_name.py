"""`backtest.portfolio` is the function, whatever is imported and in which order.

The engine lives in `backtest.multi_asset`; no module is named `backtest.portfolio`, so no
import can rebind the name (a subpackage of that name did: ``import
backtest.portfolio.engine as e`` then failed and ``import backtest.portfolio as p`` gave
the function). Each order (sorted, reversed, shuffled) starts from a fresh import state
(every ``backtest`` module is dropped from ``sys.modules`` first).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib, importlib.util, random, sys
from pathlib import Path

root = Path(sys.argv[1])
names = sorted(".".join(p.relative_to(root).with_suffix("").parts[:-1]
                        if p.name == "__init__.py" else p.relative_to(root).with_suffix("").parts)
               for p in (root / "backtest").rglob("*.py"))
orders = [names, names[::-1], random.Random(7).sample(names, len(names))]
for order in orders:
    for mod in [m for m in sys.modules if m == "backtest" or m.startswith("backtest.")]:
        del sys.modules[mod]
    for name in order:
        importlib.import_module(name)
    import backtest
    import backtest.multi_asset.engine as engine
    import backtest.multi_asset as pkg
    from backtest import portfolio
    if not (portfolio is backtest.portfolio is engine.portfolio is pkg.portfolio):
        raise SystemExit(f"backtest.portfolio is {backtest.portfolio!r} after {order}")
    if type(backtest.portfolio).__name__ != "function":
        raise SystemExit(f"not a function: {backtest.portfolio!r}")
    if backtest.portfolio_sweep is not importlib.import_module(
            "backtest.multi_asset.sweep").portfolio_sweep:
        raise SystemExit("backtest.portfolio_sweep is not the sweep")
    if importlib.util.find_spec("backtest.portfolio") is not None or \
            "backtest.portfolio" in sys.modules:
        raise SystemExit("a module named backtest.portfolio exists")
print(len(orders), len(names))
"""


def test_backtest_portfolio_is_the_function_after_any_import_order():
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    n_orders, n_modules = map(int, out.stdout.split())
    assert n_orders == 3 and n_modules > 40  # every backtest module, three orders
