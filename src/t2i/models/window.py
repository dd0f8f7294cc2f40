"""Sampling a code grid larger than the transformer's window (chapter 5).

A conditional prior trained on ``k x k`` code windows reads the sequence
``[n condition tokens | n image tokens]``, ``n = k * k``, both in raster order.
Image codes are token ids ``0 ... K - 1``; condition codes come offset by the
caller to ``K ... K + Kc - 1``. To sample an ``H x W`` grid with ``H, W >= k``,
taming-transformers' ``scripts/sample_conditional.py`` slides the window: every
cell (i, j) gets its own ``k x k`` window, centred on it where it can be and
pushed back inside the grid at the borders::

    grid 6 x 6, window 4 (k // 2 = 2), cell (1, 4) = X

          columns 0 1 2 3 4 5
       row 0      . . # # # #    rows:    start = clamp(1 - 2, 0, 6 - 4) = 0
           1      . . # # X #    columns: start = clamp(4 - 2, 0, 6 - 4) = 2
           2      . . # # # #    X sits at (1, 2) inside its window (#)
           3      . . # # # #
           4      . . . . . .
           5      . . . . . .

Inside the window the model reads the condition window and then the image
window, and the logit at the cell's local index gives its code. The cells
after it in the window hold codes not sampled yet (random at first); the
causal mask keeps them from the logit, *if* the logit is read at the right
position. Position t predicts token t + 1, so::

    tokens     c_0 ... c_{n-1} x_0 ... x_{n-2} x_{n-1}
    positions  0   ... n-1     n   ... 2n-2    2n-1
    correct:   feed 2n - 1 tokens, logits n - 1 ... 2n - 2 predict x_0 ... x_{n-1}
    off by one: feed all 2n, read n ... 2n - 1: the logit "for" x_m has read
               x_m itself (still random) and predicts x_{m+1}

The off-by-one reading is taming issue #65 (the book's "511-token demo": 512
tokens, 511 fed, the image logits are positions 255 ... 510). It gives broken
pictures: each cell is drawn from the model's guess for the *next* cell, a
guess that has read the cell's own random code.

On a grid the size of the window the sliding sampler is plain autoregressive
sampling (tested against ``Transformer.generate``). The window's price is
compute: no key/value cache, one full pass over ``2n - 1`` tokens per cell;
:func:`sampling_flops` counts it.
References: Esser et al., "Taming Transformers for High-Resolution Image
Synthesis", arXiv:2012.09841; CompVis/taming-transformers,
scripts/sample_conditional.py and issue #65.
"""

from __future__ import annotations

import torch
from einops import rearrange

from ..sample import sample_logits
from .transformer import Transformer, TransformerConfig

READINGS = ("correct", "off_by_one")


def check_reading(reading: str) -> None:
    if reading not in READINGS:
        raise ValueError(
            f"unknown reading {reading!r}; use 'correct' (feed 2n - 1 tokens, read "
            f"positions n - 1 ... 2n - 2) or 'off_by_one' (the bug, kept for the demo)"
        )


