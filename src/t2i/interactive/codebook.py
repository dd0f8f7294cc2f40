"""The codebook explorer: every code of a VQ codebook, what it encodes and
what it decodes to."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .core import is_live, png_base64, png_bytes, static_figure


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
            f"expected a (K, D) codebook and K usage counts, "
            f"got {tuple(codebook.shape)} and {tuple(usage.shape)}"
        )
    points = _pca_2d(codebook)
    if is_live(live):
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
    framed = "border:1px solid #888"
    body = f"""
  <div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">
    <canvas class="cb-scatter" width="320" height="320"
      style="{framed};cursor:crosshair"
      aria-label="codebook vectors on their first two principal components"></canvas>
    <div style="flex:1 1 260px;min-width:0">
      <div class="cb-info" style="font-weight:bold;margin-bottom:6px"></div>
      <div>what the decoder draws from a grid of only this code:</div>
      <canvas class="cb-decoded" width="112" height="112"
        style="{framed};margin:4px 0 8px"></canvas>
      <div>image patches the encoder sent to this code (test set):</div>
      <canvas class="cb-patches" width="280" height="44"
        style="margin-top:4px;max-width:100%"></canvas>
      <div style="color:#555;font-size:12px;margin-top:6px">hover to look,
        click to pin a code; {_legend(usage)}</div>
    </div>
  </div>"""
    return static_figure("t2i-codebook", "cb-spec", body, spec, "codebook.js")


def _legend(usage: torch.Tensor) -> str:
    """How to read the scatter; unused codes are mentioned only if there are any."""
    legend = (
        "position = first two principal components of the code vectors, "
        "point area = usage"
    )
    if (usage == 0).any():
        legend += ", grey rings = codes never used"
    return legend


def _pca_2d(vectors: torch.Tensor) -> np.ndarray:
    """Project rows onto their two principal axes, scaled into [0.05, 0.95]."""
    centred = vectors.detach().float().cpu() - vectors.detach().float().cpu().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ v[:2].T).numpy()
    low, high = points.min(0), points.max(0)
    return 0.05 + 0.9 * (points - low) / np.maximum(high - low, 1e-8)


def _busy_code(images: list[np.ndarray], usage: torch.Tensor) -> int:
    """The used code whose decoded picture varies most: a more telling first
    view than the most used code, which is usually plain background."""
    spread = [float(image.std()) if u > 0 else -1.0 for image, u in zip(images, usage)]
    return int(np.argmax(spread))


def _live_codebook_explorer(points, usage, patches, decoded):
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from ..viz import figure_to_array

    order = usage.argsort(descending=True).tolist()
    slider = widgets.SelectionSlider(
        options=[(f"{c} (rank {r + 1})", c) for r, c in enumerate(order)],
        description="code",
    )
    scatter, image, strip = (widgets.Image(format="png") for _ in range(3))
    info = widgets.HTML()
    legend = widgets.HTML(
        f'<span style="color:#555;font-size:12px">{_legend(usage)}</span>'
    )
    areas = 4 + 120 * usage.numpy() / max(1.0, usage.max().item())
    used = usage.numpy() > 0

    def update(_=None):
        k = slider.value
        fig, ax = plt.subplots(figsize=(3.4, 3.4), dpi=80)
        ax.scatter(*points[used].T, s=areas[used], alpha=0.55)
        ax.scatter(*points[~used].T, s=12, facecolors="none", edgecolors="#999")
        ax.scatter(
            *points[k], s=areas[k] + 60, facecolors="none", edgecolors="#d62728", lw=2
        )
        ax.set(xticks=[], yticks=[], xlabel="PC 1", ylabel="PC 2")
        scatter.value = png_bytes(figure_to_array(fig), 300)
        image.value = png_bytes(decoded(k), 112)
        strip.value = png_bytes(patches(k), 300)
        info.value = f"<b>code {k}</b>: used {int(usage[k])} times"

    slider.observe(update, names="value")
    update()
    return widgets.VBox(
        [slider, widgets.HBox([scatter, widgets.VBox([info, image, strip, legend])])]
    )
