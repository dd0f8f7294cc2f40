"""The Gumbel-softmax temperature explorer: what DALL·E's dVAE decoder draws
from the relaxed codes, and how sure each relaxed choice is, as the
temperature τ falls from hot (blurred mixtures of codes) to cold (nearly
one-hot codes, the hard argmax picture)."""

from __future__ import annotations

import base64
import html
import itertools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .core import is_live, png_bytes, static_figure

PICTURE_PX = 128  # width of each picture on the page
MARK = "#d62728"  # outline of the chosen position
BAR = "#1f77b4"
REST = "#bbb"
# the bar chart's geometry, in pixels: margins, one bar's slot, plot height
BAR_LEFT, BAR_TOP, BAR_SLOT, BAR_PLOT, BAR_BOTTOM = 34, 18, 36, 100, 34


@dataclass
class TemperatureFrame:
    """What the figure shows at one temperature."""

    tau: float
    soft_image: np.ndarray  # uint8 (H, W, 3): decoded from the soft codes at tau
    entropy: np.ndarray  # float (g, g): entropy of each relaxed assignment, nats
    top_codes: np.ndarray  # int (k,): the chosen position's most likely codes
    top_probs: np.ndarray  # float (k,): their probabilities, largest first


@torch.no_grad()
def temperature_frame(
    logits: torch.Tensor,
    tau: float,
    decode: Callable[[torch.Tensor], np.ndarray],
    position: tuple[int, int],
    *,
    top_k: int = 8,
    noise: torch.Tensor | None = None,
) -> TemperatureFrame:
    """One frame from an encoder's ``logits`` (K, g, g) over K codes.

    The relaxed codes are ``softmax((logits + noise) / tau)`` over the K codes
    at every position; ``noise`` is Gumbel noise of the same shape (keep one
    draw for all temperatures, so only τ changes along the slider), or none
    for the plain tempered softmax. ``decode`` maps the relaxed codes (K, g, g)
    to a uint8 picture (H, W, 3). The entropy is in nats.
    """
    if logits.ndim != 3 or logits.shape[1] != logits.shape[2]:
        raise ValueError(
            f"temperature_frame needs the logits of one image as (K, g, g), got "
            f"{tuple(logits.shape)}: pass logits[0] for a batch of one"
        )
    scores = logits.detach().float().cpu()
    if noise is not None:
        if noise.shape != logits.shape:
            raise ValueError(
                f"noise must have the logits' shape {tuple(logits.shape)}, got "
                f"{tuple(noise.shape)}"
            )
        scores = scores + noise.detach().float().cpu()
    soft = torch.softmax(scores / float(tau), dim=0)
    entropy = torch.special.entr(soft).sum(0)
    row, column = position
    probs, codes = soft[:, row, column].topk(min(top_k, len(soft)))
    return TemperatureFrame(
        tau=float(tau),
        soft_image=decode(soft),
        entropy=entropy.numpy(),
        top_codes=codes.numpy(),
        top_probs=probs.numpy(),
    )