def window_start(position: int, size: int, window: int) -> int:
    """First row (or column) of the ``window`` that samples ``position``.

    Centred (``window // 2`` cells before the position) and clamped into
    ``0 ... size - window``. For even windows this is taming's rule exactly;
    taming's literal rule (``local = window - (size - position)`` only when
    ``size - position < window // 2``) runs one cell off the grid for odd
    windows at the position where ``size - position == window // 2``.
    """
    if not 1 <= window <= size:
        raise ValueError(
            f"a window of {window} does not fit a grid side of {size}; use a window "
            f"between 1 and {size}, or sample a grid this small with model.generate"
        )
    if not 0 <= position < size:
        raise ValueError(f"position {position} lies outside a grid side of {size}")
    return min(max(position - window // 2, 0), size - window)


def image_logits(
    model: Transformer,
    condition_tokens: torch.Tensor,
    image_tokens: torch.Tensor,
    reading: str = "correct",
) -> torch.Tensor:
    """The logits ``(B, n, V)`` a reading assigns to image tokens ``0 ... n - 1``.

    ``condition_tokens`` and ``image_tokens`` are ``(B, n)`` windows in raster
    order. ``"correct"`` feeds ``2n - 1`` tokens and takes positions
    ``n - 1 ... 2n - 2``; ``"off_by_one"`` feeds all ``2n`` and takes
    ``n ... 2n - 1`` (taming issue #65), kept to show what goes wrong.
    """
    check_reading(reading)
    if condition_tokens.ndim != 2 or condition_tokens.shape != image_tokens.shape:
        raise ValueError(
            "condition_tokens and image_tokens must both be (batch, n) windows of the "
            f"same shape, got {tuple(condition_tokens.shape)} and "
            f"{tuple(image_tokens.shape)}"
        )
    n = condition_tokens.shape[1]
    sequence = torch.cat([condition_tokens, image_tokens], dim=1)  # (B, 2n)
    if reading == "correct":
        return model(sequence[:, :-1])[:, n - 1 :]
    return model(sequence)[:, n:]


@torch.no_grad()
def sliding_window_sample(
    model: Transformer,
    condition: torch.Tensor,
    window: int,
    num_image_codes: int,
    *,
    start: torch.Tensor | None = None,
    reading: str = "correct",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Image codes ``(B, H, W)`` for offset condition tokens ``(B, H, W)``.

    Cells are sampled in raster order, each from the ``window x window``
    window :func:`window_start` places around it. Only the first
    ``num_image_codes`` logits (the image vocabulary) compete. ``start`` are
    the codes the grid holds before sampling; by default uniform random codes
    drawn from ``generator`` (the correct reading never looks at them).
    """
    if condition.ndim != 3:
        raise ValueError(
            "condition must be a (batch, H, W) grid of offset condition tokens, got "
            f"shape {tuple(condition.shape)}; add a batch axis with condition[None]"
        )
    b, h, w = condition.shape
    if window > min(h, w):
        raise ValueError(
            f"the grid {h} x {w} is smaller than the window {window} x {window}; "
            f"pick window <= {min(h, w)}, or condition on a larger grid"
        )
    vocab = model.config.vocab_size
    if not 1 <= num_image_codes <= vocab:
        raise ValueError(
            f"num_image_codes must lie in 1 ... vocab_size ({vocab}), got "
            f"{num_image_codes}; image codes are the first ids of the vocabulary"
        )
    check_reading(reading)
    if start is None:
        device = "cpu" if generator is None else generator.device
        start = torch.randint(
            0, num_image_codes, (b, h, w), generator=generator, device=device
        )
    if start.shape != condition.shape:
        raise ValueError(
            f"start must match the condition grid {tuple(condition.shape)}, got "
            f"{tuple(start.shape)}; pass one initial image code per condition cell"
        )
    codes = start.to(condition.device).clone()
    flat = "b h w -> b (h w)"
    for i in range(h):
        top = window_start(i, h, window)
        for j in range(w):
            left = window_start(j, w, window)
            rows, cols = slice(top, top + window), slice(left, left + window)
            logits = image_logits(
                model,
                rearrange(condition[:, rows, cols], flat),
                rearrange(codes[:, rows, cols], flat),
                reading,
            )  # (B, n, V)
            cell = (i - top) * window + (j - left)  # the cell's index in its window
            codes[:, i, j] = sample_logits(
                logits[:, cell, :num_image_codes], temperature, top_k, top_p, generator
            )
    return codes


def sampling_flops(
    config: TransformerConfig, grid: int, window: int | None = None
) -> float:
    """Matmul FLOPs to sample a ``grid x grid`` image on a ``grid x grid`` condition.

    A matmul of ``(m, k) @ (k, n)`` costs ``2 m k n``. Per token and layer
    (``d = n_embd``): the projections and the MLP cost ``24 d^2``
    (query, key, value, out: ``4 * 2 d^2``; MLP ``2 * 2 * 4 d^2``), attention
    to ``c`` keys costs ``4 d c`` (scores and weighted sum). The token at
    position ``p`` of a causal pass reads ``c = p + 1`` keys, so a pass over
    ``T`` tokens costs ``T * 24 d^2 + 2 d T (T + 1)`` per layer. The output
    head and the embeddings are left out.

    * ``window=None``: full attention with a key/value cache. The ``N = grid^2``
      condition tokens are read in one pass, then the ``N - 1`` sampled tokens
      that still have a successor one at a time, each attending to all before
      it: together one causal pass over ``2N - 1`` tokens, ``O(N^2)`` in the
      grid area ``N``.
    * ``window=k``: taming's sliding window, one full pass over ``2k^2 - 1``
      tokens for each of the ``N`` cells, no cache: linear in ``N``. At
      ``grid == k`` this is exactly ``k^2`` times the cached cost, since each
      step redoes, from scratch, all the work the cache does once.
    """
    if window is not None:
        window_start(0, grid, window)  # the window must fit the grid
    d, area = config.n_embd, grid * grid

    def causal_pass(tokens: int) -> float:
        return config.n_layer * (tokens * 24 * d**2 + 2 * d * tokens * (tokens + 1))

    if window is None:
        return float(causal_pass(2 * area - 1))
    return float(area * causal_pass(2 * window * window - 1))
