"""Gated PixelCNN: an autoregressive prior over a grid of discrete codes.

The grid is read in raster order (row by row, left to right) and the model
predicts each code from the codes before it:

    p(c) = prod_t p(c_t | c_<t, class)

One convolutional pass computes all these conditionals at once, because the
convolutions are *masked*: the kernel weights that would look at the current
or a later position are zeroed. The first layer uses mask A (the centre is
hidden: position t must not see its own code); later layers use mask B (the
centre is visible, since by then it only holds information about c_<t).

A plain stack of masked k x k convolutions has a *blind spot*: a wedge of
positions up and to the right that it never sees, however deep it is. The
gated PixelCNN splits the network into a vertical stack (all rows above) and
a horizontal stack (the current row to the left) that feeds from it, which
removes the blind spot, and replaces ReLUs by gates
``tanh(W_f * x) * sigmoid(W_g * x)``. A class label enters every gate as a
learned bias (a one-hot vector times a matrix, i.e. an embedding).

Two additions serve VQ-VAE-2's priors (chapter 4). A *spatial* condition, a
whole grid of codes known in advance (the top codes, for the bottom prior),
is embedded, upsampled to this grid and added to every gate through a 1x1
convolution: a bias that differs per position. And optional causal
self-attention blocks, as in PixelSNAIL, let every position read every
earlier one directly instead of through a growing receptive field.
References: van den Oord et al., "Conditional Image Generation with PixelCNN
Decoders", arXiv:1606.05328; Chen et al., "PixelSNAIL", arXiv:1712.09763.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..nn import ResidualBlock
from ..sample import sample_logits
from ..validate import (
    check_code_grids,
    check_non_negative,
    check_probability,
    check_sizes,
)


def causal_mask(kernel_size: int, kind: str, include_centre: bool) -> torch.Tensor:
    """0/1 mask of shape ``(k, k)`` (``(1, k)`` for "horizontal").

    * "full": rows above, and the current row left of the centre (plain PixelCNN);
    * "vertical": rows above only (the centre row too with ``include_centre``,
      which is safe after the first layer because those features already
      depend on rows above alone);
    * "horizontal": the current row left of the centre.
    ``include_centre`` is mask B; without it, mask A.
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    c = kernel_size // 2
    if kind == "horizontal":
        mask = torch.zeros(1, kernel_size)
        mask[0, : c + include_centre] = 1
        return mask
    mask = torch.zeros(kernel_size, kernel_size)
    if kind == "vertical":
        mask[: c + include_centre] = 1
    elif kind == "full":
        mask[:c] = 1
        mask[c, : c + include_centre] = 1
    else:
        raise ValueError(
            f"unknown mask kind {kind!r}; use full, vertical or horizontal"
        )
    return mask