def temperature_explorer(
    original: np.ndarray,
    hard_image: np.ndarray,
    position: tuple[int, int],
    num_codes: int,
    frames: Sequence[TemperatureFrame] | None = None,
    *,
    compute: Callable[[float], TemperatureFrame] | None = None,
    taus: Sequence[float] | None = None,
    start: int = 0,
    live: bool | None = None,
):
    """A slider over the Gumbel-softmax temperature τ for one image.

    ``original`` and ``hard_image`` (decoded from the argmax codes) are uint8
    (H, W, 3) pictures that stay put; ``position`` (row, column) is the grid
    position whose relaxed assignment the bar chart shows (marked on every
    picture); ``num_codes`` is K. Give either ``frames``, one
    :class:`TemperatureFrame` per slider position in increasing τ, or
    ``compute(tau)`` and ``taus``: the website computes every frame at build
    time, a live kernel computes each one when the slider first reaches it.
    The slider opens at ``start`` (an index). Entropies are shown in bits,
    with log2 K (every code equally likely) at the top of the colour scale.
    """
    original = _checked_picture("original", original, None)
    hard_image = _checked_picture("hard_image", hard_image, original.shape)
    num_codes = _checked_count("num_codes", num_codes, 2)
    if frames is not None:
        if compute is not None or taus is not None:
            raise ValueError(
                "temperature_explorer takes either frames or compute and taus, not both"
            )
        frames = list(frames)
        if not frames:
            raise ValueError("temperature_explorer needs at least one frame")
        taus = [_frame_tau(f, k) for k, f in enumerate(frames)]
    elif compute is None or taus is None:
        raise ValueError(
            "temperature_explorer needs frames (one TemperatureFrame per slider "
            "position), or compute (a function of tau returning one) and taus"
        )
    taus = _checked_taus(taus, "frames" if frames is not None else "taus")
    if isinstance(start, bool) or not isinstance(start, numbers.Integral):
        raise TypeError(f"start is an index into the taus, got {start!r}")
    if not 0 <= start < len(taus):
        raise ValueError(
            f"start must index one of the {len(taus)} temperatures, got {start}"
        )
    check = _frame_checker(original.shape, num_codes)
    given = [check(f, f"frames[{k}]") for k, f in enumerate(frames or [])]

    def frame(index: int) -> TemperatureFrame:
        """The checked frame at slider position ``index``."""
        if given:
            return given[index]
        computed = check(compute(taus[index]), f"compute({taus[index]:g})")
        if not math.isclose(computed.tau, taus[index], rel_tol=1e-6):
            raise ValueError(
                f"compute({taus[index]:g}) returned a frame for tau = "
                f"{computed.tau:g}; it must compute the tau it is given"
            )
        return computed

    first = frame(start)
    position = _checked_position(position, first.entropy.shape[0])
    view = _View(original, hard_image, position, num_codes, first.entropy.shape[0])
    if is_live(live):
        cache = {start: first}

        def cached(index: int) -> TemperatureFrame:
            if index not in cache:
                cache[index] = frame(index)
            return cache[index]

        return _live_temperature_explorer(view, taus, cached, start)
    every = [first if k == start else frame(k) for k in range(len(taus))]
    spec = {"frames": [view.frame_spec(f) for f in every]}
    steps = np.diff(np.log(taus))
    scale = ", log scale" if len(taus) > 2 and np.allclose(steps, steps[0]) else ""
    body = f"""
  <style>{_style()}</style>
  <div class="tx-controls" hidden><label>temperature τ
    <input type="range" class="tx-range" min="0" max="{len(taus) - 1}"
      value="{start}" aria-label="temperature tau, from {taus[0]:.3g} to
      {taus[-1]:.3g} in {len(taus)} steps{scale}"></label>
    <b class="tx-tau">{_tau_text(first.tau)}</b>
    <span class="tx-ends">({taus[0]:.3g} … {taus[-1]:.3g}{scale})</span></div>
  {view.panels(first)}"""
    return static_figure("t2i-temperature", "tx-spec", body, spec, "temperature.js")


def entropy_bits(frame: TemperatureFrame) -> np.ndarray:
    """The frame's entropies in bits (they are stored in nats)."""
    return np.asarray(frame.entropy, np.float64) / math.log(2)


def _data_url(array: np.ndarray, width: int | None = None) -> str:
    raw = png_bytes(array, width, optimize=True)
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def _tau_text(tau: float) -> str:
    return f"τ = {tau:.3g}"


def _checked_count(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    return int(value)


def _checked_picture(name: str, picture, shape) -> np.ndarray:
    got = getattr(picture, "shape", None)
    if not isinstance(picture, np.ndarray) or picture.dtype != np.uint8:
        dtype = getattr(picture, "dtype", type(picture).__name__)
        raise ValueError(
            f"{name} must be a uint8 numpy array (H, W, 3), got {dtype}: convert "
            "a picture in [0, 1] with (x * 255).round().astype(np.uint8), e.g. "
            "viz.to_numpy_images(x[None])[0] for a torch image"
        )
    if picture.ndim != 3 or picture.shape[-1] != 3:
        raise ValueError(
            f"{name} must be (H, W, 3), got {got}: channels last (x.transpose(1, "
            "2, 0) for channels first), grey pictures as np.repeat(x[..., None], "
            "3, -1)"
        )
    if shape is not None and picture.shape != shape:
        raise ValueError(
            f"{name} is {got} but the original is {shape}: every picture of the "
            "figure must have the same size"
        )
    return picture


def _frame_tau(frame, index: int) -> float:
    if not isinstance(frame, TemperatureFrame):
        raise TypeError(
            f"frames[{index}] is a {type(frame).__name__}, not a TemperatureFrame"
        )
    return frame.tau


def _checked_taus(taus, name: str) -> list[float]:
    values = []
    for tau in taus:
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
            raise TypeError(f"every tau must be a number, got {tau!r} in {name}")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"every tau must be positive and finite, got {tau}")
        values.append(float(tau))
    if not values:
        raise ValueError(f"{name} is empty: give at least one temperature")
    if any(b <= a for a, b in itertools.pairwise(values)):
        fix = (
            "sorted(frames, key=lambda f: f.tau)"
            if name == "frames"
            else "sorted(taus)"
        )
        raise ValueError(
            f"the {name} must go up in tau, each tau once (the slider runs cold "
            f"to hot), got taus {[round(t, 4) for t in values]}: use {fix}"
        )
    return values


