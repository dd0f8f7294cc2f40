"""Shapes world: procedural scenes of coloured shapes, with captions.

A scene is a 3 x 3 grid of cells holding 1 to 3 objects, each in its own cell.
An object has four attributes (shape, colour, size, fill texture) and a
position (its cell), so a scene is exactly described by a table of 9 rows
(cells, row-major) and 4 columns (the attribute indices, -1 for an empty
cell). The table becomes an English caption and back again, which is what
makes text-to-image measurable on a CPU: a judge that reads the table off a
generated picture tells whether it shows what the caption asked for.

Two (colour, shape) pairs never occur in the "train" and "test" splits; every
"held_out" scene has at least one of them. A model that draws a green triangle
from the words "green triangle" has learned to combine, not to copy.

Scene ``i`` of a split depends only on ``(seed, split, i)``, never on how many
scenes are made at once: its attributes come from a random generator seeded
by those three numbers. Drawing is vectorised over objects: each object is
rendered on a small window around its cell at 2 to 4 times the resolution
and averaged down (anti-aliasing), then added to the background.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, reduce

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {  # saturated, far from each other and from the light backgrounds
    "red": (0.88, 0.12, 0.12),
    "orange": (1.0, 0.55, 0.05),
    "yellow": (0.95, 0.85, 0.1),
    "green": (0.1, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "purple": (0.58, 0.18, 0.78),
}
SIZES = ("small", "large")
TEXTURES = ("solid", "striped", "dotted")
POSITIONS = (
    "top left",
    "top centre",
    "top right",
    "middle left",
    "centre",
    "middle right",
    "bottom left",
    "bottom centre",
    "bottom right",
)
ATTRIBUTES = ("shape", "colour", "size", "texture")
MAX_OBJECTS = 3
HELD_OUT = (("green", "triangle"), ("blue", "circle"))
SPLITS = ("train", "test", "held_out")
CAPTION_STYLES = 3
MIN_SIZE = 16  # below this a small object is a blur of a few pixels

COLOUR_NAMES = tuple(COLOURS)
SIZE_OF_CELL = (0.58, 0.88)  # object width / cell width, small and large
FINE = 128  # objects are drawn on a grid at least this fine, then averaged down
DARK = 0.5  # stripes and dots: this fraction of the colour is taken away
TEXTURE_PERIOD = 0.3  # stripe and dot spacing, in cell widths
_HELD_OUT = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in HELD_OUT}


@dataclass
class Scenes:
    """A batch of scenes: pictures, per-pixel shape labels, tables and captions."""

    images: torch.Tensor  # (N, 3, S, S) float32 in [0, 1]
    segmentation: torch.Tensor  # (N, S, S) long: 0 background, 1 + shape index
    attributes: torch.Tensor  # (N, 9, 4) long: cells x ATTRIBUTES, -1 for empty
    captions: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index) -> Scenes:
        """A sub-batch; an int gives a batch of one, so a Scenes is always a batch."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        if isinstance(index, slice):
            captions = self.captions[index]
        else:
            index = torch.as_tensor(index)
            captions = [self.captions[i] for i in index.tolist()]
        return Scenes(
            self.images[index],
            self.segmentation[index],
            self.attributes[index],
            captions,
        )


def check_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < MIN_SIZE:
        raise ValueError(
            f"shapes world needs an image size that is a whole number >= {MIN_SIZE} "
            f"(a small object is about a fifth of the width), got {size!r}; "
            f"use size=32 (the tiny scale) or 64"
        )


def check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(
            f"unknown shapes world split {split!r}; choose one of "
            f"{', '.join(repr(s) for s in SPLITS)}"
        )
    return SPLITS.index(split)


# ---------------------------------------------------------------- scene tables


