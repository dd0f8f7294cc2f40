"""Interactive figures that work in two places.

* On the website there is no kernel, so every helper precomputes what the
  controls can reach (e.g. the decoded image at each slider position, packed
  into one sprite sheet) and returns HTML with a little JavaScript that shows
  the right part. Nothing is fetched from the network; plotly.js comes from
  the site's own ``_static`` folder.
* In a live kernel (JupyterLab, Colab) the same helper returns an ipywidgets
  control that calls the model on every move.

The choice is automatic (:func:`t2i.env.is_book_build`, :func:`t2i.env.in_notebook`)
and can be forced with ``live=True`` / ``live=False``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from IPython.display import HTML
from PIL import Image, ImageDraw

from .env import in_notebook, is_book_build
from .viz import DIGIT_COLORS, to_numpy_images


def _live(live: bool | None) -> bool:
    return (in_notebook() and not is_book_build()) if live is None else live


def png_bytes(
    array: np.ndarray, width: int | None = None, optimize: bool = False
) -> bytes:
    """PNG file bytes of a uint8 image, optionally resized (nearest) to ``width``."""
    if width is not None:
        height = round(array.shape[0] * width / array.shape[1])
        array = np.asarray(
            Image.fromarray(array).resize((width, height), Image.NEAREST)
        )
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()


def png_base64(array: np.ndarray) -> str:
    """A compact PNG as base64 text, for data URLs in the static website."""
    return base64.b64encode(png_bytes(array, optimize=True)).decode()


def _json_for_script(value) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


@dataclass
class LatentPanel:
    """One model's 2-D latent plane: how to decode it and which codes to show."""

    title: str
    decode: Callable[[torch.Tensor], torch.Tensor]  # (B, 2) -> (B, C, H, W) in [0, 1]
    codes: torch.Tensor  # (N, 2) encoded test images, drawn as the scatter
    labels: torch.Tensor  # (N,) class of each code, for the colours
    extent: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1

    def __post_init__(self):
        if self.codes.ndim != 2 or self.codes.shape[1] != 2:
            raise ValueError(
                f"the latent explorer needs 2-D codes, got shape {tuple(self.codes.shape)}"
            )
        if self.extent is None:
            lo = torch.quantile(self.codes, 0.01, dim=0).tolist()
            hi = torch.quantile(self.codes, 0.99, dim=0).tolist()
            pad = [(top - bottom) * 0.15 for bottom, top in zip(lo, hi)]
            self.extent = (
                lo[0] - pad[0],
                hi[0] + pad[0],
                lo[1] - pad[1],
                hi[1] + pad[1],
            )

    def grid_values(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        x0, x1, y0, y1 = self.extent
        return np.linspace(x0, x1, steps), np.linspace(y0, y1, steps)

    def normalised_points(self, limit: int = 1500) -> list[list[float]]:
        """Codes scaled to [0, 1] within the extent, with their labels (y up)."""
        x0, x1, y0, y1 = self.extent
        points = self.codes[:limit].detach().cpu().numpy()
        u = (points[:, 0] - x0) / (x1 - x0)
        v = (points[:, 1] - y0) / (y1 - y0)
        return [
            [round(float(a), 4), round(float(b), 4), int(c)]
            for a, b, c in zip(u, v, self.labels[:limit].tolist())
        ]

    @torch.no_grad()
    def sprite(self, steps: int) -> np.ndarray:
        """Decode every grid point; tile (i, j) holds x index i, y index j (row 0 = top)."""
        xs, ys = self.grid_values(steps)
        z = torch.tensor([[x, y] for y in ys[::-1] for x in xs], dtype=torch.float32)
        images = []
        for chunk in z.split(256):
            images.append(self.decode(chunk).cpu())
        tiles = to_numpy_images(torch.cat(images))  # (steps*steps, H, W[, 3])
        h, w = tiles.shape[1:3]
        grid = tiles.reshape(steps, steps, h, w, *tiles.shape[3:])
        return np.concatenate(np.concatenate(grid, axis=1), axis=1)


def scatter_image(points: list[list[float]], size: int = 300) -> np.ndarray:
    """The encoded test set as coloured dots, drawn with PIL (same look as the JS)."""
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    for u, v, label in points:
        x, y = u * size, (1 - v) * size
        draw.ellipse(
            [x - 1.8, y - 1.8, x + 1.8, y + 1.8], fill=DIGIT_COLORS[label % 10]
        )
    draw.rectangle([0, 0, size - 1, size - 1], outline="#888")
    return np.asarray(canvas)


def latent_explorer(
    panels: LatentPanel | list[LatentPanel], steps: int = 31, live: bool | None = None
):
    """Two sliders move a point in the 2-D latent plane; each panel shows the
    point over its scatter of encoded digits and the image its decoder draws."""
    panels = [panels] if isinstance(panels, LatentPanel) else list(panels)
    return (
        _live_latent_explorer(panels, steps)
        if _live(live)
        else _static_latent_explorer(panels, steps)
    )


def _static_latent_explorer(panels: list[LatentPanel], steps: int) -> HTML:
    spec = {"steps": steps, "colors": DIGIT_COLORS, "panels": []}
    for panel in panels:
        sprite = panel.sprite(steps)
        xs, ys = panel.grid_values(steps)
        spec["panels"].append(
            {
                "title": panel.title,
                "points": panel.normalised_points(),
                "xs": [round(float(x), 3) for x in xs],
                "ys": [round(float(y), 3) for y in ys],
                "tile": sprite.shape[0] // steps,
                "sprite": "data:image/png;base64," + png_base64(sprite),
            }
        )
    middle = steps // 2
    controls = f"""
  <div style="display:flex;gap:1.5em;flex-wrap:wrap;align-items:center;margin-bottom:6px">
    <label>z<sub>1</sub> <input type="range" class="lx-x" min="0" max="{steps - 1}" value="{middle}"
      aria-label="first latent coordinate"></label>
    <label>z<sub>2</sub> <input type="range" class="lx-y" min="0" max="{steps - 1}" value="{middle}"
      aria-label="second latent coordinate"></label>
    <span style="color:#666">drag the sliders or click in the scatter</span>
  </div>
  <div class="lx-panels" style="display:flex;gap:2em;flex-wrap:wrap"></div>"""
    return _static_figure(
        "t2i-latent-explorer", "lx-spec", controls, spec, _LATENT_EXPLORER_JS
    )


def _static_figure(
    css_class: str, spec_class: str, body: str, spec: dict, script: str
) -> HTML:
    """A no-kernel figure: its markup, its precomputed data as JSON, and the
    script (with ``%(uid)s`` for the figure's id) that brings it to life."""
    uid = f"{css_class}-{uuid.uuid4().hex[:8]}"
    return HTML(f"""
<div class="{css_class}" id="{uid}" style="font-family:sans-serif;font-size:14px">{body}
  <script type="application/json" class="{spec_class}">{_json_for_script(spec)}</script>
</div>
<script>{script % {"uid": uid}}</script>
""")


_LATENT_EXPLORER_JS = r"""
(function () {
  var root = document.getElementById("%(uid)s");
  var spec = JSON.parse(root.querySelector(".lx-spec").textContent);
  var sx = root.querySelector(".lx-x"), sy = root.querySelector(".lx-y");
  var n = spec.steps, size = 260, views = [];
  spec.panels.forEach(function (p) {
    var box = document.createElement("div");
    box.innerHTML = '<div style="font-weight:bold;margin-bottom:4px">' + p.title + '</div>' +
      '<div style="display:flex;gap:10px;align-items:flex-start">' +
      '<canvas class="lx-scatter" width="' + size + '" height="' + size + '" style="cursor:crosshair"></canvas>' +
      '<div><canvas class="lx-decoded" width="140" height="140" style="border:1px solid #888"></canvas>' +
      '<div class="lx-coords" style="color:#444;margin-top:4px"></div></div></div>';
    root.querySelector(".lx-panels").appendChild(box);
    var view = {p: p, scatter: box.querySelector(".lx-scatter"), decoded: box.querySelector(".lx-decoded"),
                coords: box.querySelector(".lx-coords"), sprite: new Image()};
    view.sprite.onload = draw;
    view.sprite.src = p.sprite;
    view.scatter.addEventListener("click", function (e) {
      var r = view.scatter.getBoundingClientRect();
      sx.value = Math.round((e.clientX - r.left) / r.width * (n - 1));
      sy.value = Math.round((1 - (e.clientY - r.top) / r.height) * (n - 1));
      draw();
    });
    views.push(view);
  });
  function draw() {
    var i = +sx.value, j = +sy.value;
    views.forEach(function (v) {
      var c = v.scatter.getContext("2d");
      c.fillStyle = "white"; c.fillRect(0, 0, size, size);
      v.p.points.forEach(function (pt) {
        c.fillStyle = spec.colors[pt[2] %% 10];
        c.beginPath(); c.arc(pt[0] * size, (1 - pt[1]) * size, 1.8, 0, 2 * Math.PI); c.fill();
      });
      c.strokeStyle = "#888"; c.strokeRect(0.5, 0.5, size - 1, size - 1);
      var mx = i / (n - 1) * size, my = (1 - j / (n - 1)) * size;
      c.strokeStyle = "black"; c.lineWidth = 2;
      c.beginPath(); c.arc(mx, my, 7, 0, 2 * Math.PI); c.stroke();
      c.beginPath(); c.moveTo(mx - 11, my); c.lineTo(mx + 11, my); c.moveTo(mx, my - 11); c.lineTo(mx, my + 11); c.stroke();
      c.lineWidth = 1;
      for (var d = 0; d < 10; d++) {
        c.fillStyle = spec.colors[d]; c.fillRect(6 + d * 25, size - 16, 9, 9);
        c.fillStyle = "#222"; c.font = "11px sans-serif"; c.fillText(String(d), 17 + d * 25, size - 8);
      }
      if (!v.sprite.complete) return;
      var d2 = v.decoded.getContext("2d"), t = v.p.tile;
      d2.imageSmoothingEnabled = false;
      d2.drawImage(v.sprite, i * t, (n - 1 - j) * t, t, t, 0, 0, v.decoded.width, v.decoded.height);
      v.coords.textContent = "z = (" + v.p.xs[i].toFixed(2) + ", " + v.p.ys[j].toFixed(2) + ")";
    });
  }
  sx.addEventListener("input", draw);
  sy.addEventListener("input", draw);
  draw();
})();
"""


def _live_latent_explorer(panels: list[LatentPanel], steps: int):
    import ipywidgets as widgets

    first = panels[0]
    x0, x1, y0, y1 = first.extent
    sliders = [
        widgets.FloatSlider(
            value=(x0 + x1) / 2, min=x0, max=x1, step=(x1 - x0) / 200, description="z₁"
        ),
        widgets.FloatSlider(
            value=(y0 + y1) / 2, min=y0, max=y1, step=(y1 - y0) / 200, description="z₂"
        ),
    ]
    views = []
    for panel in panels:
        points = panel.normalised_points()
        views.append(
            (
                panel,
                scatter_image(points),
                widgets.Image(format="png", width=260),
                widgets.Image(format="png", width=140),
            )
        )

    @torch.no_grad()
    def update(_=None):
        # slider values are fractions of the first panel's extent, so panels with
        # different extents stay in step
        fx, fy = (
            (sliders[0].value - x0) / (x1 - x0),
            (sliders[1].value - y0) / (y1 - y0),
        )
        for panel, scatter, scatter_widget, image_widget in views:
            px0, px1, py0, py1 = panel.extent
            z = torch.tensor(
                [[px0 + fx * (px1 - px0), py0 + fy * (py1 - py0)]], dtype=torch.float32
            )
            decoded = to_numpy_images(panel.decode(z).cpu())[0]
            image_widget.value = png_bytes(decoded, 140)
            marked = Image.fromarray(scatter.copy())
            draw = ImageDraw.Draw(marked)
            mx, my = fx * scatter.shape[1], (1 - fy) * scatter.shape[0]
            draw.ellipse([mx - 7, my - 7, mx + 7, my + 7], outline="black", width=2)
            scatter_widget.value = png_bytes(np.asarray(marked))

    for slider in sliders:
        slider.observe(update, names="value")
    update()
    boxes = [
        widgets.VBox([widgets.HTML(f"<b>{panel.title}</b>"), widgets.HBox([s, i])])
        for panel, _, s, i in views
    ]
    control = widgets.VBox([widgets.HBox(sliders), widgets.HBox(boxes)])
    return control


def plotly_figure(figure, live: bool | None = None):
    """Show a plotly figure without inlining plotly.js.

    In the website build the page gets a div and a call to ``Plotly.newPlot``;
    plotly.js itself is loaded once per page from the site's ``_static`` folder.
    In a live kernel the figure is returned as is, for plotly's own renderer.
    """
    if _live(live):
        return figure
    uid = "t2i-plotly-" + uuid.uuid4().hex[:8]
    spec = figure.to_plotly_json()
    payload = json.dumps(
        {"data": spec.get("data", []), "layout": spec.get("layout", {})},
        cls=_plotly_encoder(),
    ).replace("</", "<\\/")
    return HTML(f"""<div id="{uid}" class="t2i-plotly" style="width:100%;min-height:360px"></div>
<script type="application/json" id="{uid}-spec">{payload}</script>
<script>
(function draw() {{
  if (!window.Plotly) {{ return setTimeout(draw, 30); }}
  var spec = JSON.parse(document.getElementById("{uid}-spec").textContent);
  Plotly.newPlot("{uid}", spec.data, spec.layout, {{responsive: true, displaylogo: false}});
}})();
</script>""")


def _plotly_encoder():
    from plotly.utils import PlotlyJSONEncoder

    return PlotlyJSONEncoder


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
        color = _PALETTE[i % len(_PALETTE)]
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
    return plotly_figure(figure, live)


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


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
):
    """A slider over ``values``; each value shows the images ``render(value)`` returns.

    The slider opens at ``values[start]`` (the middle one by default).

    ``render`` maps a value to ``{title: uint8 image (H, W) or (H, W, 3)}``.
    On the website every value is rendered at build time and JavaScript swaps
    the pictures. In a live kernel the slider calls ``render`` on each move;
    with ``live_range`` it is continuous between those bounds (log-scaled if
    ``log``), so the reader can try values that were never precomputed.
    """
    values = list(values)
    if _live(live):
        return _live_stepper(values, render, label, fmt, width, live_range, log, start)
    frames = [render(value) for value in values]
    titles = list(frames[0])
    spec = {
        "labels": [fmt.format(value) for value in values],
        "frames": [
            ["data:image/png;base64," + png_base64(f[t]) for t in titles]
            for f in frames
        ],
    }
    boxes = "".join(
        f'<figure style="margin:0;text-align:center"><img class="st-img" alt="{t}" '
        f'style="width:{width}px;image-rendering:pixelated;border:1px solid #888">'
        f'<figcaption style="font-size:13px">{t}</figcaption></figure>'
        for t in titles
    )
    start = len(values) // 2 if start is None else start
    controls = f"""
  <label>{label} <input type="range" class="st-range" min="0" max="{len(values) - 1}"
    value="{start}" aria-label="{label}"></label> <b class="st-label"></b>
  <div style="display:flex;gap:14px;flex-wrap:wrap;margin-top:6px">{boxes}</div>"""
    return _static_figure("t2i-stepper", "st-spec", controls, spec, _STEPPER_JS)


