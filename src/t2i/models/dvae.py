"""DALL·E's discrete VAE: codes chosen by a relaxed sample, not a nearest neighbour.

    image --encoder--> logits (K, h, w) --Gumbel-softmax(tau)--> soft one-hot
          --(x) codebook (K, D)--> code vectors (D, h, w) --decoder--> image

A VQ-VAE picks each cell's code by the nearest codebook vector and passes the
gradient straight through that choice (chapter 3). The dVAE instead has the
encoder output a distribution over the K codes and trains on a *sample* of
it, made differentiable by the Gumbel-softmax relaxation: add Gumbel(0, 1)
noise ``g`` to the logits and take a softmax at temperature ``tau``,

    y = softmax((logits + g) / tau).

As tau -> 0, ``y`` becomes the one-hot of ``argmax(logits + g)``, an exact
sample of ``softmax(logits)`` (the Gumbel-max trick); at large tau it is a blur
of many codes. Training anneals tau from 1 to 1/16, and the loss is an
evidence lower bound: the reconstruction error plus beta times the KL
divergence from the encoder's distribution to the uniform prior over codes,
with beta raised from 0 to 6.6. Encoding for the transformer takes the
argmax, with no noise, as DALL·E does.

Both terms are per pixel value, in nats: the reconstruction is the
negative log-likelihood of a Gaussian with a fixed ``sigma`` (squared error /
2 sigma^2, up to a constant), the KL is summed over the grid and divided by
the number of pixel values. DALL·E's own reconstruction term is the
logit-Laplace likelihood on pixels squeezed into [eps, 1 - eps]
(:func:`map_pixels`); the chapter says why this book keeps a Gaussian.
Reference: Ramesh et al., "Zero-Shot Text-to-Image Generation",
arXiv:2102.12092; Jang et al., arXiv:1611.01144; Maddison et al.,
arXiv:1611.00712.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import einsum
from torch import nn

from ..nn import check_images
from ..validate import check_code_grids, check_non_negative, check_sizes
from .vqvae import conv_decoder, conv_encoder

LOGIT_LAPLACE_EPS = 0.1  # openai/DALL-E's map_pixels


@dataclass(frozen=True)
class DVAEConfig:
    in_channels: int = 3
    image_size: int = 32
    channels: tuple[int, ...] = (48, 48)  # one stride-2 stage per entry
    residual_blocks: int = 1
    num_codes: int = 64
    code_dim: int = 32
    output_offset: float = 0.85  # the decoder draws the difference from this grey
    sigma: float = 0.1  # of the Gaussian likelihood: squared error / (2 sigma^2)
    tau_start: float = 1.0
    tau_end: float = 1 / 16
    tau_steps: int = 1000  # cosine annealing of tau over these training steps
    kl_weight: float = 6.6  # beta at the end of its schedule
    kl_steps: int = 1000  # cosine rise of beta from 0 over these steps
    straight_through: bool = False  # one-hot forward, relaxed gradient ("hard")

    def __post_init__(self):
        check_sizes(self, "in_channels", "image_size", "channels", "num_codes")
        check_sizes(self, "code_dim", "tau_steps", "kl_steps")
        check_non_negative(self, "residual_blocks", "kl_weight")
        if not 0 < self.tau_end <= self.tau_start:
            raise ValueError(
                f"DVAEConfig needs 0 < tau_end <= tau_start, got "
                f"{self.tau_end} and {self.tau_start}"
            )
        if self.sigma <= 0:
            raise ValueError(f"DVAEConfig.sigma must be > 0, got {self.sigma}")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(
                f"DVAEConfig.image_size {self.image_size} must be divisible by "
                f"2**{len(self.channels)} (one halving per entry of channels)"
            )

    @property
    def grid_size(self) -> int:
        return self.image_size // 2 ** len(self.channels)


def cosine(start: float, end: float, step, steps: int):
    """Half a cosine from ``start`` (step 0) to ``end`` (step ``steps`` and after).

    ``step`` may be an int or a tensor, and the result is the same kind. The
    training loss passes the step buffer itself: a float read out of it would
    be a new constant to ``torch.compile`` at every step, and recompile it.
    """
    if isinstance(step, torch.Tensor):
        progress = step.clamp(max=steps).double() / steps
        return end + (start - end) * 0.5 * (1 + torch.cos(math.pi * progress))
    progress = min(step, steps) / steps
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


def gumbel_softmax(logits: torch.Tensor, tau: float, noise: torch.Tensor | None):
    """The formula written out: ``softmax((logits + g) / tau)`` over dim 1,
    with ``g = -log(-log u)``, ``u ~ U(0, 1)`` unless ``noise`` gives ``g``.
    Training calls ``F.gumbel_softmax``; the tests check the two agree in
    distribution, and the chapter's widget uses this one to hold ``g`` fixed."""
    if noise is None:
        u = torch.rand_like(logits).clamp(1e-10, 1 - 1e-10)
        noise = -torch.log(-torch.log(u))
    return ((logits + noise) / tau).softmax(dim=1)


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(q || uniform) of ``q = softmax(logits)`` over dim 1, per cell
    ``(B, h, w)``: ``log K - H(q)``, in nats."""
    log_q = logits.log_softmax(dim=1)
    return (log_q.exp() * log_q).sum(dim=1) + math.log(logits.shape[1])


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy in nats over dim 1 of a (relaxed) assignment, per cell."""
    return -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1)


