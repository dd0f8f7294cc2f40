"""Vector quantisation: snap each encoder vector to its nearest codebook entry.

    index  = argmin_k || z - e_k ||^2                      (a k-means assignment)
    z_q    = e_index
    output = z + sg(z_q - z)                               (straight-through estimator)
    loss   = || sg(z) - z_q ||^2  +  beta * || z - sg(z_q) ||^2
             codebook loss           commitment loss

``sg`` is stop-gradient (``.detach()``). The forward pass outputs the code
vector; the backward pass copies the decoder's gradient to the encoder as if
quantisation were the identity. With ``ema=True`` the codebook is not trained
by the codebook loss but moved towards the mean of the vectors assigned to
each code (an online k-means). With ``restart_dead=True`` codes that stop being
used are re-seeded with encoder outputs from the current batch, the usual cure
for codebook collapse (all codes count as unused at the first step, so this
also initialises the codebook from data).
Reference: van den Oord et al., "Neural Discrete Representation Learning",
arXiv:1711.00937 (appendix for the EMA update).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import distributed
from .validate import check_non_negative, check_probability, check_sizes


@dataclass(frozen=True)
class VQConfig:
    num_codes: int = 512  # K, the codebook size
    code_dim: int = 64  # D, the size of each code vector
    beta: float = 0.25  # commitment weight
    ema: bool = False  # update codes by moving averages instead of the codebook loss
    decay: float = 0.99  # EMA decay
    restart_dead: bool = False  # re-seed codes whose usage falls below dead_usage
    dead_usage: float = 0.03  # EMA of assignments per batch below which a code is dead
    restart_grace: float = 0.1  # a restarted code's usage: ~120 steps to prove itself

    def __post_init__(self):
        check_sizes(self, "num_codes", "code_dim")
        check_non_negative(self, "beta", "dead_usage", "restart_grace")
        check_probability(self, "decay", zero=False, one=False)


@dataclass
class Quantized:
    """What the quantiser returns; always the same fields."""

    # (B, D, H, W), straight-through: forward = codes, backward = identity
    vectors: torch.Tensor
    # (B, H, W) code index per position
    indices: torch.Tensor
    # codebook + commitment (only commitment when ema=True)
    loss: torch.Tensor
    # exp(entropy of code usage in the batch): 1 = collapse, K = uniform
    perplexity: torch.Tensor


# Laplace smoothing of the EMA counts, so a code with no assignments never divides by 0
EMA_SMOOTHING = 1e-5


# Rows of the (rows, K) distance matrix built at once: 2^26 floats (256 MB) keep
# the peak bounded where 65,536 vectors and K = 16,384 would need 4.3 GB
DISTANCE_CHUNK = 2**26


def nearest_codes(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for each row of ``flat`` (squared L2).

    ``||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2``, and ``||z||^2`` is the same for
    every code, so the argmin needs only ``||e||^2 - 2 z.e``: one fused
    matrix product (``addmm``) per chunk of rows.
    """
    squared_norms = codebook.pow(2).sum(1)
    rows = max(DISTANCE_CHUNK // len(codebook), 1)
    return torch.cat(
        [
            torch.addmm(squared_norms, chunk, codebook.T, alpha=-2).argmin(dim=1)
            for chunk in flat.split(rows)
        ]
    )


def in_float32(forward: Callable) -> Callable:
    """Run a quantiser's forward in float32 with autocast off.

    Under bf16 autocast (the training loop's default on a GPU) about 1.4% of
    near-tie vectors would get a code that is not their nearest, and the EMA
    sums would drift. The decoder after it still runs in bf16.
    """

    @functools.wraps(forward)
    def wrapper(self, z: torch.Tensor):
        with torch.autocast(z.device.type, enabled=False):
            return forward(self, z.float())

    return wrapper


class VectorQuantizer(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        k, d = config.num_codes, config.code_dim
        self.codebook = nn.Parameter(torch.empty(k, d).uniform_(-1 / k, 1 / k))
        if config.ema:
            self.codebook.requires_grad_(False)
            # count 1 and sum = the code itself: a code that is never chosen then
            # decays in both and holds still for a while (a zero count would fling
            # it far away). Once its count falls to EMA_SMOOTHING, after
            # log(EMA_SMOOTHING) / log(decay) steps (1,146 at decay 0.99), the
            # smoothing takes over: it shrinks towards 0, where it may win data again.
            self.register_buffer("ema_count", torch.ones(k))
            self.register_buffer("ema_sum", self.codebook.detach().clone())
        # EMA of assignments per batch. It starts at 0, so with restart_dead the
        # first training batch re-seeds every code with an encoder output: the
        # codebook starts where the data is, not in a tiny box around 0.
        self.register_buffer("usage", torch.zeros(k))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code grid ``(B, H, W)`` -> code vectors ``(B, D, H, W)``, for decoding."""
        return rearrange(self.codebook[indices], "b h w d -> b d h w")

    @in_float32
    def forward(self, z: torch.Tensor) -> Quantized:
        """Encoder output ``(B, D, H, W)`` -> quantised vectors, code indices, loss."""
        if z.ndim != 4 or z.shape[1] != self.config.code_dim:
            raise ValueError(
                f"expected encoder output of shape (batch, {self.config.code_dim}, "
                f"height, width), got {tuple(z.shape)}"
            )
        b, _, h, w = z.shape
        flat = rearrange(z, "b d h w -> (b h w) d")
        if self.training and self.config.restart_dead:
            with torch.no_grad():  # before assigning, so this batch already uses them
                self._restart_dead(flat.detach())
        indices = nearest_codes(flat.detach(), self.codebook.detach())
        codes = self.codebook[indices]  # (N, D)
        # assignments per code, counted without an (N, K) one-hot matrix
        counts = torch.bincount(indices, minlength=self.config.num_codes).to(flat.dtype)

        if self.training:
            with torch.no_grad():
                # under torchrun: the counts of the whole batch, over all processes
                total_counts = distributed.all_reduce_sum(counts.clone())
                self.usage.mul_(self.config.decay).add_(
                    total_counts, alpha=1 - self.config.decay
                )
                if self.config.ema:
                    sums = torch.zeros_like(self.codebook).index_add_(
                        0, indices, flat.detach()
                    )  # per code, the sum of the vectors assigned to it
                    self._ema_update(total_counts, distributed.all_reduce_sum(sums))

        commitment = F.mse_loss(flat, codes.detach())
        if self.config.ema:
            loss = self.config.beta * commitment
        else:
            loss = F.mse_loss(codes, flat.detach()) + self.config.beta * commitment
        # forward: the codes; backward: the identity (the straight-through estimator)
        straight_through = flat + (codes - flat).detach()
        probabilities = counts / len(indices)
        perplexity = torch.exp(
            -(probabilities * torch.log(probabilities + 1e-10)).sum()
        )
        return Quantized(
            vectors=rearrange(straight_through, "(b h w) d -> b d h w", b=b, h=h, w=w),
            indices=indices.view(b, h, w),
            loss=loss,
            perplexity=perplexity,
        )

    def _ema_update(self, counts: torch.Tensor, sums: torch.Tensor) -> None:
        """Move each code to the running mean of the vectors assigned to it."""
        decay, k = self.config.decay, self.config.num_codes
        self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
        total = self.ema_count.sum()
        eps = EMA_SMOOTHING  # Laplace smoothing: an unused code does not divide by 0
        smoothed = (self.ema_count + eps) / (total + k * eps) * total
        self.codebook.data.copy_(self.ema_sum / smoothed[:, None])

    def _restart_dead(self, flat: torch.Tensor) -> None:
        """Re-seed codes whose usage has fallen below ``dead_usage`` with batch vectors."""
        dead = (self.usage < self.config.dead_usage).nonzero().squeeze(1)
        if len(dead) == 0:
            return
        if len(flat) >= len(dead):  # distinct vectors, so no two new codes coincide
            pick = torch.randperm(len(flat), device=flat.device)[: len(dead)]
        else:
            pick = torch.randint(len(flat), (len(dead),), device=flat.device)
        chosen = flat[pick]
        distributed.broadcast_tensors([chosen])  # rank 0's picks, on every process
        self.codebook.data[dead] = chosen
        # a fresh code gets restart_grace of usage: time to win data before it is judged
        self.usage[dead] = self.config.restart_grace
        if self.config.ema:
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = chosen


def kmeans(
    points: torch.Tensor, k: int, iterations: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Lloyd's k-means, keeping every step: ``[(centres (k, D), assignment (N,)), ...]``.

    Entry 0 is the start (k random data points); each later entry is one
    round of "assign each point to its nearest centre, move each centre to
    the mean of its points". The assignment step is exactly what the VQ layer
    does to every encoder vector.
    """
    if not 1 <= k <= len(points):
        raise ValueError(
            f"k must lie in [1, {len(points)}] (the number of points), got {k}"
        )
    generator = torch.Generator().manual_seed(seed)
    centres = points[torch.randperm(len(points), generator=generator)[:k]].clone()
    steps = [(centres.clone(), nearest_codes(points, centres))]
    for _ in range(iterations):
        assignment = nearest_codes(points, centres)
        for c in range(k):
            members = points[assignment == c]
            if len(members):  # an empty cluster keeps its centre
                centres[c] = members.mean(0)
        steps.append((centres.clone(), nearest_codes(points, centres)))
    return steps
