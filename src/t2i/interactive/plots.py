"""Plotly figures for the website without inlining plotly.js in every page."""

from __future__ import annotations

import math

from IPython.display import HTML

from .core import is_live, json_for_script, new_uid, script_element

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def plotly_figure(figure, live: bool | None = None):
    """Show a plotly figure without inlining plotly.js.

    In the website build the page gets a div and a call to ``Plotly.newPlot``;
    plotly.js itself is loaded once per page from the site's ``_static`` folder.
    In a live kernel the figure is returned as is, for plotly's own renderer.
    """
    if is_live(live):
        return figure
    from plotly.utils import PlotlyJSONEncoder

    uid = new_uid("t2i-plotly")
    spec = figure.to_plotly_json()
    payload = json_for_script(
        {"data": spec.get("data", []), "layout": spec.get("layout", {})},
        encoder=PlotlyJSONEncoder,
    )
    style = "width:100%;min-height:360px"
    return HTML(f"""<div id="{uid}" class="t2i-plotly" style="{style}"></div>
<script type="application/json" id="{uid}-spec">{payload}</script>
{script_element("plotly_figure.js", uid)}""")


def loss_curves(
    histories: dict[str, dict[str, list[float]]],
    key: str = "loss",
    ylabel: str = "loss",
    log_y: bool = True,
    live: bool | None = None,
):
    """Training curves (lines) and test values (markers) of several runs, with hover."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for i, (label, history) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        figure.add_scatter(
            x=history["step"],
            y=history[key],
            mode="lines",
            name=f"{label}",
            line={"color": color},
            legendgroup=label,
        )
        if f"eval_{key}" in history:
            figure.add_scatter(
                x=history["eval_step"],
                y=history[f"eval_{key}"],
                mode="markers",
                name=f"{label} (test)",
                marker={"color": color, "size": 9, "symbol": "diamond"},
                legendgroup=label,
            )
    figure.update_layout(
        template="plotly_white",
        height=360,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis_title="step",
        yaxis_title=ylabel,
        yaxis_type="log" if log_y else "linear",
        hovermode="x unified",
    )
    if log_y:  # plotly labels minor log ticks with one digit ("5"): spell them out
        values = [
            v
            for h in histories.values()
            for k in (key, f"eval_{key}")
            for v in h.get(k, [])
            if v > 0
        ]
        ticks = log_ticks(min(values), max(values))
        figure.update_yaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return plotly_figure(figure, live)


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times the powers of ten that cover [low, high]."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [
        m * 10.0**e
        for e in range(first, last + 1)
        for m in (1, 2, 5)
        if low / 1.5 <= m * 10.0**e <= high * 1.5
    ]
