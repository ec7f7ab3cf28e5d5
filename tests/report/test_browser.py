"""The reports open in headless Chromium, draw every chart and log nothing.

Chromium (Debian's ``chromium``, installed by ``.ci/run``) loads the file with the
network disabled, runs for a virtual 5 s, then dumps the DOM. plotly.js creates
``.plot-container`` / ``.main-svg`` elements only when it actually ran, and the
report's own script marks ``<body data-figures-rendered="N">`` once every
``Plotly.newPlot`` promise has resolved. With ``--enable-logging=stderr`` every console
message of the page (``console.*`` and uncaught exceptions) appears on stderr as
``INFO:CONSOLE``; the reports log nothing when they work, so any such line fails the
test. A screenshot is written beside the report for a human to look at.

Skipped only when chromium is missing and the environment variable CI is unset; in
CI a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
         "--window-size=1280,2400")
CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")
TIMEOUT_S = 90


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but no chromium binary is on PATH (.ci/run installs it)")
    pytest.skip("chromium not installed (set CI=1 to make this a failure)")


def _open(report: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra,
           report.resolve().as_uri()]
    env = {**os.environ, "HOME": str(tmp_path)}  # keep chromium's caches out of $HOME
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
                          check=False)


def _console_messages(stderr: str) -> list[str]:
    return [m.group(1) for m in map(CONSOLE.search, stderr.splitlines()) if m]


def _check_rendered(report: Path, tmp_path: Path, n_figures: int) -> str:
    proc = _open(report, tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert _console_messages(proc.stderr) == []
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-render-error" not in body
    assert f'data-figures-rendered="{n_figures}"' in body
    assert dom.count('class="plot-container plotly"') == n_figures
    assert dom.count('class="main-svg"') >= 2 * n_figures
    return dom


def test_run_report_renders_in_chromium(run_report, tmp_path):
    dom = _check_rendered(run_report, tmp_path, 4)
    for fig_id in ("fig-price", "fig-equity", "fig-drawdown", "fig-costs"):
        start = dom.index(f'id="{fig_id}"')
        assert 'class="plot-container plotly"' in dom[start:start + 2000]
    assert dom.count('class="scatterlayer') >= 4  # the traces themselves were drawn
    assert 'id="metrics"' in dom and 'id="trades"' in dom
    shot = tmp_path / "run.png"
    proc = _open(run_report, tmp_path, f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.stat().st_size > 20_000  # a blank page is ~5 KB


def test_sweep_report_renders_in_chromium(sweep_report, tmp_path):
    dom = _check_rendered(sweep_report, tmp_path, 1)
    assert 'class="hm"' in dom or "heatmaplayer" in dom


def test_console_errors_are_caught(tmp_path):
    """The detector itself: a page that throws is reported as a console message."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    proc = _open(page, tmp_path, "--dump-dom")
    messages = _console_messages(proc.stderr)
    assert any("undefinedFunction" in m for m in messages), proc.stderr[-2000:]
