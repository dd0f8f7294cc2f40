"""Which outputs of a conditional transformer are the image tokens: n condition
tokens and n image tokens are 2n tokens; the model is fed the first 2n - 1 and
the output at position p predicts token p + 1, so outputs n - 1 ... 2n - 2 are
image tokens 0 ... n - 1 (taming-transformers' 512 / 511 / [255, 510] at
n = 256). Reading outputs n ... 2n - 1 instead is off by one."""

from __future__ import annotations

import numbers

import numpy as np

from .core import is_live, png_base64, static_figure

READINGS = ("correct", "off_by_one")
BUTTONS = {
    "correct": "correct: feed 2n − 1, read n − 1 … 2n − 2",
    "off_by_one": "off by one: feed 2n, read n … 2n − 1",
}
COLOURS = {"correct": "#1f77b4", "off_by_one": "#d62728"}  # the reading's marks
MAX_IMAGES = 8  # pictures per reading
PANEL_PX = 316  # width of one panel's pictures, so two panels fit side by side
GREY = "#999"

# the diagram's geometry, in pixels: box size, column steps, row tops
BOX_W, BOX_H, STEP, ELLIPSIS, GAP, LEFT = 40, 24, 48, 28, 16, 96
READ_Y, OUT_Y, IN_Y = 16, 28, 92  # READ_Y: a text baseline


def token_reading(n: int, images: dict[str, np.ndarray], *, live: bool | None = None):
    """The two ways to read the image tokens off a conditional transformer,
    side by side with what the decoder draws from each.

    ``n`` is the number of image tokens (as many condition tokens come first).
    ``images`` maps ``"correct"`` and ``"off_by_one"`` to uint8 arrays
    (m, H, W, 3) of the same shape, 1 to 8 pictures decoded from each reading.
    Two buttons switch a position diagram between the readings; the pictures
    of the chosen reading are outlined, the others dimmed. On the website both
    diagrams are in the page and a little script toggles them; in a live
    kernel a ``ToggleButtons`` redraws an ``HTML`` view.
    """
    n = _checked_n(n)
    images = _checked_images(images)
    panels = _panels(n, images)
    if is_live(live):
        return _live_token_reading(n, panels)
    toggle = "".join(
        f'<button type="button" class="tr-pick" data-reading="{reading}" '
        f'aria-pressed="{str(reading == "correct").lower()}">'
        f"{BUTTONS[reading]}</button>"
        for reading in READINGS
    )
    # without the script: no buttons, the correct diagram, both panels undimmed
    body = f"""
  <style>{_style()}</style>
  <div class="tr-toggle" role="group" aria-label="which outputs are read as the
    image tokens" hidden>{toggle}</div>
  {_readings(n, "correct")}
  {panels}"""
    spec = {"start": "correct"}
    return static_figure("t2i-tokens", "tr-spec", body, spec, "tokens.js")


def outputs_read(n: int, reading: str) -> range:
    """The output positions a reading takes as image tokens 0 ... n - 1."""
    return range(n - 1, 2 * n - 1) if reading == "correct" else range(n, 2 * n)


def sentence(n: int, reading: str) -> str:
    """What a reading does, with the numbers for this ``n`` (HTML)."""
    used = outputs_read(n, reading)
    if reading == "correct":
        return (
            f"Correct: fed the first 2n − 1 = {2 * n - 1} of the {2 * n} tokens "
            f"({_token(n, 2 * n - 1)} never goes in), the outputs at positions "
            f"{_dots(used[0], used[-1])} predict the image tokens "
            f"{_dots(_token(n, n), _token(n, 2 * n - 1))}, each the token it is "
            "read as."
        )
    return (
        f"Off by one: fed all {2 * n} tokens and read at positions "
        f"{_dots(used[0], used[-1])}, each output predicts the token after the one "
        f"it is read as (position {n} predicts {_token(n, n + 1)}, not "
        f"{_token(n, n)}, and has already read {_token(n, n)}'s placeholder "
        "value), so the pictures come out broken."
    )


def _dots(first, last) -> str:
    """``first … last``, kept on one line."""
    return f"{first}\u00a0…\u00a0{last}"


