"""A comparison as one HTML file: its tables as plain HTML and each chart as its Vega-Lite spec with the data inline.

The charts are drawn by Vega, Vega-Lite and vega-embed, loaded from the jsDelivr CDN as Altair's own `to_html` loads
them: inlining those scripts (and saving a PNG) needs vl-convert, which EdgeFleet does not install. The tables read
without them.
"""

from __future__ import annotations

import html
import json

import altair as alt
import pandas as pd

CDN = "https://cdn.jsdelivr.net/npm"
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script src="{cdn}/vega@{vega}"></script>
<script src="{cdn}/vega-lite@{vegalite}"></script>
<script src="{cdn}/vega-embed@{embed}"></script>
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
  const offline = "Chart not drawn: this page loads Vega from cdn.jsdelivr.net";
  if (!window.vegaEmbed) {{ el.textContent = offline; continue; }}
  vegaEmbed(el, spec, {{actions: false}}).catch(e => {{ el.textContent = offline + " (" + e.message + ")"; }});
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
    specs = json.dumps({f"chart{i}": c.to_dict() for i, (_, c) in enumerate(charts)})
    return PAGE.format(title=html.escape(title), intro=html.escape(intro), body="\n".join(parts), cdn=CDN,
                       specs=specs.replace("</", "<\\/"),  # no "</script>" inside the script
                       vega=alt.VEGA_VERSION, vegalite=alt.VEGALITE_VERSION, embed=alt.VEGAEMBED_VERSION)


def _number(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"