def _draw_table(rng: np.random.Generator, held_out: bool) -> np.ndarray:
    """One scene's (9, 4) attribute table, -1 for empty cells."""
    table = np.full((9, 4), -1, dtype=np.int64)
    count = rng.integers(1, MAX_OBJECTS + 1)
    for k, cell in enumerate(rng.choice(9, size=count, replace=False)):
        shape = rng.integers(len(SHAPES))
        if held_out and k == 0:  # the first object is a held-out pair
            colour, shape_name = HELD_OUT[rng.integers(len(HELD_OUT))]
            colour, shape = COLOUR_NAMES.index(colour), SHAPES.index(shape_name)
        elif held_out:
            colour = rng.integers(len(COLOURS))
        else:  # any colour this shape keeps in training
            allowed = [c for c in range(len(COLOURS)) if (c, shape) not in _HELD_OUT]
            colour = allowed[rng.integers(len(allowed))]
        size, texture = rng.integers(len(SIZES)), rng.integers(len(TEXTURES))
        table[cell] = shape, colour, size, texture
    return table


def _draw_scene(seed: int, split_id: int, index: int):
    """Table, layout noise and caption style of scene ``index``: its own generator."""
    rng = np.random.default_rng([seed, split_id, index])
    table = _draw_table(rng, held_out=SPLITS[split_id] == "held_out")
    # per cell: centre offset (x, y) in [-1, 1] of the room left, size jitter
    jitter = rng.uniform(-1, 1, size=(9, 3))
    # background: a light tint and a gentle gradient (direction, strength)
    background = np.concatenate(
        [rng.uniform(0.84, 0.97, 3), [rng.uniform(0, 2 * np.pi)], rng.uniform(0, 1, 1)]
    )
    return table, jitter, background, int(rng.integers(CAPTION_STYLES))