def _checked_position(position, grid: int) -> tuple[int, int]:
    if (
        isinstance(position, str)
        or not hasattr(position, "__len__")
        or len(position) != 2
        or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool)
            for p in position
        )
    ):
        raise ValueError(
            f"position is a grid position (row, column) of two integers, got "
            f"{position!r}"
        )
    row, column = (int(p) for p in position)
    if not (0 <= row < grid and 0 <= column < grid):
        raise ValueError(
            f"position {(row, column)} lies outside the {grid} × {grid} grid of "
            f"the entropies: rows and columns count 0 to {grid - 1}"
        )
    return row, column


def _frame_checker(shape: tuple[int, ...], num_codes: int):
    """A check of one frame against the pictures, K and the first frame's grid;
    it returns the frame with its arrays as numpy."""
    grid: list[int] = []

    def check(frame, name: str) -> TemperatureFrame:
        if not isinstance(frame, TemperatureFrame):
            raise TypeError(
                f"{name} gave a {type(frame).__name__}, not a TemperatureFrame"
            )
        if isinstance(frame.tau, bool) or not isinstance(frame.tau, numbers.Real):
            raise TypeError(f"{name}.tau must be a number, got {frame.tau!r}")
        _checked_picture(f"{name}.soft_image", frame.soft_image, shape)
        entropy = _as_numpy(frame.entropy)
        if (
            entropy.ndim != 2
            or entropy.shape[0] != entropy.shape[1]
            or not np.issubdtype(entropy.dtype, np.floating)
        ):
            raise ValueError(
                f"{name}.entropy must be a float array (g, g), one entropy per "
                f"grid position, got {entropy.dtype} of shape {entropy.shape}"
            )
        if grid and entropy.shape[0] != grid[0]:
            raise ValueError(
                f"{name}.entropy is {entropy.shape} but the first frame's grid is "
                f"{grid[0]} × {grid[0]}"
            )
        grid[:] = [entropy.shape[0]]
        most = math.log(num_codes)
        if not np.isfinite(entropy).all() or entropy.min() < -1e-4:
            raise ValueError(f"{name}.entropy must be finite and not negative")
        if entropy.max() > most * (1 + 1e-3) + 1e-6:
            raise ValueError(
                f"{name}.entropy reaches {entropy.max():.3f}, above ln K = "
                f"{most:.3f} nats for K = {num_codes} codes: entropies are in "
                "nats (natural log; bits * ln 2), and num_codes must be K"
            )
        codes, probs = _as_numpy(frame.top_codes), _as_numpy(frame.top_probs)
        if (
            codes.ndim != 1
            or not np.issubdtype(codes.dtype, np.integer)
            or probs.shape != codes.shape
            or not np.issubdtype(probs.dtype, np.floating)
            or not 1 <= len(codes) <= num_codes
        ):
            raise ValueError(
                f"{name} needs top_codes (k,) integers and top_probs (k,) floats "
                f"with 1 <= k <= {num_codes}, got {codes.dtype} {codes.shape} and "
                f"{probs.dtype} {probs.shape}"
            )
        if codes.min() < 0 or codes.max() >= num_codes:
            raise ValueError(
                f"{name}.top_codes must be code indices 0 to {num_codes - 1}, got "
                f"{codes.tolist()}"
            )
        if probs.min() < 0 or probs.sum() > 1 + 1e-3:
            raise ValueError(
                f"{name}.top_probs must be probabilities (>= 0, summing to at most "
                f"1), got {np.round(probs, 4).tolist()}"
            )
        order = np.argsort(-probs, kind="stable")  # the largest first
        return TemperatureFrame(
            float(frame.tau), frame.soft_image, entropy, codes[order], probs[order]
        )

    return check


def _as_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _colours(values: np.ndarray) -> np.ndarray:
    """viridis colours (uint8 RGB) of values in [0, 1]."""
    from matplotlib import colormaps

    return (
        (colormaps["viridis"](np.clip(values, 0, 1))[..., :3] * 255)
        .round()
        .astype(np.uint8)
    )


def _prob_text(p: float) -> str:
    if 0 < p < 0.005:
        return "<0.01"
    return f"{p:.2f}" if p < 0.995 else "1"


