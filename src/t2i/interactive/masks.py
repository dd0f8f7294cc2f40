"""The attention-mask viewer: which positions each query of DALL·E's
transformer may read, layer by layer. The sequence is ``text_length`` text
tokens, then the g × g image tokens row by row; a layer's mask (L, L) has
True where query i (row) may attend to key j (column). Row, column and
convolutional masks differ only in which earlier image tokens an image
query reads, which the small g × g grid shows in two dimensions."""

from __future__ import annotations

import base64
import html
import numbers
from collections.abc import Sequence

import numpy as np
import torch

from .core import is_live, png_bytes, static_figure

HEAT_PX = 380  # at most the heat map's width on the page, for L <= HEAT_PX
GRID_PX = 168  # about the g × g grid's width on the page
LEFT, TOP = 46, 38  # room for the axis labels of the heat map
COLOURS = {"read": "#2f6db5", "blocked": "#eeeeee", "query": "#ff7f0e"}
RGB = {
    name: tuple(int(c[k : k + 2], 16) for k in (1, 3, 5)) for name, c in COLOURS.items()
}


def mask_viewer(
    masks: torch.Tensor | np.ndarray,
    kinds: Sequence[str],
    text_length: int,
    grid_size: int,
    *,
    start: int = 0,
    query: int | None = None,
    live: bool | None = None,
):
    """Each layer's attention mask as a heat map, and what one query may read.

    ``masks`` is boolean (n_layer, L, L), True where query i (row) may attend
    to key j (column), with L = ``text_length`` + ``grid_size`` ** 2;
    ``kinds`` names each layer's mask (e.g. "row", "column",
    "convolutional"). Buttons pick the layer (``start`` first); hovering a
    row of the heat map, the query slider, or a click on the grid picks the
    query (the sequence position ``query``, by default the middle image
    token), and a g × g grid shades the image tokens it may read. On the
    website every layer's mask is one PNG and its rows are bit strings (hex)
    in the page; in a live kernel a layer toggle and an image-token slider
    redraw the view.
    """
    masks = _checked_masks(masks)
    layers, length = masks.shape[:2]
    text_length = _checked_int("text_length", text_length, 0)
    grid_size = _checked_int("grid_size", grid_size, 1)
    if length != text_length + grid_size**2:
        raise ValueError(
            f"the masks are {length} × {length} but text_length + grid_size ** 2 = "
            f"{text_length} + {grid_size} ** 2 = {text_length + grid_size**2}: "
            "the sequence is the text tokens, then the image tokens"
        )
    kinds = _checked_kinds(kinds, layers)
    start = _checked_index("start", start, layers, "layer")
    if query is None:
        middle = grid_size // 2
        query = text_length + middle * grid_size + middle
    query = _checked_index("query", query, length, "sequence position")
    view = _View(masks, kinds, text_length, grid_size)
    if is_live(live):
        return _live_mask_viewer(view, start, query)
    buttons = "".join(
        f'<button type="button" class="mk-pick" data-layer="{k}" '
        f'aria-pressed="{str(k == start).lower()}">layer {k + 1}: '
        f"{html.escape(kind)}</button>"
        for k, kind in enumerate(kinds)
    )
    body = f"""
  <style>{_style()}</style>
  <div class="mk-layers" role="group" aria-label="which layer's mask" hidden>
    {buttons}</div>
  <div class="mk-controls" hidden><label>query position
    <input type="range" class="mk-query" min="0" max="{length - 1}" value="{query}"
      aria-label="query position"></label></div>
  {view.panels(start, query)}"""
    spec = {
        "text": text_length,
        "grid": grid_size,
        "scale": view.scale,
        "titles": [view.title(k) for k in range(layers)],
        "masks": [view.png(k) for k in range(layers)],
        "rows": [view.hex_rows(k) for k in range(layers)],
        "start": start,
        "colours": COLOURS,
    }
    return static_figure("t2i-masks", "mk-spec", body, spec, "masks.js")


