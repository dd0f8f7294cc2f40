"""The level mixer: the coarse codes of one image with the fine codes of
another, decoded (VQ-VAE-2's top and bottom levels)."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np

from .core import is_live, png_base64, png_bytes, static_figure

MAX_IMAGES = 8  # n images give n * n mixes, all precomputed for the website
THUMB_PX = 48  # thumbnail width on the page
RESULT_PX = 160  # width of the decoded result on the page
SELECTED = "#d62728"  # outline of a chosen thumbnail


def level_mixer(
    originals: np.ndarray,
    mix: Callable[[int, int], np.ndarray],
    *,
    levels: tuple[str, str] = ("top", "bottom"),
    live: bool | None = None,
):
    """Pick image i for the ``levels[0]`` codes and image j for the ``levels[1]``
    codes, and see what the decoder draws from the pair.

    ``originals`` is a uint8 array (n, H, W, 3) of 2 to 8 images. ``mix(i, j)``
    returns the uint8 (H, W, 3) image decoded from the ``levels[0]`` codes of
    image i and the ``levels[1]`` codes of image j, so ``mix(i, i)`` is image
    i's plain reconstruction. On the website all n * n mixes are decoded at
    build time into one sprite sheet: row i, column j is ``mix(i, j)``, and one
    more row below holds the originals, drawn as the clickable thumbnails. In a
    live kernel two toggle rows pick i and j, and ``mix`` runs on each change.
    """
    originals = _checked_originals(originals)
    levels = _checked_levels(levels)
    n, height, width = originals.shape[:3]
    checked_mix = _checking(mix, (height, width, 3))
    start = (0, 1)  # two different images: the first view already mixes
    if is_live(live):
        return _live_level_mixer(originals, checked_mix, levels, start)
    sheet = np.empty(((n + 1) * height, n * width, 3), np.uint8)
    for i in range(n):
        for j in range(n):
            sheet[i * height : (i + 1) * height, j * width : (j + 1) * width] = (
                checked_mix(i, j)
            )
    sheet[n * height :] = np.concatenate(list(originals), axis=1)
    spec = {
        "n": n,
        "tile": [width, height],
        "levels": list(levels),
        "start": list(start),
        "sheet": "data:image/png;base64," + png_base64(sheet),
    }
    body = _static_body(n, width, height, levels)
    return static_figure("t2i-levels", "lm-spec", body, spec, "levels.js")


def caption(levels: tuple[str, str], i: int, j: int) -> str:
    """What the decoded result is made of, with images counted from 1 as on
    the thumbnails (the script writes the same words)."""
    if i == j:
        return (
            f"{levels[0]} and {levels[1]} codes of image {i + 1}: "
            "its plain reconstruction"
        )
    return f"{levels[0]} codes of image {i + 1} + {levels[1]} codes of image {j + 1}"


def _checked_originals(originals) -> np.ndarray:
    shape = getattr(originals, "shape", None)
    dtype = getattr(originals, "dtype", type(originals).__name__)
    if not isinstance(originals, np.ndarray) or originals.dtype != np.uint8:
        raise ValueError(
            f"level_mixer needs the originals as a uint8 numpy array (n, H, W, 3), "
            f"got {dtype}: convert images in [0, 1] with "
            "(x * 255).round().astype(np.uint8), e.g. "
            "viz.to_numpy_images for a torch batch"
        )
    if originals.ndim == 3:
        raise ValueError(
            f"level_mixer needs colour originals (n, H, W, 3), got {shape}: "
            "give grey images three channels with np.repeat(x[..., None], 3, -1)"
        )
    if originals.ndim != 4 or originals.shape[-1] != 3:
        raise ValueError(
            f"level_mixer needs the originals as (n, H, W, 3), got {shape}: "
            "stack n RGB images along the first axis"
        )
    if not 2 <= len(originals) <= MAX_IMAGES:
        raise ValueError(
            f"level_mixer takes 2 to {MAX_IMAGES} originals, got {len(originals)}: "
            + (
                f"pass originals[:{MAX_IMAGES}] (every pair is precomputed)"
                if len(originals) > MAX_IMAGES
                else "pass at least two images to mix"
            )
        )
    return originals


def _checked_levels(levels) -> tuple[str, str]:
    if (
        isinstance(levels, str)
        or len(levels) != 2
        or not all(isinstance(name, str) and name for name in levels)
    ):
        raise ValueError(
            f"levels names the two code levels, coarse first, e.g. "
            f"('top', 'bottom'); got {levels!r}"
        )
    return tuple(levels)


def _checking(mix, shape: tuple[int, int, int]):
    """``mix`` with its result checked: a uint8 image the size of the originals."""

    def checked(i: int, j: int) -> np.ndarray:
        image = mix(i, j)
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.shape != shape
        ):
            got = getattr(image, "dtype", type(image).__name__)
            raise ValueError(
                f"mix({i}, {j}) returned {got} of shape "
                f"{getattr(image, 'shape', None)}; it must return a uint8 image "
                f"{shape}, the size of the originals (for a decoder output in "
                "[0, 1], (x * 255).round().astype(np.uint8), channels last)"
            )
        return image

    return checked


def _static_body(n: int, width: int, height: int, levels: tuple[str, str]) -> str:
    def thumbnails(level: int) -> str:
        name = html.escape(levels[level])
        buttons = "".join(
            f'<button type="button" class="lm-pick" data-level="{level}" '
            f'data-index="{k}" aria-pressed="false" '
            f'aria-label="{name} codes from image {k + 1}">'
            f'<canvas width="{width}" height="{height}"></canvas>{k + 1}</button>'
            for k in range(n)
        )
        return (
            f'<div style="margin-bottom:8px"><div>{name} codes from:</div>'
            f'<div role="group" aria-label="{name} codes from" '
            f'style="display:flex;gap:2px;flex-wrap:wrap">{buttons}</div></div>'
        )

    # one rule for all the thumbnail buttons keeps the markup small
    style = (
        ".t2i-levels .lm-pick{margin:0;padding:2px;border:3px solid transparent;"
        "border-radius:4px;background:none;cursor:pointer;font-size:12px;"
        "color:#444;line-height:1.2}"
        f".t2i-levels .lm-pick canvas{{display:block;width:{THUMB_PX}px;"
        "image-rendering:pixelated}"
        f'.t2i-levels .lm-pick[aria-pressed="true"]{{border-color:{SELECTED}}}'
    )
    return f"""
  <style>{style}</style>
  <div style="display:flex;gap:20px;flex-wrap:wrap;align-items:flex-start">
    <div style="flex:0 1 auto;min-width:0">{thumbnails(0)}{thumbnails(1)}</div>
    <figure style="margin:0;flex:0 0 auto">
      <canvas class="lm-result" width="{width}" height="{height}" role="img"
        style="display:block;width:{RESULT_PX}px;max-width:100%;
        image-rendering:pixelated;border:1px solid #888"></canvas>
      <figcaption class="lm-caption" aria-live="polite"
        style="max-width:{max(RESULT_PX, 200)}px;margin-top:4px"></figcaption>
    </figure>
  </div>
  <div style="color:#555;font-size:12px;margin-top:2px">pick one image in each
    row; the outlined ones are in use</div>"""


def _live_level_mixer(originals, mix, levels, start):
    import ipywidgets as widgets

    n, _, width = originals.shape[:3]
    names = [(f"image {k + 1}", k) for k in range(n)]
    thumbnails = widgets.HBox(
        [
            widgets.VBox(
                [
                    widgets.Image(value=png_bytes(image), format="png", width=THUMB_PX),
                    widgets.HTML(f"<center>{k + 1}</center>"),
                ]
            )
            for k, image in enumerate(originals)
        ]
    )
    pickers = [
        widgets.ToggleButtons(
            options=names,
            value=first,
            description=f"{name} codes from:",
            style={"description_width": "initial", "button_width": "64px"},
        )
        for name, first in zip(levels, start)
    ]
    result = widgets.Image(format="png", width=RESULT_PX)
    words = widgets.HTML()

    def update(_=None):
        i, j = (picker.value for picker in pickers)
        # nearest-neighbour upscaling keeps the decoded pixels sharp
        result.value = png_bytes(mix(i, j), width * max(1, round(RESULT_PX / width)))
        words.value = html.escape(caption(levels, i, j))

    for picker in pickers:
        picker.observe(update, names="value")
    update()
    return widgets.VBox([thumbnails, *pickers, widgets.VBox([result, words])])