class MaskedConv2d(nn.Conv2d):
    """A same-size convolution whose kernel is multiplied by a fixed causal mask."""

    def __init__(self, in_channels: int, out_channels: int, mask: torch.Tensor):
        kh, kw = mask.shape
        super().__init__(
            in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2)
        )
        self.register_buffer("mask", mask[None, None].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def plain_pixelcnn(channels: int, layers: int, kernel_size: int = 3) -> nn.Sequential:
    """The original PixelCNN body: mask A, then mask B convolutions with ReLUs.

    Used here to show its blind spot next to the gated stacks.
    """
    body: list[nn.Module] = []
    for i in range(layers):
        mask = causal_mask(kernel_size, "full", include_centre=i > 0)
        body += [MaskedConv2d(channels, channels, mask), nn.ReLU()]
    return nn.Sequential(*body[:-1])


def gate(x: torch.Tensor) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` for the two halves of the channel axis."""
    value, gate_ = x.chunk(2, dim=1)
    return torch.tanh(value) * torch.sigmoid(gate_)


class GatedLayer(nn.Module):
    """One vertical + horizontal pair; the vertical stack feeds the horizontal one."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        first: bool,
        num_conditions: int,
        spatial: bool = False,
    ):
        super().__init__()
        b = not first  # mask B everywhere but in the first layer
        self.first = first
        self.vertical = MaskedConv2d(
            channels, 2 * channels, causal_mask(kernel_size, "vertical", b)
        )
        self.horizontal = MaskedConv2d(
            channels, 2 * channels, causal_mask(kernel_size, "horizontal", b)
        )
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.condition = nn.Embedding(num_conditions, 2 * channels)
        # only in priors with a grid condition
        self.spatial = nn.Conv2d(channels, 2 * channels, 1) if spatial else None

    def forward(
        self,
        v: torch.Tensor,
        h: torch.Tensor,
        label: torch.Tensor,
        spatial: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        bias = self.condition(label)[:, :, None, None]
        if spatial is not None:  # (B, C, h, w): a different bias at every position
            bias = bias + self.spatial(spatial)
        v_features = self.vertical(v)
        h_features = self.horizontal(h) + self.vertical_to_horizontal(v_features)
        h_new = self.horizontal_out(gate(h_features + bias))
        if not self.first:  # a residual in layer 1 would pass the current code through
            h_new = h_new + h
        return gate(v_features + bias), h_new


class CausalSelfAttention(nn.Module):
    """Self-attention over the grid in raster order, each position reading
    itself and the positions before it.

    It is applied to the horizontal stack, whose features at position t
    already depend on codes before t only, so reading positions up to t
    (itself included) cannot leak c_t.
    """

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} must be divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.shape[2]
        tokens = rearrange(x, "b c h w -> b (h w) c")
        q, k, v = rearrange(
            self.qkv(self.norm(tokens)),
            "b t (three n d) -> three b n t d",
            three=3,
            n=self.heads,
        )
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        tokens = tokens + self.out(rearrange(mixed, "b n t d -> b t (n d)"))
        return rearrange(tokens, "b (h w) c -> b c h w", h=g)


class GridCondition(nn.Module):
    """A code grid known in advance (the top codes) -> features on this grid.

    Embed, one residual block at the condition's own resolution, nearest
    upsampling to the prior's grid, one 3x3 convolution to smooth the blocks.
    """

    def __init__(self, num_codes: int, grid_size: int, out_size: int, channels: int):
        super().__init__()
        self.embed = nn.Embedding(num_codes, channels)
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            ResidualBlock(channels),
            nn.Upsample(scale_factor=out_size // grid_size, mode="nearest"),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
        )

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.net(rearrange(self.embed(grid), "b h w c -> b c h w"))


@dataclass(frozen=True)
class PixelCNNConfig:
    num_codes: int = 512  # K: the vocabulary (codebook size, or 256 grey levels)
    grid_size: int = 8  # the grid is grid_size x grid_size
    channels: int = 64
    layers: int = 8
    kernel_size: int = 5
    num_classes: int = 10  # 0 for an unconditional model
    class_dropout: float = (
        0.1  # share of examples trained with "no class": one model, both uses
    )
    # a whole code grid as a condition (VQ-VAE-2's bottom prior reads the top codes)
    condition_codes: int = 0  # its vocabulary; 0: no grid condition
    condition_grid: int = 0  # its side; grid_size must be a multiple of it
    attention_blocks: int = 0  # causal self-attention blocks after the gated layers

    def __post_init__(self):
        check_sizes(self, "num_codes", "grid_size", "channels", "layers", "kernel_size")
        check_non_negative(
            self, "num_classes", "condition_codes", "condition_grid", "attention_blocks"
        )
        check_probability(self, "class_dropout", one=False)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"PixelCNNConfig.kernel_size must be odd, got {self.kernel_size}"
            )
        if bool(self.condition_codes) != bool(self.condition_grid) or (
            self.condition_grid and self.grid_size % self.condition_grid
        ):
            raise ValueError(
                f"PixelCNNConfig: a grid condition needs both condition_codes and "
                f"condition_grid, with grid_size ({self.grid_size}) a multiple of "
                f"condition_grid (got {self.condition_codes}, {self.condition_grid})"
            )


class GatedPixelCNN(nn.Module):
    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.embed = nn.Embedding(config.num_codes, c)
        self.layers = nn.ModuleList(
            GatedLayer(
                c,
                config.kernel_size,
                first=i == 0,
                num_conditions=config.num_classes + 1,
                spatial=config.condition_codes > 0,
            )
            for i in range(config.layers)
        )
        self.attention = nn.ModuleList(
            CausalSelfAttention(c) for _ in range(config.attention_blocks)
        )
        self.grid_condition = (
            GridCondition(
                config.condition_codes, config.condition_grid, config.grid_size, c
            )
            if config.condition_codes
            else None
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c, 4 * c, 1),
            nn.ReLU(),
            nn.Conv2d(4 * c, config.num_codes, 1),
        )

    @property
    def no_class(self) -> int:
        """The label index that means "unconditional"."""
        return self.config.num_classes

    def _labels(self, labels: torch.Tensor | None, n: int, device) -> torch.Tensor:
        if labels is None:
            return torch.full((n,), self.no_class, dtype=torch.long, device=device)
        labels = torch.as_tensor(labels, device=device).long()
        if labels.min() < 0 or labels.max() > self.no_class:
            raise ValueError(
                f"labels must lie in [0, {self.config.num_classes}) "
                f"(or {self.no_class} / None for no class), got {labels.tolist()}"
            )
        return labels.expand(n) if labels.ndim == 0 else labels

    def condition_features(
        self, condition: torch.Tensor | None, n: int
    ) -> torch.Tensor | None:
        """The grid condition ``(B, g_c, g_c)`` as features on this grid (or None)."""
        g, k = self.config.condition_grid, self.config.condition_codes
        if self.grid_condition is None:
            if condition is not None:
                raise ValueError(
                    "this PixelCNN has no grid condition (PixelCNNConfig.condition_codes "
                    "is 0); leave condition out or build it with condition_codes"
                )
            return None
        if condition is None:
            raise ValueError(
                f"this PixelCNN is conditioned on a ({g}, {g}) code grid: pass "
                f"condition=<code grids of shape (batch, {g}, {g})>"
            )
        check_code_grids(condition, "condition grids", g, k, batch=n)
        return self.grid_condition(condition)

    def from_embedded(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        spatial: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, K, h, w)`` from embedded codes ``(B, C, h, w)``; also the
        entry point for gradients with respect to the input (receptive fields).
        ``spatial`` is :meth:`condition_features` of the grid condition."""
        labels = self._labels(labels, len(x), x.device)
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, labels, spatial)
        for block in self.attention:
            h = block(h)
        return self.head(h)

    def logits(
        self,
        codes: torch.Tensor,
        labels: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Code grids ``(B, h, w)`` -> logits ``(B, K, h, w)``; position t sees only
        c_<t (and the whole of ``condition``, a grid known in advance)."""
        spatial = self.condition_features(condition, len(codes))
        return self._logits(codes, labels, spatial)

    def _logits(self, codes, labels, spatial) -> torch.Tensor:
        check_code_grids(
            codes, "code grids", self.config.grid_size, self.config.num_codes
        )
        x = self.embed(codes).permute(0, 3, 1, 2)
        return self.from_embedded(
            x, self._labels(labels, len(codes), codes.device), spatial
        )

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Cross-entropy of each code given the codes before it (and the class).

        ``bits_per_code`` is measured on the examples that kept their class
        (all of them outside training), so the training curve and the test
        points measure the same thing; ``loss`` also counts the dropped ones.
        """
        # batch: codes, then the labels (if the model has classes; left out
        # means "no class"), then the grid condition (if it has one)
        codes, rest = batch[0], list(batch[1:])
        condition = rest.pop() if self.config.condition_codes else None
        labels = rest.pop(0) if self.config.num_classes and rest else None
        labels = self._labels(labels, len(codes), codes.device)
        dropped = torch.zeros(len(codes), dtype=torch.bool, device=codes.device)
        if self.training and self.config.class_dropout:
            # per example: this share of the batch is trained without its class
            dropped = (
                torch.rand(len(codes), device=codes.device) < self.config.class_dropout
            )
            labels = labels.masked_fill(dropped, self.no_class)
        nats = F.cross_entropy(
            self.logits(codes, labels, condition), codes, reduction="none"
        ).mean((1, 2))  # (B,) per grid
        kept = nats[~dropped] if (~dropped).any() else nats
        return {"loss": nats.mean(), "bits_per_code": kept.mean() / math.log(2)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        first_code: torch.Tensor | int | None = None,
        on_step: Callable[[torch.Tensor], None] | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` code grids, one position at a time in raster order.

        Each step reruns the whole network and keeps the logits of the next
        position only: ``h * w`` passes per grid, the price of the PixelCNN.
        ``first_code`` fixes the top-left code (the article's "start from a
        random code"); ``on_step`` sees the grid after every position;
        ``condition`` is the grid condition, one per sample (the top codes).
        """
        device = next(self.parameters()).device
        g = self.config.grid_size
        labels = self._labels(labels, n, device)
        if condition is not None:
            condition = condition.to(device)
        spatial = self.condition_features(condition, n)  # computed once per sample
        grid = torch.zeros(n, g, g, dtype=torch.long, device=device)
        for t in range(g * g):
            i, j = divmod(t, g)
            if t == 0 and first_code is not None:
                grid[:, 0, 0] = torch.as_tensor(first_code, device=device)
            else:
                logits = self._logits(grid, labels, spatial)[:, :, i, j]
                grid[:, i, j] = sample_logits(
                    logits, temperature, top_k, top_p, generator
                )
            if on_step is not None:
                on_step(grid)
        return grid


def receptive_field(
    network: Callable[[torch.Tensor], torch.Tensor],
    channels: int,
    size: int,
    position: tuple[int, int],
) -> torch.Tensor:
    """Which input positions the output at ``position`` depends on: ``|d out / d in|``.

    Returns a ``(size, size)`` map; exactly zero where there is no path.
    """
    x = torch.randn(1, channels, size, size, requires_grad=True)
    out = network(x)
    out[0, :, position[0], position[1]].sum().backward()
    return x.grad.abs().sum(dim=(0, 1))
