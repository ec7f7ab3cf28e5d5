"""One self-contained HTML page: inline CSS, plotly.js inlined once, figures as JSON.

Each figure is stored as ``<script type="application/json" data-figure="<div id>">``
holding the figure's plotly JSON, and one small inline script draws them all with
``Plotly.newPlot``. The page needs no network to open (no ``src=`` or ``href=`` to
any URL), and the figure data stay machine-readable. Figure JSON is escaped so that
no ``<`` can end the script element early. When every figure has been drawn the
script sets ``data-figures-rendered="<count>"`` on ``<body>`` (the browser test reads
it); a failure sets ``data-render-error`` and logs to the console.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: #666; margin-top: 0; }
.grid { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
caption { text-align: left; color: #666; padding-bottom: .3rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .25rem .6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.gap { text-align: center; color: #888; font-style: italic; }
.scroll { max-height: 32rem; overflow: auto; }
.warn { background: #fff4e5; border-left: 4px solid #ff9800; padding: .5rem 1rem; }
.figure { min-height: 300px; }
"""

RENDER_JS = """
(function () {
  var specs = document.querySelectorAll('script[type="application/json"][data-figure]');
  var drawn = [];
  for (var k = 0; k < specs.length; k++) {
    var spec = JSON.parse(specs[k].textContent);
    var div = document.getElementById(specs[k].getAttribute('data-figure'));
    drawn.push(Plotly.newPlot(div, spec.data, spec.layout, spec.config));
  }
  Promise.all(drawn).then(function () {
    document.body.setAttribute('data-figures-rendered', String(drawn.length));
  }, function (err) {
    document.body.setAttribute('data-render-error', String(err));
    console.error('report: a figure failed to render: ' + err);
  });
})();
"""


def script_json(payload: Any) -> str:
    """JSON text safe inside a ``<script>`` element (``<`` written as ``\\u003c``)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_block(div_id: str, fig: go.Figure) -> str:
    """The target ``<div>`` and the JSON spec of one figure."""
    spec = json.loads(pio.to_json(fig, validate=False))
    spec["config"] = PLOTLY_CONFIG
    safe_id = html.escape(div_id)
    return (f'<div class="figure" id="{safe_id}"></div>\n'
            f'<script type="application/json" data-figure="{safe_id}">'
            f"{script_json(json.dumps(spec, allow_nan=False))}</script>")


def page(title: str, subtitle: str, sections: Sequence[str],
         figures: Mapping[str, go.Figure], data: Mapping[str, Any] | None = None) -> str:
    """A full HTML document.

    `sections` are ready HTML fragments; a fragment ``"{figure:<id>}"`` is replaced by
    that figure's block, so charts and tables interleave in the given order. `data`, if
    given, is embedded as ``<script type="application/json" id="report-data">``.
    """
    body = []
    for part in sections:
        if part.startswith("{figure:") and part.endswith("}"):
            key = part[len("{figure:"):-1]
            body.append(figure_block(key, figures[key]))
        else:
            body.append(part)
    data_block = ""
    if data is not None:
        data_block = (f'<script type="application/json" id="report-data">'
                      f"{script_json(data)}</script>")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(subtitle)}</p>',
        *body,
        data_block,
        f"<script>{RENDER_JS}</script>",
        "</body></html>",
    ])


def section(heading: str, content: str, scroll: bool = False) -> str:
    """An ``<h2>`` and its content (optionally in a scrolling box)."""
    inner = f'<div class="scroll">{content}</div>' if scroll else content
    return f"<h2>{html.escape(heading)}</h2>\n{inner}"


def warnings_block(warnings: Sequence[str]) -> str:
    """A highlighted list of the run's warnings (empty string when there are none)."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>'