_STEPPER_JS = r"""
(function () {
  var root = document.getElementById("%(uid)s");
  var spec = JSON.parse(root.querySelector(".st-spec").textContent);
  var range = root.querySelector(".st-range"), images = root.querySelectorAll(".st-img");
  function show() {
    var frame = spec.frames[+range.value];
    images.forEach(function (img, k) { img.src = frame[k]; });
    root.querySelector(".st-label").textContent = spec.labels[+range.value];
  }
  range.addEventListener("input", show);
  show();
})();
"""


def _live_stepper(values, render, label, fmt, width, live_range, log, start):
    import ipywidgets as widgets

    if live_range is not None:
        kind = widgets.FloatLogSlider if log else widgets.FloatSlider
        bounds = (
            {"min": math.log10(live_range[0]), "max": math.log10(live_range[1])}
            if log
            else {"min": live_range[0], "max": live_range[1]}
        )
        slider = kind(
            value=values[len(values) // 2 if start is None else start],
            description=label,
            continuous_update=False,
            **bounds,
        )
    else:
        slider = widgets.SelectionSlider(
            options=[(fmt.format(v), v) for v in values],
            value=values[len(values) // 2 if start is None else start],
            description=label,
        )
    first = render(slider.value)
    images = {t: widgets.Image(format="png", width=width) for t in first}
    boxes = [
        widgets.VBox([images[t], widgets.HTML(f"<center>{t}</center>")]) for t in first
    ]

    def update(_=None):
        for title, array in render(slider.value).items():
            images[title].value = png_bytes(array)

    slider.observe(update, names="value")
    update()
    control = widgets.VBox([slider, widgets.HBox(boxes)])
    return control


def codes_image(
    codes: torch.Tensor,
    labels: torch.Tensor,
    extent: tuple[float, float, float, float],
    size: int = 220,
) -> np.ndarray:
    """A scatter of 2-D codes coloured by label, over a fixed extent, as an image."""
    x0, x1, y0, y1 = extent
    points = codes.detach().cpu().numpy()
    normalised = [
        [float((a - x0) / (x1 - x0)), float((b - y0) / (y1 - y0)), int(c)]
        for (a, b), c in zip(points, labels.tolist())
    ]
    return scatter_image(normalised, size)


def _pca_2d(vectors: torch.Tensor) -> np.ndarray:
    """Project rows onto their two principal axes, scaled into [0.05, 0.95]."""
    centred = vectors.detach().float().cpu() - vectors.detach().float().cpu().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ v[:2].T).numpy()
    low, high = points.min(0), points.max(0)
    return 0.05 + 0.9 * (points - low) / np.maximum(high - low, 1e-8)


def codebook_explorer(
    codebook: torch.Tensor,
    usage: torch.Tensor,
    patches: Callable[[int], np.ndarray],
    decoded: Callable[[int], np.ndarray],
    *,
    live: bool | None = None,
):
    """Every code of a codebook as a point (PCA of its vector), sized by usage.

    Hover or click a point to see the image patches the encoder mapped to that
    code (``patches(k)``: a uint8 strip) and what the decoder draws from a grid
    filled with that one code (``decoded(k)``: a uint8 image). On the website
    every code's pictures are packed into two sprite sheets at build time.
    """
    usage = usage.detach().float().cpu()
    if codebook.ndim != 2 or len(usage) != len(codebook):
        raise ValueError(
            f"expected a (K, D) codebook and K usage counts, got {tuple(codebook.shape)} "
            f"and {tuple(usage.shape)}"
        )
    points = _pca_2d(codebook)
    if _live(live):
        return _live_codebook_explorer(points, usage, patches, decoded)
    k = len(codebook)
    strips, images = [patches(c) for c in range(k)], [decoded(c) for c in range(k)]
    strip_h, strip_w = max(s.shape[0] for s in strips), max(s.shape[1] for s in strips)
    strip_sheet = np.full((k * strip_h, strip_w) + strips[0].shape[2:], 255, np.uint8)
    for c, s in enumerate(strips):
        strip_sheet[c * strip_h : c * strip_h + s.shape[0], : s.shape[1]] = s
    spec = {
        "points": [[round(float(x), 4), round(float(y), 4)] for x, y in points],
        "usage": [int(u) for u in usage.tolist()],
        "total": int(usage.sum().item()),
        "decoded": "data:image/png;base64," + png_base64(np.concatenate(images)),
        "tile": int(images[0].shape[0]),
        "strips": "data:image/png;base64," + png_base64(strip_sheet),
        "strip": [int(strip_w), int(strip_h)],
        "start": _busy_code(images, usage),
    }
    body = """
  <div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">
    <canvas class="cb-scatter" width="320" height="320" style="border:1px solid #888;cursor:crosshair"
      aria-label="codebook vectors, PCA"></canvas>
    <div style="flex:1 1 260px;min-width:0">
      <div class="cb-info" style="font-weight:bold;margin-bottom:6px"></div>
      <div>what the decoder draws from a grid of only this code:</div>
      <canvas class="cb-decoded" width="112" height="112" style="border:1px solid #888;margin:4px 0 8px"></canvas>
      <div>image patches the encoder sent to this code (test set):</div>
      <canvas class="cb-patches" width="280" height="44" style="margin-top:4px;max-width:100%"></canvas>
      <div style="color:#555;font-size:12px;margin-top:6px">hover to look, click to pin a code;
        point area = usage, grey rings = codes never used</div>
    </div>
  </div>"""
    return _static_figure("t2i-codebook", "cb-spec", body, spec, _CODEBOOK_JS)


_CODEBOOK_JS = r"""
(function () {
  var root = document.getElementById("%(uid)s");
  var spec = JSON.parse(root.querySelector(".cb-spec").textContent);
  var scatter = root.querySelector(".cb-scatter"), size = scatter.width;
  var decodedCanvas = root.querySelector(".cb-decoded"), patchCanvas = root.querySelector(".cb-patches");
  var decodedSheet = new Image(), stripSheet = new Image(), loaded = 0;
  var maxUse = Math.max.apply(null, spec.usage), pinned = null, current = spec.start;
  decodedSheet.onload = stripSheet.onload = function () { if (++loaded === 2) show(current); };
  decodedSheet.src = spec.decoded; stripSheet.src = spec.strips;
  function radius(u) { return u > 0 ? 2 + 7 * Math.sqrt(u / maxUse) : 2.5; }
  function draw() {
    var c = scatter.getContext("2d");
    c.fillStyle = "white"; c.fillRect(0, 0, size, size);
    spec.points.forEach(function (p, k) {
      var x = p[0] * size, y = (1 - p[1]) * size;
      c.beginPath(); c.arc(x, y, radius(spec.usage[k]), 0, 2 * Math.PI);
      if (spec.usage[k] > 0) { c.fillStyle = "rgba(31,119,180,0.55)"; c.fill(); }
      else { c.strokeStyle = "#999"; c.stroke(); }
    });
    var p = spec.points[current];
    c.strokeStyle = "#d62728"; c.lineWidth = 2.5;
    c.beginPath(); c.arc(p[0] * size, (1 - p[1]) * size, radius(spec.usage[current]) + 4, 0, 2 * Math.PI); c.stroke();
    c.lineWidth = 1;
  }
  function show(k) {
    current = k; draw();
    var u = spec.usage[k], share = spec.total ? 100 * u / spec.total : 0;
    root.querySelector(".cb-info").textContent = "code " + k + ": used " + u + " times (" +
      share.toFixed(2) + "%% of grid cells)" + (pinned === k ? " · pinned" : "");
    if (loaded < 2) return;
    var d = decodedCanvas.getContext("2d"), t = spec.tile;
    d.imageSmoothingEnabled = false;
    d.drawImage(decodedSheet, 0, k * t, t, t, 0, 0, decodedCanvas.width, decodedCanvas.height);
    var w = spec.strip[0], h = spec.strip[1], scale = patchCanvas.height / h;
    patchCanvas.width = Math.round(w * scale);  // also resets the canvas
    var pc = patchCanvas.getContext("2d");
    pc.imageSmoothingEnabled = false;
    pc.fillStyle = "white"; pc.fillRect(0, 0, patchCanvas.width, patchCanvas.height);
    pc.drawImage(stripSheet, 0, k * h, w, h, 0, 0, w * scale, h * scale);
    if (u === 0) { pc.fillStyle = "#555"; pc.font = "13px sans-serif"; pc.fillText("no patch: this code is never used", 4, 34); }
  }
  function nearest(e) {
    var r = scatter.getBoundingClientRect();
    var x = (e.clientX - r.left) / r.width, y = 1 - (e.clientY - r.top) / r.height, best = 0, bestD = 1e9;
    spec.points.forEach(function (p, k) {
      var dd = (p[0] - x) * (p[0] - x) + (p[1] - y) * (p[1] - y);
      if (dd < bestD) { bestD = dd; best = k; }
    });
    return best;
  }
  scatter.addEventListener("mousemove", function (e) { if (pinned === null) show(nearest(e)); });
  scatter.addEventListener("click", function (e) {
    var k = nearest(e); pinned = pinned === k ? null : k; show(k);
  });
  draw(); show(current);
})();
"""


def _busy_code(images: list[np.ndarray], usage: torch.Tensor) -> int:
    """The used code whose decoded picture varies most: a more telling first
    view than the most used code, which is usually plain background."""
    spread = [float(image.std()) if u > 0 else -1.0 for image, u in zip(images, usage)]
    return int(np.argmax(spread))


def _live_codebook_explorer(points, usage, patches, decoded):
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .viz import figure_to_array

    order = usage.argsort(descending=True).tolist()
    slider = widgets.SelectionSlider(
        options=[(f"{c} (rank {r + 1})", c) for r, c in enumerate(order)],
        description="code",
    )
    scatter, image, strip = (widgets.Image(format="png") for _ in range(3))
    info = widgets.HTML()
    areas = 4 + 120 * usage.numpy() / max(1.0, usage.max().item())

    def update(_=None):
        k = slider.value
        fig, ax = plt.subplots(figsize=(3.4, 3.4), dpi=80)
        ax.scatter(points[:, 0], points[:, 1], s=areas, alpha=0.55)
        ax.scatter(
            *points[k], s=areas[k] + 60, facecolors="none", edgecolors="#d62728", lw=2
        )
        ax.set_xticks([]), ax.set_yticks([])
        scatter.value = png_bytes(figure_to_array(fig), 300)
        image.value = png_bytes(decoded(k), 112)
        strip.value = png_bytes(patches(k), 300)
        info.value = f"<b>code {k}</b>: used {int(usage[k])} times"

    slider.observe(update, names="value")
    update()
    return widgets.VBox(
        [slider, widgets.HBox([scatter, widgets.VBox([info, image, strip])])]
    )