def map_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """DALL·E squeezes pixels into [eps, 1 - eps] before its logit-Laplace
    likelihood, whose support is the open interval (0, 1)."""
    return (1 - 2 * eps) * x + eps


def unmap_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """The inverse of :func:`map_pixels`, clamped to [0, 1]."""
    return ((x - eps) / (1 - 2 * eps)).clamp(0, 1)


class DVAE(nn.Module):
    def __init__(self, config: DVAEConfig):
        super().__init__()
        self.config = config
        c, k, d = config.channels, config.num_codes, config.code_dim
        # the encoder's last layer outputs K logits per cell, not a code vector
        self.encoder = conv_encoder(config.in_channels, c, config.residual_blocks, k)
        self.codebook = nn.Parameter(torch.randn(k, d) / math.sqrt(d))
        self.decoder = conv_decoder(d, c, config.residual_blocks, config.in_channels)
        # training steps taken, in a buffer: a resumed run continues the schedules
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def tau(self, step: int | None = None) -> float:
        c = self.config
        step = int(self.step) if step is None else step
        return cosine(c.tau_start, c.tau_end, step, c.tau_steps)

    def kl_weight(self, step: int | None = None) -> float:
        c = self.config
        step = int(self.step) if step is None else step
        return cosine(0.0, c.kl_weight, step, c.kl_steps)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> logits over the codebook ``(B, K, h, w)``."""
        check_images(x, self.config.in_channels, self.config.image_size)
        return self.encoder(x)

    def decode_soft(self, assignment: torch.Tensor) -> torch.Tensor:
        """A (soft or one-hot) assignment ``(B, K, h, w)`` -> images: the decoder
        sees the assignment-weighted mixture of codebook vectors."""
        vectors = einsum(assignment, self.codebook, "b k h w, k d -> b d h w")
        return self.decoder(vectors) + self.config.output_offset

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> code indices ``(B, h, w)``: the argmax, no noise (DALL·E)."""
        return self.logits(x).argmax(dim=1)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """A grid of code indices ``(B, h, w)`` -> images."""
        g, k = self.config.grid_size, self.config.num_codes
        check_code_grids(indices, "code indices", g, k)
        one_hot = F.one_hot(indices, k).permute(0, 3, 1, 2).to(self.codebook.dtype)
        return self.decode_soft(one_hot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the hard codes, as the transformer's codes decode."""
        return self.decode_indices(self.encode(x))

    def codes(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Code grids ``(N, h, w)`` of a whole data set, in chunks, on the CPU."""
        was_training = self.training
        self.eval()
        device = self.codebook.device
        with torch.no_grad():
            grids = [self.encode(c.to(device)).cpu() for c in images.split(batch_size)]
        self.train(was_training)
        return torch.cat(grids)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0]
        c = self.config
        # tensors from the step buffer, not floats (see cosine)
        tau = cosine(c.tau_start, c.tau_end, self.step, c.tau_steps).float()
        beta = cosine(0.0, c.kl_weight, self.step, c.kl_steps).float()
        logits = self.logits(x)
        soft = F.gumbel_softmax(logits, tau=tau, hard=c.straight_through, dim=1)
        squared = F.mse_loss(self.decode_soft(soft), x)
        reconstruction = squared / (2 * c.sigma**2)
        kl = kl_to_uniform(logits).sum(dim=(1, 2)).mean() / x[0].numel()
        indices = logits.argmax(dim=1)
        if self.training:
            self.step += 1
        return {
            "loss": reconstruction + beta * kl,
            "reconstruction": reconstruction,
            "mse": squared.detach(),
            "kl": kl.detach(),
            "tau": tau,
            "kl_weight": beta,
            "entropy": entropy(logits.softmax(dim=1)).mean().detach(),
            "codes_used": torch.tensor(float(indices.unique().numel())),
        }


def bits_per_image(config: DVAEConfig) -> float:
    """Size of one image's code: ``h * w * log2 K`` bits."""
    return config.grid_size**2 * math.log2(config.num_codes)