def hex_bits(row: np.ndarray) -> str:
    """A boolean row as hex digits, four positions a digit, the first
    position the digit's highest bit (padded with False at the end)."""
    bits = np.concatenate([row.astype(np.uint8), np.zeros(-len(row) % 4, np.uint8)])
    digits = bits.reshape(-1, 4) @ np.array([8, 4, 2, 1])
    return "".join("0123456789abcdef"[d] for d in digits)


def describe_query(query: int, text_length: int, grid_size: int) -> str:
    """The name of the token at sequence position ``query`` (the script
    writes the same words)."""
    if query < text_length:
        return f"position {query}: text token {query}"
    cell = query - text_length
    row, column = divmod(cell, grid_size)
    return f"position {query}: image token {cell} (row {row}, column {column})"


def reads(row: np.ndarray, query: int, text_length: int, grid_size: int) -> str:
    """What the query whose mask row is ``row`` may read, in words."""
    who = (
        f"text token {query}"
        if query < text_length
        else f"image token {query - text_length}"
    )
    said = (
        f"{who} may read {_count(int(row[text_length:].sum()), grid_size**2, 'image')}"
    )
    if text_length:
        said += f" and {_count(int(row[:text_length].sum()), text_length, 'text')}"
    return said


def _count(read: int, total: int, kind: str) -> str:
    if read == total:
        return f"all {total} {kind} tokens"
    if read == 0:
        return f"no {kind} token"
    return f"{read} of the {total} {kind} tokens"


def _checked_masks(masks) -> np.ndarray:
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    if not isinstance(masks, np.ndarray):
        raise TypeError(
            f"mask_viewer needs the masks as a boolean tensor or numpy array "
            f"(n_layer, L, L), got {type(masks).__name__}: torch.stack a list"
        )
    if masks.dtype != np.bool_:
        raise ValueError(
            f"the masks must be boolean (True = may attend), got {masks.dtype}: "
            "for an additive mask (0 where allowed, -inf where not) pass "
            "mask == 0"
        )
    if masks.ndim == 2:
        raise ValueError(
            f"the masks must be (n_layer, L, L), got {masks.shape}: for one layer "
            "pass mask[None]"
        )
    if masks.ndim != 3 or masks.shape[1] != masks.shape[2] or not len(masks):
        raise ValueError(
            f"the masks must be (n_layer, L, L) with n_layer >= 1, got {masks.shape}"
        )
    return masks


