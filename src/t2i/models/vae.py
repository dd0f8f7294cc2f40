"""The variational autoencoder: a latent space you can sample from.

    encoder:  x -> features -> (mean, log-variance)          q(z | x) = N(mean, diag(var))
    sample:   z = mean + exp(log-variance / 2) * eps,  eps ~ N(0, I)   (reparameterisation)
    decoder:  z -> "up" layer -> features -> pixel logits      p(x | z) = Bernoulli(sigmoid(logits))
    loss:     -ELBO = E_q[-log p(x | z)] + beta * KL(q(z | x) || N(0, I))

With beta = 1 the loss is the negative evidence lower bound (ELBO), in nats per
image, and ``log_likelihood`` tightens it by importance sampling.
Reference: Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from ..nn import ConvDecoder, ConvEncoder, check_images
from ..validate import check_non_negative, check_sizes


@dataclass(frozen=True)
class VAEConfig:
    image_size: int = 28
    in_channels: int = 1
    latent_dim: int = 2
    # "conv": chapter 1's conv blocks; "mlp": two Linear layers each way
    body: str = "conv"
    channels: tuple[int, ...] = (32, 64)  # conv widths (body="conv")
    hidden: int = 256  # features between the body and the mean / log-variance layers
    beta: float = 1.0  # weight of the KL term; 1 gives the true ELBO

    def __post_init__(self):
        check_sizes(
            self, "image_size", "in_channels", "latent_dim", "channels", "hidden"
        )
        check_non_negative(self, "beta")
        if self.body not in ("conv", "mlp"):
            raise ValueError(f"unknown VAE body {self.body!r}; use 'conv' or 'mlp'")


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mean, exp(logvar)) || N(0, I) ) per example, summed over latent dims.

    Closed form for diagonal Gaussians: 0.5 * sum(mean^2 + var - log var - 1).
    """
    return 0.5 * torch.sum(mean.pow(2) + logvar.exp() - logvar - 1, dim=-1)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Sample z ~ N(mean, exp(logvar)) as a differentiable function of mean and logvar.

    The randomness lives in eps, which does not depend on the parameters, so
    gradients flow through mean and std to the encoder.
    """
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return mean + std * eps


def _body(config: VAEConfig) -> tuple[nn.Module, nn.Module]:
    """Encoder body (image -> hidden features) and decoder body (hidden -> pixel logits)."""
    c, s, h = config.in_channels, config.image_size, config.hidden
    if config.body == "conv":
        encoder = nn.Sequential(ConvEncoder(c, config.channels, s, h), nn.GELU())
        decoder = ConvDecoder(h, config.channels, s, c)
    else:  # "mlp", the article's design (VAEConfig allows no other body)
        encoder = nn.Sequential(
            Rearrange("b c h w -> b (c h w)"),
            nn.Linear(c * s * s, h),
            nn.ReLU(),
            nn.Linear(h, h),
            nn.ReLU(),
        )
        decoder = nn.Sequential(
            nn.Linear(h, h),
            nn.ReLU(),
            nn.Linear(h, c * s * s),
            Rearrange("b (c h w) -> b c h w", c=c, h=s, w=s),
        )
    return encoder, decoder


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = _body(config)
        self.mean = nn.Linear(
            config.hidden, config.latent_dim
        )  # the article's "mean layer"
        self.logvar = nn.Linear(config.hidden, config.latent_dim)  # ... and "var layer"
        self.up = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.ReLU())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, C, H, W)`` -> posterior mean and log-variance, each ``(B, latent_dim)``."""
        check_images(x, self.config.in_channels, self.config.image_size)
        features = self.encoder(x)
        return self.mean(features), self.logvar(features)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, latent_dim)`` -> Bernoulli logits ``(B, C, H, W)``."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"expected codes of shape (batch, {self.config.latent_dim}), got {tuple(z.shape)}"
            )
        return self.decoder(self.up(z))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes -> images: the mean of p(x | z), pixel probabilities in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct through the posterior mean (no sampling), for pictures."""
        mean, _ = self.encode(x)
        return self.decode(mean)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Negative ELBO (beta-weighted), in nats per image, with both terms logged."""
        x = batch[0]
        mean, logvar = self.encode(x)
        z = reparameterize(mean, logvar)
        logits = self.decode_logits(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        reconstruction = reconstruction.flatten(1).sum(1).mean()  # -log p(x|z), nats
        kl = kl_to_standard_normal(mean, logvar).mean()
        return {
            "loss": reconstruction + self.config.beta * kl,
            "reconstruction": reconstruction,
            "kl": kl,
        }

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images: z from the prior N(0, I), decoded to pixel probabilities."""
        device = self.mean.weight.device
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(device)
        return self.decode(z)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 128) -> torch.Tensor:
        """Importance-sampled estimate of log p(x) per image, in nats.

        log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,
        z_i ~ q(z|x). It is a lower bound that tightens as k grows; k = 1 gives
        the ELBO.
        """
        mean, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mean + std * torch.randn(k, *mean.shape, device=mean.device)  # (k, B, D)
        logits = self.decode_logits(rearrange(z, "k b d -> (k b) d"))
        target = x.repeat(k, 1, 1, 1)
        log_px_z = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        log_px_z = rearrange(log_px_z.flatten(1).sum(1), "(k b) -> k b", k=k)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = _log_normal(z, mean, logvar)
        return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)


def _log_normal(
    z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last axis."""
    return -0.5 * torch.sum(
        math.log(2 * math.pi) + logvar + (z - mean).pow(2) / logvar.exp(), dim=-1
    )