class _View:
    """The parts of the figure, drawn in Python for one frame: the static
    page carries them for every frame, the live view redraws them."""

    def __init__(self, original, hard_image, position, num_codes, grid):
        self.position, self.num_codes, self.grid = position, num_codes, grid
        self.height = round(PICTURE_PX * original.shape[0] / original.shape[1])
        self.original, self.hard = _data_url(original), _data_url(hard_image)
        self.most_bits = math.log2(num_codes)

    def where(self) -> str:
        row, column = self.position
        return f"row {row}, column {column}"

    def picture(self, source: str, alt: str, css: str = "") -> str:
        row, column = self.position
        g = self.grid
        mark = (
            f'<div class="tx-mark" style="left:{100 * column / g:.4g}%;'
            f'top:{100 * row / g:.4g}%;width:{100 / g:.4g}%;height:{100 / g:.4g}%">'
            "</div>"
        )
        extra = f' class="{css}"' if css else ""
        return (
            f'<div class="tx-pic"><img{extra} src="{source}" alt="{alt}" '
            f'width="{PICTURE_PX}" height="{self.height}">{mark}</div>'
        )

    def entropy_picture(self, frame: TemperatureFrame) -> np.ndarray:
        return _colours(entropy_bits(frame) / self.most_bits)

    def summary(self, frame: TemperatureFrame) -> str:
        mean = float(entropy_bits(frame).mean())
        return (
            f"{_tau_text(frame.tau)}: mean entropy {mean:.2f} bits per position "
            f"(0 = one code for sure, {self.most_bits:.3g} = all "
            f"{self.num_codes} codes equally likely)"
        )

    def bars(self, frame: TemperatureFrame) -> str:
        """The chosen position's most likely codes as an SVG bar chart, with
        one grey bar for all the other codes together."""
        codes, probs = frame.top_codes.tolist(), frame.top_probs.tolist()
        rest = max(0.0, 1.0 - sum(probs))
        others = self.num_codes - len(codes)
        slots = len(codes) + (1 if others else 0)
        width, height = BAR_LEFT + slots * BAR_SLOT + 8, BAR_TOP + BAR_PLOT + BAR_BOTTOM
        base = BAR_TOP + BAR_PLOT
        parts = [
            f'<line x1="{BAR_LEFT}" y1="{y:g}" x2="{width - 4}" y2="{y:g}" '
            f'stroke="{"#888" if p == 0 else "#e4e4e4"}"/>'
            f'<text x="{BAR_LEFT - 5}" y="{y + 4:g}" font-size="10" '
            f'text-anchor="end" fill="#666">{p:g}</text>'
            for p in (1, 0.5, 0)
            for y in [base - p * BAR_PLOT]
        ]
        bars = [(str(c), p, BAR) for c, p in zip(codes, probs)]
        if others:
            bars.append(("rest", rest, REST))
        for k, (label, p, colour) in enumerate(bars):
            x = BAR_LEFT + k * BAR_SLOT + 4
            top = base - p * BAR_PLOT
            parts.append(
                f'<rect x="{x}" y="{top:.1f}" width="{BAR_SLOT - 8}" '
                f'height="{base - top:.1f}" fill="{colour}"/>'
                f'<text x="{x + (BAR_SLOT - 8) / 2:g}" y="{top - 4:.1f}" '
                f'font-size="10" text-anchor="middle">{_prob_text(p)}</text>'
                f'<text x="{x + (BAR_SLOT - 8) / 2:g}" y="{base + 13}" '
                f'font-size="11" text-anchor="middle" fill="#333">{label}</text>'
            )
        parts.append(
            f'<text x="{BAR_LEFT}" y="{base + 29}" font-size="11" fill="#666">'
            f"code (grey: the other {others} codes together)</text>"
            if others
            else f'<text x="{BAR_LEFT}" y="{base + 29}" font-size="11" '
            'fill="#666">code</text>'
        )
        label = html.escape(
            f"probabilities at {self.where()}, {_tau_text(frame.tau)}: "
            + ", ".join(f"code {c} {p:.2f}" for c, p in zip(codes, probs))
            + (f", the other {others} codes {rest:.2f}" if others else "")
        )
        return (
            f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{label}" style="display:block;max-width:100%;'
            f'height:auto;font-family:sans-serif">{"".join(parts)}</svg>'
        )

    def frame_spec(self, frame: TemperatureFrame) -> dict:
        return {
            "tau": _tau_text(frame.tau),
            "soft": _data_url(frame.soft_image),
            "entropy": _data_url(self.entropy_picture(frame)),
            "bars": self.bars(frame),
            "summary": self.summary(frame),
        }

    def colour_bar(self) -> str:
        stops = ",".join(
            "#{:02x}{:02x}{:02x}".format(*c) for c in _colours(np.linspace(0, 1, 9))
        )
        top = self.most_bits
        ticks = "".join(
            f'<span style="position:absolute;left:{100 * v / top:.4g}%;'
            f'transform:translateX(-{100 * v / top:.4g}%)">{v:.3g}</span>'
            for v in (0, top / 2, top)
        )
        return (
            f'<div class="tx-colourbar" style="background:linear-gradient(to right,'
            f'{stops})" role="img" aria-label="colour scale: entropy from 0 to '
            f'{top:.3g} bits"></div><div class="tx-ticks">{ticks}</div>'
        )

    def panels(self, frame: TemperatureFrame) -> str:
        """Everything below the slider, drawn for ``frame``."""
        g, k = self.grid, len(frame.top_codes)
        spec = self.frame_spec(frame)
        tau = f'<span class="tx-tau">{spec["tau"]}</span>'
        figures = [
            (self.picture(self.original, "the original"), "original"),
            (
                self.picture(self.hard, "decoded from the hard codes"),
                "hard codes (τ → 0)",
            ),
            (
                self.picture(
                    spec["soft"], "decoded from the soft codes", css="tx-soft"
                ),
                f"soft codes at {tau}",
            ),
            (
                self.picture(
                    spec["entropy"],
                    f"entropy of the relaxed codes at each of the {g} × {g} positions",
                    css="tx-entropy",
                )
                + self.colour_bar(),
                "entropy per position (bits)",
            ),
        ]
        pictures = "".join(
            f'<figure class="tx-figure">{picture}<figcaption>{caption}</figcaption>'
            "</figure>"
            for picture, caption in figures
        )
        return f"""
  <div class="tx-summary" aria-live="polite">{spec["summary"]}</div>
  <div class="tx-row">{pictures}</div>
  <figure class="tx-figure tx-chart"><div class="tx-bars">{spec["bars"]}</div>
    <figcaption>the {k} most likely codes at the marked position ({self.where()})
      and their probabilities at {tau}</figcaption></figure>"""


