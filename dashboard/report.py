"""A comparison as one HTML file (its tables as plain HTML, each chart as its Vega-Lite spec with the data inline)
and as one PNG.

The page carries Vega, Vega-Lite and vega-embed inline, bundled by vl-convert, so it draws its charts with no network
(behind a proxy, on a plane); the bundle is about 0.9 MB and takes vl-convert some seconds to build the first time in
a process, then it is cached. The PNG is the charts stacked into one Vega-Lite chart, each under its heading, drawn by
vl-convert without a browser.
"""

from __future__ import annotations

import functools
import html
import json

import altair as alt
import pandas as pd
import vl_convert as vlc

VL_VERSION = ".".join(alt.VEGALITE_VERSION.split(".")[:2])  # the Vega-Lite Altair writes specs for, e.g. "6.4"
PNG_WIDTH = 560  # each chart's plotting width in the report and the PNG (a faceted chart keeps its panels')
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script>{bundle}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.note {{ color: #666; font-size: 0.85rem; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="note">{intro}</p>
{body}
<script>
const specs = {specs};
for (const [id, spec] of Object.entries(specs)) {{
  const el = document.getElementById(id);
  if (!window.vegaEmbed) {{ el.textContent = "Chart not drawn: the page's Vega script did not load"; continue; }}
  vegaEmbed(el, spec, {{actions: false}}).catch(e => {{ el.textContent = "Chart not drawn: " + e.message; }});
}}
</script>
</body></html>
"""


def html_report(title: str, intro: str, tables: list[tuple[str, pd.DataFrame]],
                charts: list[tuple[str, alt.TopLevelMixin]]) -> str:
    """One page: each (heading, table), then each (heading, chart)."""
    parts = [f"<h2>{html.escape(h)}</h2>\n{t.to_html(index=False, na_rep='', float_format=_number)}"
             for h, t in tables]
    parts += [f'<h2>{html.escape(h)}</h2>\n<div id="chart{i}"></div>' for i, (h, _) in enumerate(charts)]
    specs = json.dumps({f"chart{i}": _sized(c).to_dict() for i, (_, c) in enumerate(charts)})
    return PAGE.format(title=html.escape(title), intro=html.escape(intro), body="\n".join(parts),
                       bundle=vega_bundle(), specs=specs.replace("</", "<\\/"))  # no "</script>" inside the script


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script that sets window.vegaEmbed (vl-convert's bundle)."""
    return vlc.javascript_bundle(vl_version=VL_VERSION)  # holds no "</script" (tests/dashboard/test_compare.py)


def png_report(title: str, intro: str, charts: list[tuple[str, alt.TopLevelMixin]], scale: float = 2.0) -> bytes:
    """Every chart in one PNG, one under another, each titled with its heading; each keeps its own colours and
    legend (the runs' colours agree because each chart fixes them), and `scale` 2 reads sharply on a HiDPI screen."""
    parts = [_sized(c).properties(title=alt.Title(h, anchor="start", fontSize=14)) for h, c in charts]
    stacked = alt.vconcat(*parts, spacing=36).resolve_scale(color="independent").properties(
        title=alt.Title(title, subtitle=intro, anchor="start", fontSize=18, offset=16)).configure(background="white")
    return vlc.vegalite_to_png(stacked.to_dict(), vl_version=VL_VERSION, scale=scale)


def _sized(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """The chart as wide as the page's charts read (Streamlit stretches them; Vega's own default is 300 px)."""
    return chart if isinstance(chart, alt.FacetChart) else chart.properties(width=PNG_WIDTH)


def _number(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"
