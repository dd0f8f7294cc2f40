"""The latent explorer: a point moved through a 2-D latent plane, decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from IPython.display import HTML
from PIL import Image, ImageDraw

from ..viz import DIGIT_COLORS, to_numpy_images
from .core import is_live, png_base64, png_bytes, static_figure


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
                "the latent explorer needs 2-D codes, "
                f"got shape {tuple(self.codes.shape)}"
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
        """Decode every grid point; tile (i, j) holds x index i, y index j
        (row 0 = top)."""
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


def codes_image(
    codes: torch.Tensor,
    labels: torch.Tensor,
    extent: tuple[float, float, float, float],
    size: int = 220,
) -> np.ndarray:
    """A scatter of 2-D codes coloured by label, over a fixed extent, as an image.

    Codes outside the extent are left out rather than drawn over the frame."""
    x0, x1, y0, y1 = extent
    points = codes.detach().cpu().numpy()
    normalised = [
        [float((a - x0) / (x1 - x0)), float((b - y0) / (y1 - y0)), int(c)]
        for (a, b), c in zip(points, labels.tolist())
    ]
    inside = [p for p in normalised if 0 <= p[0] <= 1 and 0 <= p[1] <= 1]
    return scatter_image(inside, size)


def latent_explorer(
    panels: LatentPanel | list[LatentPanel], steps: int = 31, live: bool | None = None
):
    """Two sliders move a point in the 2-D latent plane; each panel shows the
    point over its scatter of encoded digits and the image its decoder draws."""
    panels = [panels] if isinstance(panels, LatentPanel) else list(panels)
    return (
        _live_latent_explorer(panels, steps)
        if is_live(live)
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
    row_style = "display:flex;gap:1.5em;flex-wrap:wrap;align-items:center"
    slider = f'type="range" min="0" max="{steps - 1}" value="{steps // 2}"'
    controls = f"""
  <div style="{row_style};margin-bottom:6px">
    <label>z<sub>1</sub> <input {slider} class="lx-x"
      aria-label="first latent coordinate"></label>
    <label>z<sub>2</sub> <input {slider} class="lx-y"
      aria-label="second latent coordinate"></label>
    <span style="color:#666">drag the sliders or click in the scatter</span>
  </div>
  <div class="lx-panels" style="display:flex;gap:2em;flex-wrap:wrap"></div>"""
    return static_figure(
        "t2i-latent-explorer", "lx-spec", controls, spec, "latent_explorer.js"
    )


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
    return widgets.VBox([widgets.HBox(sliders), widgets.HBox(boxes)])
