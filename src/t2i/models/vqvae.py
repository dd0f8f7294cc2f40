"""VQ-VAE: an autoencoder whose code is a grid of indices into a learned codebook.

    image (C, s, s) --encoder--> z (D, s/4, s/4) --quantise--> z_q --decoder--> image

The encoder is the chapter-1 conv encoder without its final linear layer: two
stride-2 convolutions and residual blocks, then a 1x1 convolution to the code
size D. Every cell of the resulting ``s/4 x s/4`` grid is quantised on its own
(see :mod:`t2i.quantize`), so an MNIST digit becomes 7 x 7 = 49 code indices
and a CIFAR-10 image 8 x 8 = 64. The decoder mirrors the encoder.
Reference: van den Oord et al., "Neural Discrete Representation Learning",
arXiv:1711.00937.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ResidualBlock, check_images
from ..quantize import Quantized, VectorQuantizer, VQConfig
from ..validate import check_code_grids, check_non_negative, check_sizes


@dataclass(frozen=True)
class VQVAEConfig:
    in_channels: int = 1
    image_size: int = 28
    channels: tuple[int, ...] = (32, 64)  # one stride-2 stage per entry
    residual_blocks: int = 1
    vq: VQConfig = field(default_factory=VQConfig)
    # the decoder draws the difference from this grey level (see configs.vqvae2)
    output_offset: float = 0.0

    def __post_init__(self):
        check_sizes(self, "in_channels", "image_size", "channels")
        check_non_negative(self, "residual_blocks")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(
                f"VQVAEConfig.image_size {self.image_size} must be divisible by "
                f"2**{len(self.channels)} (one halving per entry of channels)"
            )

    @property
    def grid_size(self) -> int:
        return self.image_size // 2 ** len(self.channels)


def conv_encoder(
    in_channels: int, channels: tuple[int, ...], residual_blocks: int, out: int
) -> nn.Sequential:
    """One stride-2 convolution per entry of ``channels``, residual blocks, then
    a 1x1 convolution to ``out`` channels per cell (code vectors or, in the
    dVAE of chapter 6, logits over the codebook)."""
    down, previous = [], in_channels
    for width in channels:
        down += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.GELU()]
        previous = width
    return nn.Sequential(
        *down,
        *[ResidualBlock(previous) for _ in range(residual_blocks)],
        nn.GELU(),
        nn.Conv2d(previous, out, 1),
    )


def conv_decoder(
    code_dim: int, channels: tuple[int, ...], residual_blocks: int, out: int
) -> nn.Sequential:
    """The encoder's mirror: code vectors ``(B, code_dim, h, w)`` -> ``out`` channels."""
    widths = list(reversed(channels))
    up = []
    for width, next_width in zip(widths, widths[1:] + [out]):
        up += [nn.GELU(), nn.ConvTranspose2d(width, next_width, 4, stride=2, padding=1)]
    return nn.Sequential(
        nn.Conv2d(code_dim, widths[0], 3, padding=1),
        *[ResidualBlock(widths[0]) for _ in range(residual_blocks)],
        *up,
    )


class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        c, d = config.channels, config.vq.code_dim
        self.encoder = conv_encoder(config.in_channels, c, config.residual_blocks, d)
        self.quantizer = VectorQuantizer(config.vq)
        self.decoder = conv_decoder(d, c, config.residual_blocks, config.in_channels)

    def encode(self, x: torch.Tensor) -> Quantized:
        """Images -> quantised code vectors, their indices ``(B, h, w)``, VQ loss."""
        check_images(x, self.config.in_channels, self.config.image_size)
        return self.quantizer(self.encoder(x))

    def decode(self, vectors: torch.Tensor) -> torch.Tensor:
        """Code vectors ``(B, D, h, w)`` -> images (unclamped)."""
        return self.decoder(vectors) + self.config.output_offset

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """A grid of code indices ``(B, h, w)`` -> images: what a prior's samples become."""
        g, k = self.config.grid_size, self.config.vq.num_codes
        check_code_grids(indices, "code indices", g, k)
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).vectors)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0]
        quantized = self.encode(x)
        reconstruction = F.mse_loss(self.decode(quantized.vectors), x)
        return {
            "loss": reconstruction + quantized.loss,
            "reconstruction": reconstruction,
            "vq": quantized.loss,
            "perplexity": quantized.perplexity,
            "codes_used": torch.tensor(
                float(quantized.indices.unique().numel()), device=x.device
            ),
        }

    def codes(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Code grids ``(N, h, w)`` of a whole data set, in eval mode (no codebook updates)."""
        return code_grids(self, images, batch_size)


@torch.no_grad()
def code_grids(model: nn.Module, images: torch.Tensor, batch_size: int = 500):
    """``model.encode(...).indices`` of a whole data set, in chunks, in eval
    mode (no codebook updates), on the CPU; the model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    grids = [
        model.encode(chunk.to(device)).indices.cpu()
        for chunk in images.split(batch_size)
    ]
    model.train(was_training)
    return torch.cat(grids)


def bits_per_image(config: VQVAEConfig) -> float:
    """Size of one image's code: ``h * w * log2 K`` bits."""
    return config.grid_size**2 * math.log2(config.vq.num_codes)