# ---------------------------------------------------------------- drawing


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Which points (u, v) lie inside ``shape`` drawn in the square [-1, 1]^2 (y down)."""
    if shape == SHAPES.index("circle"):
        return u**2 + v**2 <= 1
    if shape == SHAPES.index("square"):
        return torch.maximum(u.abs(), v.abs()) <= 0.85
    if shape == SHAPES.index("triangle"):  # apex up, base at v = 0.8
        return (v <= 0.8) & (u.abs() <= (v + 0.95) / 1.75)
    if shape == SHAPES.index("diamond"):
        return u.abs() + v.abs() <= 1
    arm = 0.36  # cross: half-width of its two bars
    return ((u.abs() <= arm) & (v.abs() <= 0.95)) | (
        (v.abs() <= arm) & (u.abs() <= 0.95)
    )


def _dark(texture: torch.Tensor, x: torch.Tensor, y: torch.Tensor, period: float):
    """Where the darker shade goes: stripes across y, or a grid of dots (x, y in px)."""
    phase_y, phase_x = y / period, x / period
    stripes = (phase_y - phase_y.floor()) >= 0.5
    dy, dx = phase_y - phase_y.round(), phase_x - phase_x.round()
    dots = dx**2 + dy**2 <= 0.3**2
    texture = texture[:, None, None]
    return (texture == TEXTURES.index("striped")) & stripes | (
        texture == TEXTURES.index("dotted")
    ) & dots


def supersampling(size: int) -> int:
    """Drawing points per pixel and axis: 4 at 32 px, 2 from 64 px on."""
    return min(4, max(2, math.ceil(FINE / size)))


def _render_objects(objects: torch.Tensor, size: int, window: int):
    """Coverage and colour of each object on its own ``window`` x ``window`` patch.

    ``objects`` is (O, 8): shape, colour, texture, centre x, centre y, half
    width (pixels), and the patch's top-left pixel (x0, y0). Returns the
    coverage (O, P, P) in [0, 1] and the colour times coverage (O, 3, P, P).
    """
    f = supersampling(size)
    offsets = (torch.arange(window * f, dtype=torch.float32) + 0.5) / f
    x = objects[:, 6, None, None] + offsets[None, None, :]  # (O, 1, Pf) pixels
    y = objects[:, 7, None, None] + offsets[None, :, None]  # (O, Pf, 1)
    x, y = x - objects[:, 3, None, None], y - objects[:, 4, None, None]
    r = objects[:, 5, None, None]
    u, v = (x / r).expand(-1, window * f, -1), (y / r).expand(-1, -1, window * f)
    # objects come sorted by shape: each shape's test runs on a slice (no copies)
    ends = torch.bincount(objects[:, 0].long(), minlength=len(SHAPES)).cumsum(0)
    inside = torch.cat(
        [_inside(k, u[a:b], v[a:b]) for k, (a, b) in enumerate(zip([0, *ends], ends))]
    )
    dark = inside & _dark(objects[:, 2].long(), x, y, TEXTURE_PERIOD * size / 3)
    coverage = reduce(inside.float(), "o (h f) (w g) -> o h w", "mean", f=f, g=f)
    darkened = reduce(dark.float(), "o (h f) (w g) -> o h w", "mean", f=f, g=f)
    colours = torch.tensor(list(COLOURS.values()))[objects[:, 1].long()]
    paint = colours[:, :, None, None] * (coverage - DARK * darkened)[:, None]
    return coverage, paint


def _layout(tables: torch.Tensor, jitter: torch.Tensor, size: int):
    """Every object of a batch as a row (O, 8) for ``_render_objects``, sorted by
    shape, with the scene each belongs to."""
    scene, cell = (tables[:, :, 0] >= 0).nonzero(as_tuple=True)
    order = tables[scene, cell, 0].argsort(stable=True)  # by shape
    scene, cell = scene[order], cell[order]
    shape, colour, big, texture = tables[scene, cell].T
    cell_width = size / 3
    jitter = jitter[scene, cell]
    half = cell_width / 2 * torch.tensor(SIZE_OF_CELL)[big] * (1 + 0.03 * jitter[:, 2])
    room = (cell_width / 2 - half - 0.5).clamp(min=0)  # keep 0.5 px inside the cell
    cx = (cell % 3 + 0.5) * cell_width + room * jitter[:, 0]
    cy = (cell // 3 + 0.5) * cell_width + room * jitter[:, 1]
    window = math.ceil(cell_width) + 2
    x0, y0 = (cx - window / 2).floor(), (cy - window / 2).floor()
    rows = torch.stack([shape, colour, texture, cx, cy, half, x0, y0], dim=1)
    return rows.float(), scene, window


def _background(params: torch.Tensor, size: int) -> torch.Tensor:
    """A light tint, brighter towards one side: (N, 3, S, S)."""
    axis = (torch.arange(size) + 0.5) / size - 0.5
    angle, strength = params[:, 3], params[:, 4]
    ramp = (
        torch.cos(angle)[:, None, None] * axis[None, None, :]
        + torch.sin(angle)[:, None, None] * axis[None, :, None]
    )  # (N, S, S) in about [-0.7, 0.7]
    shade = 1 + 0.08 * strength[:, None, None] * ramp
    return (params[:, :3, None, None] * shade[:, None]).clamp(0, 1)


def render(
    tables: torch.Tensor, jitter: torch.Tensor, background: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures (N, 3, S, S) and segmentation (N, S, S) of attribute tables."""
    n = len(tables)
    rows, scene, window = _layout(tables, jitter, size)
    coverage, paint = _render_objects(rows, size, window)
    # paste every patch into a padded canvas by flat index (patches never overlap
    # where they cover anything: each object stays inside its own cell)
    pad = window // 2 + 1  # a patch pokes out of the picture by less than this
    side = size + 2 * pad
    ys = rows[:, 7, None, None].long() + pad + torch.arange(window)[None, :, None]
    xs = rows[:, 6, None, None].long() + pad + torch.arange(window)[None, None, :]
    flat = (scene[:, None, None] * side + ys) * side + xs  # (O, P, P)
    label = (coverage > 0.5).float() * (rows[:, 0, None, None] + 1)
    layers = torch.cat([coverage[:, None], paint, label[:, None]], dim=1)
    canvas = torch.zeros(n * side * side, 5).index_add_(
        0, flat.flatten(), rearrange(layers, "o c h w -> (o h w) c")
    )
    canvas = rearrange(canvas, "(n h w) c -> n c h w", n=n, h=side)
    canvas = canvas[:, :, pad : pad + size, pad : pad + size]
    alpha, paint, label = canvas[:, :1], canvas[:, 1:4], canvas[:, 4]
    images = _background(background, size) * (1 - alpha) + paint
    return images.clamp(0, 1), label.round().long()


