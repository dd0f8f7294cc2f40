"""The image stepper: a slider over a few values, each with its pictures."""

from __future__ import annotations

import html
import math
from collections.abc import Callable

from .core import is_live, png_base64, png_bytes, static_figure


def image_stepper(
    values,
    render: Callable,
    *,
    label: str = "value",
    fmt: str = "{}",
    width: int = 160,
    live: bool | None = None,
    live_range: tuple[float, float] | None = None,
    log: bool = False,
    start: int | None = None,
    note: Callable | None = None,
):
    """A slider over ``values``; each value shows the images ``render(value)`` returns.

    The slider opens at ``values[start]`` (the middle one by default).
    ``note(value)``, if given, is a line of plain text shown under the
    pictures for that value (e.g. what was measured there).

    ``render`` maps a value to ``{title: uint8 image (H, W) or (H, W, 3)}``.
    On the website every value is rendered at build time and JavaScript swaps
    the pictures. In a live kernel the slider calls ``render`` on each move;
    with ``live_range`` it is continuous between those bounds (log-scaled if
    ``log``), so the reader can try values that were never precomputed.
    """
    values = list(values)
    start = len(values) // 2 if start is None else start
    if is_live(live):
        return _live_stepper(
            values, render, label, fmt, width, live_range, log, start, note
        )
    frames = [render(value) for value in values]
    titles = list(frames[0])
    spec = {
        "labels": [fmt.format(value) for value in values],
        "frames": [
            ["data:image/png;base64," + png_base64(f[t]) for t in titles]
            for f in frames
        ],
    }
    if note is not None:
        spec["notes"] = [note(value) for value in values]
    picture_style = f"width:{width}px;image-rendering:pixelated;border:1px solid #888"
    boxes = "".join(
        f'<figure style="margin:0;text-align:center">'
        f'<img class="st-img" alt="{t}" style="{picture_style}">'
        f'<figcaption style="font-size:13px">{t}</figcaption></figure>'
        for t in titles
    )
    controls = f"""
  <label>{label} <input type="range" class="st-range" min="0" max="{len(values) - 1}"
    value="{start}" aria-label="{label}"></label> <b class="st-label"></b>
  <div style="display:flex;gap:14px;flex-wrap:wrap;margin-top:6px">{boxes}</div>
  <div class="st-note" style="margin-top:6px"></div>"""
    return static_figure("t2i-stepper", "st-spec", controls, spec, "stepper.js")


def _live_stepper(values, render, label, fmt, width, live_range, log, start, note):
    import ipywidgets as widgets

    if live_range is not None:
        kind = widgets.FloatLogSlider if log else widgets.FloatSlider
        bounds = (
            {"min": math.log10(live_range[0]), "max": math.log10(live_range[1])}
            if log
            else {"min": live_range[0], "max": live_range[1]}
        )
        slider = kind(
            value=values[start],
            description=label,
            continuous_update=False,
            **bounds,
        )
    else:
        slider = widgets.SelectionSlider(
            options=[(fmt.format(v), v) for v in values],
            value=values[start],
            description=label,
        )
    first = render(slider.value)
    images = {t: widgets.Image(format="png", width=width) for t in first}
    boxes = [
        widgets.VBox([images[t], widgets.HTML(f"<center>{t}</center>")]) for t in first
    ]

    note_line = widgets.HTML()

    def update(_=None):
        for title, array in render(slider.value).items():
            images[title].value = png_bytes(array)
        if note is not None:
            note_line.value = html.escape(note(slider.value))

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, widgets.HBox(boxes), note_line])