def _checked_int(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    return int(value)


def _checked_index(name: str, value, size: int, what: str) -> int:
    value = _checked_int(name, value, 0)
    if value >= size:
        raise ValueError(f"{name} must be a {what} from 0 to {size - 1}, got {value}")
    return value


def _checked_kinds(kinds, layers: int) -> list[str]:
    if isinstance(kinds, str) or not all(
        isinstance(kind, str) and kind for kind in kinds
    ):
        raise ValueError(
            f"kinds names each layer's mask, e.g. ['row', 'column', 'row', "
            f"'convolutional'], got {kinds!r}"
        )
    kinds = list(kinds)
    if len(kinds) != layers:
        raise ValueError(
            f"there are {layers} masks but {len(kinds)} kinds: name one kind per layer"
        )
    return kinds


def _data_url(array: np.ndarray, width: int | None = None) -> str:
    raw = png_bytes(array, width, optimize=True)
    return "data:image/png;base64," + base64.b64encode(raw).decode()


class _View:
    """The figure's parts drawn in Python: the static page's first view, and
    the live view on every change."""

    def __init__(self, masks, kinds, text_length, grid_size):
        self.masks, self.kinds = masks, kinds
        self.text, self.grid = text_length, grid_size
        self.length = masks.shape[1]
        self.scale = max(1, HEAT_PX // self.length)  # whole pixels a token
        self.cell = max(6, GRID_PX // grid_size)
        self._pngs: dict[int, str] = {}

    def title(self, layer: int) -> str:
        kind = self.kinds[layer]
        name = kind if kind.endswith("attention") else f"{kind} attention"
        return f"layer {layer + 1} of {len(self.kinds)}: {name}"

    def png(self, layer: int) -> str:
        if layer not in self._pngs:
            picture = np.where(
                self.masks[layer][..., None], RGB["read"], RGB["blocked"]
            ).astype(np.uint8)
            self._pngs[layer] = _data_url(picture, self.length * self.scale)
        return self._pngs[layer]

    def hex_rows(self, layer: int) -> list[str]:
        return [hex_bits(row) for row in self.masks[layer]]

    def heat_map(self, layer: int, query: int) -> str:
        size, t = self.length * self.scale, self.text * self.scale
        width, height = LEFT + size + 4, TOP + size + 4
        parts = [
            (
                f'<text x="{LEFT}" y="12" font-size="12" fill="#444">key position '
                "(what is read) →</text>"
            ),
            (
                f'<text transform="translate(12 {TOP}) rotate(-90)" font-size="12" '
                'fill="#444" text-anchor="end">← query position</text>'
            ),
            f'<g transform="translate({LEFT} {TOP})">',
            (
                f'<image class="mk-png" href="{self.png(layer)}" width="{size}" '
                f'height="{size}" style="image-rendering:pixelated"/>'
            ),
            f'<rect width="{size}" height="{size}" fill="none" stroke="#888"/>',
        ]
        blocks = [("image", t, size)]
        if self.text:
            blocks.insert(0, ("text", 0, t))
            parts.append(
                f'<path d="M{t} -14V{size}M-14 {t}H{size}" stroke="#222" '
                'stroke-width="1.2"/>'
            )
        for name, low, high in blocks:
            middle = (low + high) / 2
            parts.append(
                f'<text x="{middle:g}" y="-5" font-size="12" text-anchor="middle">'
                f"{name}</text>"
                f'<text transform="translate(-16 {middle:g}) rotate(-90)" '
                f'font-size="12" text-anchor="middle">{name}</text>'
            )
        s = self.scale
        parts.append(
            f'<g class="mk-band" transform="translate(0 {query * s})">'
            f'<rect x="0" y="0" width="{size}" height="{s}" fill="{COLOURS["query"]}" '
            'fill-opacity="0.55"/>'
            f'<path d="M{-12} {s / 2 - 5:g}l10 5l-10 5z" fill="{COLOURS["query"]}"/>'
            "</g></g>"
        )
        label = (
            f"attention mask of {self.title(layer)}: {self.length} query rows "
            f"down, {self.length} key columns across, the first {self.text} text "
            "tokens and then the image tokens; shaded where a query may attend"
        )
        return (
            f'<svg class="mk-heat" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{html.escape(label)}" '
            'style="display:block;max-width:100%;height:auto;'
            f'font-family:sans-serif;cursor:crosshair">{"".join(parts)}</svg>'
        )

    def cell_colour(self, row: np.ndarray, query: int, k: int) -> str:
        if self.text + k == query:
            return COLOURS["query"]
        return COLOURS["read" if row[self.text + k] else "blocked"]

    def grid_svg(self, layer: int, query: int) -> str:
        c, g = self.cell, self.grid
        row = self.masks[layer][query]
        cells = "".join(
            f'<rect class="mk-cell" data-cell="{k}" x="{(k % g) * c}" '
            f'y="{(k // g) * c}" width="{c}" height="{c}" '
            f'fill="{self.cell_colour(row, query, k)}"/>'
            for k in range(g * g)
        )
        return (
            f'<svg class="mk-grid" viewBox="-1 -1 {g * c + 2} {g * c + 2}" '
            f'width="{g * c + 2}" height="{g * c + 2}" role="img" '
            f'aria-label="the {g} × {g} image tokens the query may read" '
            'style="display:block;max-width:100%;height:auto;cursor:pointer">'
            f'<g stroke="#fff" stroke-width="1">{cells}</g>'
            f'<rect x="0" y="0" width="{g * c}" height="{g * c}" fill="none" '
            'stroke="#888"/></svg>'
        )

    def panels(self, layer: int, query: int, live: bool = False) -> str:
        row = self.masks[layer][query]
        key = "".join(
            f'<span class="mk-key"><i style="background:{COLOURS[name]}"></i>'
            f"{words}</span>"
            for name, words in (
                ("query", "the query"),
                ("read", "may read"),
                ("blocked", "may not"),
            )
        )
        return f"""
  <div class="mk-title">{html.escape(self.title(layer))}</div>
  <div class="mk-row">
    <div class="mk-heat-box">{self.heat_map(layer, query)}</div>
    <div class="mk-side">
      <div class="mk-query-text">{describe_query(query, self.text, self.grid)}</div>
      <div class="mk-grid-box">{self.grid_svg(layer, query)}</div>
      <div class="mk-keys">{key}</div>
      <div class="mk-reads" aria-live="polite">{
            reads(row, query, self.text, self.grid)
        }</div>
      <div class="mk-help">the {self.grid} × {self.grid} image tokens in
        reading order; {
            "move the image token slider to pick the query"
            if live
            else "hover a row of the mask (a click keeps it) or click a cell "
            "to pick the query"
        }</div>
    </div>
  </div>"""


def _style() -> str:
    return (
        # readable on a dark page too (the book's theme can switch)
        ".t2i-masks{background:#fff;color:#222}"
        "html[data-theme=dark] .t2i-masks{padding:8px;border-radius:4px}"
        ".t2i-masks .mk-layers[hidden],.t2i-masks .mk-controls[hidden]"
        "{display:none}"
        ".t2i-masks .mk-pick{margin:0 6px 6px 0;padding:4px 10px;font:inherit;"
        "border:1px solid #888;border-radius:4px;background:#fff;color:#333;"
        "cursor:pointer}"
        '.t2i-masks .mk-pick[aria-pressed="true"]{background:#2f6db5;'
        "border-color:#2f6db5;color:#fff}"
        ".t2i-masks .mk-query{width:260px;vertical-align:middle}"
        ".t2i-masks .mk-title{font-weight:bold;margin:6px 0 4px}"
        ".t2i-masks .mk-row{display:flex;gap:18px;flex-wrap:wrap;"
        "align-items:flex-start}"
        ".t2i-masks .mk-heat-box{flex:0 1 auto;min-width:0}"
        f".t2i-masks .mk-side{{flex:0 1 {GRID_PX + 64}px;min-width:0;"
        "padding-top:30px}"
        ".t2i-masks .mk-query-text{font-weight:bold;margin-bottom:6px}"
        ".t2i-masks .mk-keys{font-size:12px;margin:6px 0}"
        ".t2i-masks .mk-key{margin-right:10px;white-space:nowrap}"
        ".t2i-masks .mk-key i{display:inline-block;width:10px;height:10px;"
        "margin-right:4px;border:1px solid #999;vertical-align:-1px}"
        ".t2i-masks .mk-help{color:#555;font-size:12px;margin-top:6px}"
    )


def _live_mask_viewer(view: _View, start: int, query: int):
    import ipywidgets as widgets

    layer = widgets.ToggleButtons(
        options=[(f"layer {k + 1}: {kind}", k) for k, kind in enumerate(view.kinds)],
        value=start,
        style={"button_width": "auto"},
    )
    cells = view.grid**2
    image_token = widgets.IntSlider(
        value=min(max(query - view.text, 0), cells - 1),
        min=0,
        max=cells - 1,
        description="image token",
        style={"description_width": "initial"},
    )
    shown = widgets.HTML()

    def update(_=None):
        shown.value = (
            '<div class="t2i-masks" style="font-family:sans-serif;font-size:14px">'
            f"<style>{_style()}</style>"
            f"{view.panels(layer.value, view.text + image_token.value, True)}</div>"
        )

    layer.observe(update, names="value")
    image_token.observe(update, names="value")
    update()
    return widgets.VBox([layer, image_token, shown])
