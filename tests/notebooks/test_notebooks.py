"""The notebooks run top to bottom, offline, in a kernel of this very interpreter.

The kernel is started from a throwaway kernelspec whose argv is ``sys.executable -m
ipykernel_launcher``: no ``python -m ipykernel install`` is needed, and a user-level
``python3`` kernelspec pointing at some other Python cannot hijack the run. A cell that
raises fails the test (nbclient's CellExecutionError, with the traceback). Each notebook
ends with a cell of asserts and a ``RESULT`` dict; the test appends one cell that prints
it as JSON and checks the values too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL_NAME = "kline-lake-test"
CELL_TIMEOUT_S = 120
MARKER = "RESULT_JSON="


def _kernel_manager(tmp_path: Path) -> KernelManager:
    spec_dir = tmp_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kline-lake tests", "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _execute(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, dict]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    probe = ("import json, sys\n"
             f"print({MARKER!r} + json.dumps({{'result': RESULT, 'prefix': sys.prefix}}))")
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    line = next(x for x in text.splitlines() if x.startswith(MARKER))
    probe_out = json.loads(line[len(MARKER):])
    assert probe_out["prefix"] == sys.prefix  # the kernel ran this interpreter
    return nb, probe_out["result"]


def _outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type in ("display_data", "execute_result") and mime in o.get("data", {})]


@pytest.mark.parametrize("name", ["01_download_and_query.ipynb",
                                  "02_backtest_with_funding.ipynb"])
def test_notebooks_are_stored_clean(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["language"] == "python"


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    """The kernel inherits our environment: a user's PLOTLY_RENDERER=browser would make
    ``fig.show()`` try to open a browser instead of emitting the figure as output."""
    monkeypatch.delenv("PLOTLY_RENDERER", raising=False)


def test_download_and_query_notebook(tmp_path):
    nb, result = _execute("01_download_and_query.ipynb", tmp_path)
    # two symbols x (31 days x 24 h - the 2 h maintenance window of 2024-05-15)
    assert result == {"kline_rows": 2 * (31 * 24 - 2), "gaps": 1, "daily_bars": 31}
    figures = _outputs(nb, "application/vnd.plotly.v1+json")
    assert len(figures) == 1
    kinds = [t["type"] for t in figures[0]["data"]]
    assert kinds == ["candlestick", "bar"]


def test_backtest_with_funding_notebook(tmp_path):
    nb, result = _execute("02_backtest_with_funding.ipynb", tmp_path)
    assert result["funding_paid"] != 0 and result["hold_funding_paid"] != 0
    assert result["best"]["fast"] in (6, 12, 24, 48)
    assert result["best"]["slow"] in (72, 120, 168, 240)
    frames = [h for h in _outputs(nb, "text/html") if "<iframe srcdoc=" in h]
    assert len(frames) == 2  # the run report and the sweep report, inline
    assert all("data-figure=" in h and "plotly.js" in h for h in frames)
