"""The autoencoder: compress an image to a few numbers, then rebuild it.

    z = e(x),   x_hat = d(z),   loss = mean (x - x_hat)^2

Nothing constrains where in latent space the codes land; the book's first
chapter shows why that makes the latent space impossible to sample from.
Reference: Hinton & Salakhutdinov, "Reducing the dimensionality of data with
neural networks", Science 2006.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..nn import ConvDecoder, ConvEncoder, check_images
from ..validate import check_sizes


@dataclass(frozen=True)
class AEConfig:
    image_size: int = 28
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64)  # encoder widths; each stage halves the side
    latent_dim: int = 2

    def __post_init__(self):
        check_sizes(self, "image_size", "in_channels", "channels", "latent_dim")


class AutoEncoder(nn.Module):
    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        self.encoder = ConvEncoder(
            config.in_channels, config.channels, config.image_size, config.latent_dim
        )
        self.decoder = ConvDecoder(
            config.latent_dim, config.channels, config.image_size, config.in_channels
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> codes ``(B, latent_dim)``."""
        check_images(x, self.config.in_channels, self.config.image_size)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, latent_dim)`` -> images ``(B, C, H, W)`` (clamp to [0, 1] to show)."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"expected codes of shape (batch, {self.config.latent_dim}), got {tuple(z.shape)}"
            )
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0]
        mse = F.mse_loss(self(x), x)
        return {"loss": mse}


@torch.no_grad()
def pca_reconstruction(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Project ``test`` onto the top-``k`` principal components of ``train`` and back.

    PCA is the best *linear* encoder/decoder pair with a k-number code (in
    squared error), so it is the baseline a nonlinear autoencoder has to beat.
    Like the autoencoder's, its output is not clamped to [0, 1] (clamping
    would lower PCA's error by up to 9% and make the comparison unequal).
    """
    flat = rearrange(train, "n c h w -> n (c h w)")
    mean = flat.mean(0)
    _, _, v = torch.linalg.svd(flat - mean, full_matrices=False)
    basis = v[:k]  # (k, C*H*W), orthonormal rows
    centred = rearrange(test, "n c h w -> n (c h w)") - mean
    rebuilt = centred @ basis.T @ basis + mean
    return rebuilt.reshape(test.shape)