def _style() -> str:
    return (
        # readable on a dark page too (the book's theme can switch)
        ".t2i-temperature{background:#fff;color:#222}"
        "html[data-theme=dark] .t2i-temperature{padding:8px;border-radius:4px}"
        ".t2i-temperature .tx-controls{display:flex;gap:10px;align-items:center;"
        "flex-wrap:wrap}"
        ".t2i-temperature .tx-controls[hidden]{display:none}"
        ".t2i-temperature .tx-range{width:240px;vertical-align:middle}"
        ".t2i-temperature .tx-ends{color:#666;font-size:12px}"
        ".t2i-temperature .tx-summary{margin:6px 0 8px}"
        ".t2i-temperature .tx-row{display:flex;gap:14px;flex-wrap:wrap;"
        "align-items:flex-start}"
        ".t2i-temperature .tx-figure{margin:0;text-align:center;"
        f"max-width:{PICTURE_PX + 40}px}}"
        ".t2i-temperature .tx-figure figcaption{font:12px/1.35 sans-serif;"
        "color:#333;margin:3px 0 0;padding:0;text-align:inherit}"
        ".t2i-temperature .tx-chart{max-width:none;text-align:left;margin-top:10px}"
        ".t2i-temperature .tx-pic{position:relative;display:inline-block;"
        "line-height:0}"
        ".t2i-temperature .tx-pic img{display:block;image-rendering:pixelated;"
        "border:1px solid #888;padding:0!important;border-radius:0!important;"
        "max-width:none}"
        f".t2i-temperature .tx-mark{{position:absolute;box-sizing:border-box;"
        f"border:2px solid {MARK};box-shadow:0 0 0 1px #fff;pointer-events:none}}"
        f".t2i-temperature .tx-colourbar{{width:{PICTURE_PX + 2}px;height:10px;"
        "margin-top:4px}"
        f".t2i-temperature .tx-ticks{{position:relative;width:{PICTURE_PX + 2}px;"
        "height:14px;font-size:10px;color:#444;margin-bottom:2px}"
    )


def _live_temperature_explorer(view: _View, taus, frame, start: int):
    import ipywidgets as widgets

    slider = widgets.SelectionSlider(
        options=[(f"{tau:.3g}", k) for k, tau in enumerate(taus)],
        value=start,
        description="τ",
        continuous_update=False,
    )
    shown = widgets.HTML()

    def update(_=None):
        shown.value = (
            '<div class="t2i-temperature" style="font-family:sans-serif;'
            f'font-size:14px"><style>{_style()}</style>'
            f"{view.panels(frame(slider.value))}</div>"
        )

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, shown])
