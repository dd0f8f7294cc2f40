"""Static figures and page furniture: image grids, loss curves, source listings,
the road map shared by every chapter, and the run-info footer."""

from __future__ import annotations

import html
import inspect
import json
import platform
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import t2i

DIGIT_COLORS = [  # matplotlib's tab10, one colour per class
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def to_numpy_images(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] -> ``(N, H, W)`` or ``(N, H, W, 3)`` uint8."""
    array = (
        (images.detach().float().clamp(0, 1).cpu().numpy() * 255)
        .round()
        .astype(np.uint8)
    )
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


def tile(images: torch.Tensor, ncols: int, pad: int = 1) -> np.ndarray:
    """Lay ``(N, C, H, W)`` images out row by row in one uint8 array."""
    array = to_numpy_images(images)
    n, h, w = array.shape[:3]
    nrows = -(-n // ncols)
    canvas = np.full(
        (nrows * (h + pad) - pad, ncols * (w + pad) - pad) + array.shape[3:],
        255,
        np.uint8,
    )
    for i, image in enumerate(array):
        r, c = divmod(i, ncols)
        canvas[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = (
            image
        )
    return canvas


def image_grid(
    images: torch.Tensor,
    ncols: int = 10,
    title: str | None = None,
    ax=None,
    scale: float = 0.6,
):
    """Show a batch of images as one grid; returns the matplotlib axes."""
    grid = tile(images, ncols)
    if ax is None:
        nrows = -(-len(images) // ncols)
        _, ax = plt.subplots(
            figsize=(scale * ncols, scale * nrows + (0.3 if title else 0))
        )
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def rows_figure(rows: dict[str, torch.Tensor], scale: float = 0.7):
    """One labelled row of images per entry, e.g. originals above reconstructions."""
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(scale * ncols, scale * 1.25 * len(rows))
    )
    for ax, (label, images) in zip(np.atleast_1d(axes), rows.items()):
        ax.imshow(
            tile(images, ncols), cmap="gray", vmin=0, vmax=255, interpolation="nearest"
        )
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    fig.tight_layout()
    return fig


def show_source(obj, lines: tuple[int, int] | None = None):
    """Display the source of a ``t2i`` function or class, with its file and lines.

    ``lines=(a, b)`` keeps only lines a..b (1-based, relative to the object).
    The chapters call this instead of pasting code, so the page shows the code
    that actually ran.
    """
    from IPython.display import Markdown

    obj = inspect.unwrap(
        obj
    )  # show the function, not a decorator's wrapper (torch.no_grad)
    source, first = inspect.getsourcelines(obj)
    if lines is not None:
        source, first = source[lines[0] - 1 : lines[1]], first + lines[0] - 1
    path = Path(inspect.getsourcefile(obj)).resolve()
    package = Path(t2i.__file__).resolve().parent.parent
    where = path.relative_to(package) if path.is_relative_to(package) else path.name
    text = "".join(source).rstrip()
    caption = f"`{where}`, lines {first}–{first + len(source) - 1}"
    return Markdown(f"{caption}\n\n```python\n{text}\n```")


ROAD = [  # (key, name, date, arXiv id or None, one-line idea)
    ("ae", "AE", "2006", None, "compress and rebuild"),
    ("vae", "VAE", "Dec 2013", "1312.6114", "a latent space you can sample"),
    ("vqvae", "VQ-VAE", "Nov 2017", "1711.00937", "discrete codes + PixelCNN prior"),
    ("vqvae2", "VQ-VAE-2", "Jun 2019", "1906.00446", "a hierarchy of codes"),
    ("vqgan", "VQGAN", "Dec 2020", "2012.09841", "GAN + perceptual loss, GPT prior"),
    (
        "dalle",
        "DALL·E",
        "Feb 2021",
        "2102.12092",
        "text and image tokens, one transformer",
    ),
    ("dalle_mini", "DALL·E mini", "Jul 2021", None, "seq2seq on a budget"),
    ("vqgan_clip", "VQGAN-CLIP", "Apr 2022", "2204.08583", "steer codes with CLIP"),
]


def road_map(current: str | None = None):
    """The eight-step road as an inline SVG (two rows of four), ``current`` highlighted.

    Pure SVG, no JavaScript: it renders the same in the book and in Jupyter.
    """
    from IPython.display import HTML

    keys = [key for key, *_ in ROAD]
    if current is not None and current not in keys:
        raise ValueError(f"unknown model {current!r}; choose one of {', '.join(keys)}")
    cell, box_w, box_h, row_h, top = 172, 148, 38, 118, 30
    width, height = 4 * cell + 8, 2 * row_h + 10
    parts = [
        f'<svg class="t2i-road" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="The road from AE to VQGAN-CLIP" '
        f'style="max-width:{width}px;font-family:sans-serif">',
        '<defs><marker id="t2i-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>',
    ]
    centres = []
    for i, (key, name, date, arxiv, idea) in enumerate(ROAD):
        row, col = divmod(i, 4)
        x, y = 6 + col * cell, top + row * row_h
        centres.append((x, y))
        here = key == current
        fill, stroke = ("#fde68a", "#b45309") if here else ("#f3f4f6", "#6b7280")
        middle = x + box_w / 2
        parts.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="8" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2.5 if here else 1}"/>'
        )
        parts.append(
            f'<text x="{middle}" y="{y + 25}" text-anchor="middle" font-size="15" '
            f'font-weight="{"bold" if here else "normal"}" fill="#111">{html.escape(name)}</text>'
        )
        label = date + (f" · arXiv {arxiv}" if arxiv else "")
        parts.append(
            f'<text x="{middle}" y="{y - 7}" text-anchor="middle" font-size="11" '
            f'fill="#444">{html.escape(label)}</text>'
        )
        for k, line in enumerate(textwrap.wrap(idea, 24)):
            parts.append(
                f'<text x="{middle}" y="{y + box_h + 16 + 14 * k}" text-anchor="middle" '
                f'font-size="12" fill="#555">{html.escape(line)}</text>'
            )
    for (x, y), (nx, ny) in zip(centres, centres[1:]):
        if ny == y:  # same row: a short arrow to the right
            path = f"M{x + box_w},{y + box_h / 2} L{nx - 2},{ny + box_h / 2}"
        else:  # from the end of the first row down and back to the start of the second
            drop = y + box_h + 48
            side = x + box_w + 12
            path = (
                f"M{x + box_w},{y + box_h / 2} L{side},{y + box_h / 2} L{side},{drop} "
                f"L{nx + box_w / 2},{drop} L{nx + box_w / 2},{ny - 20}"
            )
        parts.append(
            f'<path d="{path}" fill="none" stroke="#888" stroke-width="1.5" '
            f'marker-end="url(#t2i-arrow)"/>'
        )
    parts.append("</svg>")
    return HTML("".join(parts))


RUN_FIELDS = ("models_trained", "models_loaded", "cached_training_seconds")


def read_run_info(glue: Path) -> dict[str, float] | None:
    """What :func:`run_info` glued, read back from a build's ``<page>.glue.json``
    (the benchmarks page and ``python -m benchmarks`` use it); None if absent."""
    if not glue.exists():
        return None
    data = json.loads(glue.read_text())
    try:
        return {
            key: float(data[f"run_{key}"]["data"]["text/plain"]) for key in RUN_FIELDS
        }
    except (KeyError, ValueError):
        return None


def run_info(
    scale: str,
    started: float,
    extra: dict[str, str] | None = None,
    optional: tuple[str, ...] = (),
):
    """Footer of every chapter: what produced the numbers on the page.

    ``extra`` adds rows, e.g. which network the perceptual loss used.
    ``optional`` names models the chapter uses only when they are already
    cached (a cold run does without them): their training time is left out
    of the cold-run estimate on the benchmarks page."""
    from IPython.display import Markdown

    from .cache import SESSION
    from .env import pick_device

    device = pick_device()
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{device.type}, {torch.get_num_threads()} threads"
    )
    import matplotlib

    # for the benchmarks page: a run that loaded models from the cache is not
    # a cold run; the training time of those models makes up the difference
    cached_seconds = sum(
        s or 0.0 for n, s in SESSION["loaded"].items() if n not in optional
    )
    record("run_models_trained", len(SESSION["trained"]))
    record("run_models_loaded", len(SESSION["loaded"]))
    record("run_cached_training_seconds", round(cached_seconds, 1))

    def listed(models: dict, verb: str) -> str:
        return (
            ", ".join(
                name if s is None else f"{name} ({verb} {s:.0f} s)"
                for name, s in models.items()
            )
            or "none"
        )

    rows = [
        ("scale", scale),
        ("device", name),
        ("wall time", f"{time.time() - started:.0f} s"),
        ("models trained in this run", listed(SESSION["trained"], "in")),
        ("models loaded from the cache", listed(SESSION["loaded"], "trained in")),
        *(
            [("used only if cached", ", ".join(optional))]
            if any(n in SESSION["loaded"] for n in optional)
            else []
        ),
        *(extra or {}).items(),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("t2i", t2i.__version__),
        ("numpy / matplotlib", f"{np.__version__} / {matplotlib.__version__}"),
        ("platform", f"{platform.system()} {platform.machine()}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return Markdown(f"| run info | |\n|---|---|\n{table}\n\n{_checked_claims()}")


def _checked_claims() -> str:
    """The page's sentences that this run checked (see :mod:`t2i.claims`)."""
    from .claims import checked

    found = checked()
    if not found:
        return ""
    rows = "\n".join(
        f"| {c.sentence} | {c.evidence.replace('|', '/')} |" for c in found
    )
    return (
        f'<details class="t2i-claims"><summary>{len(found)} sentences on this page '
        f"were checked against this run</summary>\n\n"
        f"| sentence | evidence |\n|---|---|\n{rows}\n\n</details>\n"
    )


def describe(config):
    """A dataclass's settings as a two-column table (fits the page, unlike its repr)."""
    from dataclasses import fields

    from IPython.display import Markdown

    rows = "\n".join(
        f"| `{f.name}` | `{getattr(config, f.name)!r}` |" for f in fields(config)
    )
    return Markdown(f"| {type(config).__name__} | |\n|---|---|\n{rows}\n")


def record(key: str, value):
    """Keep a number for the book: glued into the page so other pages (the
    benchmarks) can quote it. Outside the book build this just returns it."""
    try:
        from myst_nb import glue
    except ImportError:
        return value
    glue(key, value, display=False)
    return value


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure to an RGB uint8 array and close it."""
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def code_patches(
    images: torch.Tensor,
    indices: torch.Tensor,
    code: int,
    count: int = 6,
    context: int = 1,
) -> torch.Tensor:
    """Image crops around the grid cells that were quantised to ``code``.

    ``indices`` is the ``(N, h, w)`` code grid of ``images``; each crop is the
    cell plus ``context`` cells on every side (what the encoder mostly saw),
    padded with black at the border. Returns ``(n <= count, C, s, s)``.
    """
    cell = images.shape[-1] // indices.shape[-1]
    pad = context * cell
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    where = (indices == code).nonzero()[:count]
    side = cell * (2 * context + 1)
    return (
        torch.stack(
            [
                padded[n, :, i * cell : i * cell + side, j * cell : j * cell + side]
                for n, i, j in where.tolist()
            ]
        )
        if len(where)
        else images.new_zeros(0, images.shape[1], side, side)
    )


def patch_strip(
    images: torch.Tensor,
    indices: torch.Tensor,
    code: int,
    count: int = 6,
    zoom: int = 4,
) -> np.ndarray:
    """:func:`code_patches` (one cell of context) in one RGB strip, ``zoom`` times
    enlarged, with the quantised centre cell outlined in red; white where the
    code has fewer than ``count`` patches."""
    found = code_patches(images, indices, code, count, context=1)
    side = found.shape[-1]
    cell = side // 3
    strip = np.full((side, count * (side + 1) - 1, 3), 255, np.uint8)
    if len(found):
        row = tile(found, ncols=len(found))
        strip[:, : row.shape[1]] = row[..., None] if row.ndim == 2 else row
    strip = strip.repeat(zoom, axis=0).repeat(zoom, axis=1)
    red, size, top = (214, 39, 40), cell * zoom, cell * zoom
    for i in range(len(found)):
        left = (i * (side + 1) + cell) * zoom
        strip[top, left : left + size] = red
        strip[top + size - 1, left : left + size] = red
        strip[top : top + size, left] = red
        strip[top : top + size, left + size - 1] = red
    return strip