def make_scenes(
    n: int, size: int = 32, split: str = "train", seed: int = 0, start: int = 0
) -> Scenes:
    """Scenes ``start`` to ``start + n - 1`` of ``split``: each the same whatever n."""
    check_size(size)
    split_id = check_split(split)
    if not isinstance(n, int) or n < 0 or not isinstance(start, int) or start < 0:
        raise ValueError(
            f"n and start must be whole numbers >= 0, got {n!r}, {start!r}"
        )
    drawn = [_draw_scene(seed, split_id, i) for i in range(start, start + n)]
    tables = torch.as_tensor(np.stack([d[0] for d in drawn])).reshape(n, 9, 4)
    jitter = torch.as_tensor(np.stack([d[1] for d in drawn]), dtype=torch.float32)
    background = torch.as_tensor(np.stack([d[2] for d in drawn]), dtype=torch.float32)
    images, segmentation = [], []
    for chunk in range(0, n, 1000):  # bounds the memory of the 4x-resolution patches
        part = slice(chunk, chunk + 1000)
        image, labels = render(tables[part], jitter[part], background[part], size)
        images.append(image)
        segmentation.append(labels)
    empty = torch.zeros(0, size, size)
    return Scenes(
        images=torch.cat(images) if images else empty[:, None].expand(0, 3, -1, -1),
        segmentation=torch.cat(segmentation) if segmentation else empty.long(),
        attributes=tables,
        captions=[caption(t, style) for t, (*_, style) in zip(tables, drawn)],
    )


# ---------------------------------------------------------------- captions

_TEXTURE_WORDS = {  # style 2 says "with stripes" after the shape, "plain" before
    "solid": "plain",
    "striped": "with stripes",
    "dotted": "with dots",
}


def _describe(row: list[int], style: int) -> str:
    shape, colour, size, texture = (
        SHAPES[row[0]],
        COLOUR_NAMES[row[1]],
        SIZES[row[2]],
        TEXTURES[row[3]],
    )
    if style == 2:
        words = _TEXTURE_WORDS[TEXTURES[row[3]]]
        if texture == "solid":
            return f"a {size} {words} {colour} {shape}"
        return f"a {size} {colour} {shape} {words}"
    return f"a {size} {colour} {texture} {shape}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(attributes: torch.Tensor, style: int = 0) -> str:
    """An English caption of one scene's (9, 4) table; every style names all of it.

    0: "a small red striped circle at the top left and a large blue solid
    square at the centre"; 1: "top left: a small red striped circle; centre:
    ..."; 2: "there is a small red circle with stripes in the top left and a
    large plain blue square in the centre".
    """
    table = torch.as_tensor(attributes)
    if table.shape != (9, 4):
        raise ValueError(f"expected one scene's (9, 4) table, got {tuple(table.shape)}")
    if style not in range(CAPTION_STYLES):
        raise ValueError(
            f"caption style must be 0 to {CAPTION_STYLES - 1}, got {style!r}"
        )
    objects = [
        (POSITIONS[c], row) for c, row in enumerate(table.tolist()) if row[0] >= 0
    ]
    if not objects:
        raise ValueError("a scene to caption needs at least one object")
    if style == 0:
        return _join([f"{_describe(row, 0)} at the {where}" for where, row in objects])
    if style == 1:
        return "; ".join(f"{where}: {_describe(row, 1)}" for where, row in objects)
    return "there is " + _join(
        [f"{_describe(row, 2)} in the {where}" for where, row in objects]
    )


_VOCABULARY = {
    **{word: (0, i) for i, word in enumerate(SHAPES)},
    **{word: (1, i) for i, word in enumerate(COLOUR_NAMES)},
    **{word: (2, i) for i, word in enumerate(SIZES)},
    **{word: (3, i) for i, word in enumerate(TEXTURES)},
    "plain": (3, 0),
    "stripes": (3, 1),
    "dots": (3, 2),
}
_FILLER = ("a", "an", "the", "at", "in", "and", "there", "is", "with")


def _vocabulary_help() -> str:
    return (
        f"captions name shapes ({', '.join(SHAPES)}), colours "
        f"({', '.join(COLOUR_NAMES)}), sizes ({', '.join(SIZES)}), textures "
        f"({', '.join(TEXTURES)}, or plain / with stripes / with dots), positions "
        f"({', '.join(POSITIONS)}) and the words {', '.join(_FILLER)}"
    )