def _token(n: int, position: int, svg: bool = False) -> str:
    """The name of the token at ``position``: c_j, then x_j, then none."""
    if position >= 2 * n:
        return "none"
    letter, index = ("c", position) if position < n else ("x", position - n)
    if svg:
        return f'{letter}<tspan dy="3" font-size="9">{index}</tspan>'
    return f"<i>{letter}</i><sub>{index}</sub>"


def _checked_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(
            f"token_reading needs n, the number of image tokens, as an integer of "
            f"at least 2 (e.g. 256 for a 16 × 16 grid), got {n!r}"
        )
    return int(n)


def _checked_images(images) -> dict[str, np.ndarray]:
    if not isinstance(images, dict) or sorted(images) != sorted(READINGS):
        got = sorted(images) if isinstance(images, dict) else type(images).__name__
        raise ValueError(
            f"token_reading needs images as a dict with the keys 'correct' and "
            f"'off_by_one' (the pictures decoded from each reading), got {got}"
        )
    for reading in READINGS:
        pictures = images[reading]
        shape = getattr(pictures, "shape", None)
        where = f"images[{reading!r}]"
        if not isinstance(pictures, np.ndarray) or pictures.dtype != np.uint8:
            dtype = getattr(pictures, "dtype", type(pictures).__name__)
            raise ValueError(
                f"{where} must be a uint8 numpy array (m, H, W, 3), got {dtype}: "
                "convert pictures in [0, 1] with (x * 255).round().astype(np.uint8)"
                ", e.g. viz.to_numpy_images for a torch batch"
            )
        if pictures.ndim == 3:
            raise ValueError(
                f"{where} must be (m, H, W, 3), got {shape}: for one colour picture "
                "pass x[None], for grey ones np.repeat(x[..., None], 3, -1)"
            )
        if pictures.ndim != 4 or pictures.shape[-1] != 3:
            raise ValueError(
                f"{where} must be (m, H, W, 3), got {shape}: stack RGB pictures "
                "along the first axis, channels last (x.transpose(0, 2, 3, 1) "
                "for a channels-first batch)"
            )
        if not 1 <= len(pictures) <= MAX_IMAGES:
            raise ValueError(
                f"{where} holds {len(pictures)} pictures; give 1 to {MAX_IMAGES}"
                + (f", e.g. {where}[:{MAX_IMAGES}]" if len(pictures) else "")
            )
    if images["correct"].shape != images["off_by_one"].shape:
        raise ValueError(
            f"both readings must decode the same pictures: images['correct'] is "
            f"{images['correct'].shape}, images['off_by_one'] is "
            f"{images['off_by_one'].shape}; decode the same m token grids twice"
        )
    return images


def _columns(n: int) -> tuple[dict[int, float], dict[int, float], float]:
    """Where the diagram draws each position: x centres of the shown positions,
    x centres of the ellipses (keyed by the positions they stand for), and
    the width. Parts longer than 5 keep their first two and last two tokens."""
    shown, hidden, x = {}, {}, LEFT
    for start in (0, n):
        for k in range(n):
            if n <= 5 or k < 2 or k >= n - 2:
                shown[start + k] = x + STEP / 2
                x += STEP
            elif k == 2:
                hidden.update({start + j: x + ELLIPSIS / 2 for j in range(2, n - 2)})
                x += ELLIPSIS
        x += GAP if start == 0 else 0
    shown[2 * n] = x + STEP / 2  # past the end: what output 2n - 1 predicts
    # room for 'past the end' on the right, and for the legend below
    return shown, hidden, max(x + STEP + 16, LEFT + 300)


def _text(
    x: float, y: float, content, size: int = 13, anchor: str = "middle", **attributes
) -> str:
    extra = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attributes.items()
    )
    return (
        f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}"'
        f"{extra}>{content}</text>"
    )


def _box(x: float, y: float, fill: str, stroke: str, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<rect x="{x - BOX_W / 2:g}" y="{y}" width="{BOX_W}" height="{BOX_H}" '
        f'rx="4" fill="{fill}" stroke="{stroke}"{dash}/>'
    )


def _arrow(x0: float, y0: float, x1: float, y1: float, colour: str) -> str:
    """A line with a filled head at (x1, y1); no <marker>, whose ids would
    clash between figures and vanish inside a hidden diagram."""
    length = np.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    back_x, back_y = x1 - 8 * ux, y1 - 8 * uy
    head = " ".join(
        f"{px:.1f},{py:.1f}"
        for px, py in (
            (x1, y1),
            (back_x - 4 * uy, back_y + 4 * ux),
            (back_x + 4 * uy, back_y - 4 * ux),
        )
    )
    return _line(x0, y0, back_x, back_y, colour, width=1.6) + (
        f'<polygon points="{head}" fill="{colour}"/>'
    )