def parse_caption(text: str) -> torch.Tensor:
    """A caption back to its (9, 4) table: the inverse of :func:`caption`.

    Any order of words within an object works: an object is complete once it
    has a position and all four attributes, and the next word starts another.
    """
    words = re.sub(r"[,;:.]", " ", text.lower()).split()
    table = torch.full((9, 4), -1, dtype=torch.long)
    current: dict[str, int] = {}
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2])
        word = pair if pair in POSITIONS else words[i]
        i += len(word.split())
        if word in _FILLER:
            continue
        if word in POSITIONS:
            field, value = "position", POSITIONS.index(word)
        elif word in _VOCABULARY:
            slot, value = _VOCABULARY[word]
            field = ATTRIBUTES[slot]
        else:
            raise ValueError(
                f"unknown word {word!r} in the caption {text!r}; {_vocabulary_help()}"
            )
        if field in current:
            raise ValueError(
                f"the caption {text!r} gives one object two {field}s ({word!r} is "
                f"the second); {_vocabulary_help()}"
            )
        current[field] = value
        if len(current) == 5:  # position and the four attributes: one object
            cell = current.pop("position")
            if table[cell, 0] >= 0:
                raise ValueError(
                    f"the caption {text!r} puts two objects at the {POSITIONS[cell]}"
                )
            table[cell] = torch.tensor([current[a] for a in ATTRIBUTES])
            current = {}
    missing = [f for f in ("position", *ATTRIBUTES) if f not in current]
    if current or not (table[:, 0] >= 0).any():
        raise ValueError(
            f"the caption {text!r} ends in an incomplete object (no {', '.join(missing)}); "
            f"every object needs a position, shape, colour, size and texture"
        )
    return table


# ---- chapter 5: labels, one-hot maps and tiled scenes for the priors ----


def first_object(attributes: torch.Tensor, attribute: str = "colour") -> torch.Tensor:
    """One attribute of each scene's first object in reading order, ``(N,)``,
    or -1 for a scene without objects (e.g. a generated picture the judge
    finds empty). Chapter 5's class label: a raster-order prior writes that
    object first, so the class decides the first object it draws."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; use one of {ATTRIBUTES}")
    present = attributes[..., 0] >= 0  # (N, 9)
    first = present.float().argmax(-1)  # the first occupied cell
    value = attributes[..., ATTRIBUTES.index(attribute)].gather(-1, first[:, None])
    return torch.where(present.any(-1), value[:, 0], -1)


def one_hot_segmentation(segmentation: torch.Tensor) -> torch.Tensor:
    """``(N, S, S)`` class maps -> ``(N, 1 + len(SHAPES), S, S)`` float one-hot:
    the picture a segmentation encoder reads."""
    classes = 1 + len(SHAPES)
    if segmentation.min() < 0 or segmentation.max() >= classes:
        raise ValueError(
            f"segmentation classes must lie in [0, {classes}) (0 background, "
            f"1 + shape index); got {segmentation.min()}..{segmentation.max()}"
        )
    return rearrange(F.one_hot(segmentation, classes).float(), "n h w c -> n c h w")


def tile(tensor: torch.Tensor, per_side: int = 2) -> torch.Tensor:
    """Put ``per_side ** 2`` consecutive scenes side by side: ``(N, ..., S, S)``
    -> ``(N / per_side ** 2, ..., per_side * S, per_side * S)``, row-major. A
    tiled picture is a larger scene whose every quarter looks like training data."""
    group = per_side**2
    if len(tensor) % group:
        raise ValueError(
            f"tile needs a multiple of {group} scenes, got {len(tensor)}; "
            f"pass tensor[: {len(tensor) // group * group}]"
        )
    return rearrange(
        tensor, "(n i j) ... h w -> n ... (i h) (j w)", i=per_side, j=per_side
    )


def untile(tensor: torch.Tensor, per_side: int = 2) -> torch.Tensor:
    """The inverse of :func:`tile`: each quarter back as a scene of its own."""
    return rearrange(
        tensor, "n ... (i h) (j w) -> (n i j) ... h w", i=per_side, j=per_side
    )