def _line(x0, y0, x1, y1, colour: str, width=1.0, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="2 3"' if dashed else ""
    return (
        f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
        f'stroke="{colour}" stroke-width="{width}"{dash}/>'
    )


def _diagram(n: int, reading: str) -> str:
    """The positions of the 2n tokens, the outputs the reading uses, and an
    arrow from each to the token it predicts (the token one further on)."""
    shown, hidden, width = _columns(n)
    fed = 2 * n - 1 if reading == "correct" else 2 * n
    used = outputs_read(n, reading)
    colour = COLOURS[reading]
    parts = [
        _text(LEFT - 8, y, label, 12, anchor="end", fill="#555")
        for y, label in (
            (READ_Y, "read as"),
            (OUT_Y + 16, "output at"),
            (IN_Y + 16, "input"),
        )
    ]
    for position, x in shown.items():
        if position == 2 * n:
            if fed == 2 * n:  # the last output predicts a token that is not there
                parts += [
                    _box(x, IN_Y, "#fff", GREY, dashed=True),
                    _text(x, IN_Y + 16, "none", 11, fill=GREY),
                    _text(x, IN_Y + BOX_H + 13, "past the end", 10, fill=GREY),
                ]
            continue
        if position < fed:
            parts += [
                _line(x, IN_Y, x, OUT_Y + BOX_H, "#ddd"),  # output p reads input p
                _box(x, IN_Y, "#fff", "#555"),
                _text(x, IN_Y + 16, _token(n, position, svg=True)),
            ]
        else:
            parts += [
                _box(x, IN_Y, "#f4f4f4", GREY, dashed=True),
                _text(x, IN_Y + 16, _token(n, position, svg=True), fill=GREY),
                _text(x, IN_Y + BOX_H + 13, "not fed", 10, fill=GREY),
            ]
            continue
        if position in used:
            target = position + 1
            parts += [
                _box(x, OUT_Y, colour, colour),
                _text(x, OUT_Y + 16, position, fill="#fff", class_="tr-used"),
                _text(
                    x,
                    READ_Y,
                    _token(n, n + used.index(position), svg=True),
                    fill=colour,
                    font_weight="bold",
                ),
                _arrow(
                    x,
                    OUT_Y + BOX_H,
                    shown.get(target, hidden.get(target)),
                    IN_Y - 1,
                    colour,
                ),
            ]
        else:
            parts += [
                _box(x, OUT_Y, "#f4f4f4", "#ccc"),
                _text(x, OUT_Y + 16, position, fill=GREY),
            ]
    for x in sorted(set(hidden.values())):
        in_use = any(at == x and p in used for p, at in hidden.items())
        parts += [
            _text(x, IN_Y + 16, "…", 14, fill="#555"),
            _text(x, OUT_Y + 16, "…", 14, fill=colour if in_use else GREY),
        ]
        if in_use:  # the read-as row goes on through the ellipsis too
            parts.append(_text(x, READ_Y, "…", 14, fill=colour))
    condition_mid = (shown[0] + shown[n - 1]) / 2
    image_mid = (shown[n] + shown[2 * n - 1]) / 2
    gap_x = (shown[n - 1] + shown[n]) / 2
    parts += [
        _line(gap_x, OUT_Y - 6, gap_x, IN_Y + BOX_H + 6, "#bbb", dashed=True),  # c | x
        _text(
            condition_mid, IN_Y + BOX_H + 30, f"{n} condition tokens", 11, fill="#555"
        ),
        _text(image_mid, IN_Y + BOX_H + 30, f"{n} image tokens", 11, fill="#555"),
        _text(
            LEFT,
            IN_Y + BOX_H + 52,
            "arrow: the output at position p predicts the token at p + 1",
            11,
            fill="#555",
            anchor="start",
        ),
    ]
    height = IN_Y + BOX_H + 60
    label = (
        f"{fed} tokens fed; the outputs at positions {used[0]} to {used[-1]} are "
        f"read as image tokens 0 to {n - 1}; an arrow from each output points "
        "to the token it predicts"
    )
    return (
        f'<svg class="tr-diagram" viewBox="0 0 {width:g} {height}" width="{width:g}" '
        f'height="{height}" role="img" aria-label="{label}" '
        f'style="display:block;max-width:100%;height:auto;font-family:sans-serif">'
        f"{''.join(parts)}</svg>"
    )


def _readings(n: int, shown: str) -> str:
    """Both readings' diagrams and sentences in one grid cell, so the figure
    keeps its height when they switch; only ``shown`` is visible."""
    parts = "".join(
        f'<div data-for="{reading}"{"" if reading == shown else " hidden"}>'
        f"{_diagram(n, reading)}"
        f'<p style="margin:4px 0 10px;max-width:640px">{sentence(n, reading)}</p>'
        "</div>"
        for reading in READINGS
    )
    return f'<div class="tr-readings">{parts}</div>'


def _panels(n: int, images: dict[str, np.ndarray]) -> str:
    """The pictures of both readings, each reading in one labelled panel."""
    m, height, width = images["correct"].shape[:3]
    columns = min(m, 4)
    size = min(128, (PANEL_PX - 4 * (columns - 1)) // columns)
    names = {"correct": "correct reading", "off_by_one": "off-by-one reading"}
    figures = []
    for reading in READINGS:
        used = outputs_read(n, reading)
        pictures = "".join(
            f'<img src="data:image/png;base64,{png_base64(picture)}" '
            f'width="{size}" height="{round(size * height / width)}" '
            f'alt="{names[reading]}, picture {k + 1}">'
            for k, picture in enumerate(images[reading])
        )
        figures.append(
            f'<figure class="tr-panel" data-panel="{reading}">'
            f'<div class="tr-pictures" style="grid-template-columns:repeat('
            f'{columns},{size}px)">{pictures}</div>'
            f"<figcaption><b>{names[reading]}</b>: outputs "
            f"{_dots(used[0], used[-1])}</figcaption></figure>"
        )
    return f'<div class="tr-panels">{"".join(figures)}</div>'


def _style() -> str:
    """One rule set for the buttons and panels; the root's data-reading, which
    the script (or the live view) sets, outlines one panel and dims the other."""
    style = (
        ".t2i-tokens .tr-pick{margin:0 6px 8px 0;padding:5px 10px;font:inherit;"
        "border:1px solid #888;border-radius:4px;background:#fff;color:#333;"
        "cursor:pointer}"
        ".t2i-tokens .tr-readings{display:grid}"
        ".t2i-tokens .tr-readings>div{grid-area:1/1}"
        ".t2i-tokens .tr-readings>[hidden]{display:block;visibility:hidden}"
        ".t2i-tokens .tr-panels{display:flex;gap:12px;flex-wrap:wrap}"
        ".t2i-tokens .tr-panel{margin:0;padding:6px;border:3px solid transparent;"
        "border-radius:6px}"
        ".t2i-tokens[data-reading] .tr-panel{opacity:.35}"
        ".t2i-tokens .tr-pictures{display:grid;gap:4px;margin-bottom:4px}"
        ".t2i-tokens .tr-pictures img{display:block;image-rendering:pixelated}"
    )
    for reading, colour in COLOURS.items():
        style += (
            f'.t2i-tokens .tr-pick[data-reading="{reading}"][aria-pressed="true"]'
            f"{{background:{colour};border-color:{colour};color:#fff}}"
            f'.t2i-tokens[data-reading="{reading}"] '
            f'.tr-panel[data-panel="{reading}"]{{opacity:1;border-color:{colour}}}'
        )
    return style


def _live_token_reading(n: int, panels: str):
    import ipywidgets as widgets

    picker = widgets.ToggleButtons(
        options=[(BUTTONS[reading], reading) for reading in READINGS],
        value="correct",
        style={"button_width": "auto"},
    )
    view = widgets.HTML()

    def update(_=None):
        view.value = (
            f'<div class="t2i-tokens" data-reading="{picker.value}" '
            f'style="font-family:sans-serif;font-size:14px">'
            f"<style>{_style()}</style>{_readings(n, picker.value)}{panels}</div>"
        )

    picker.observe(update, names="value")
    update()
    return widgets.VBox([picker, view])
