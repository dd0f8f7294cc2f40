"""VQ-VAE-2: a VQ-VAE with a hierarchy of code grids, coarse on top of fine.

Two levels, for a 32 x 32 image (the paper's 256 x 256 setup is the same with
every side 8 times longer):

    image (3, 32, 32)
      --bottom encoder (2 halvings)--> h_b (C, 8, 8)
      --top encoder (1 halving)-----> h_t (C, 4, 4) --quantise--> q_t (D, 4, 4)
    q_t --top decoder--> (D, 8, 8), concatenated with h_b --quantise--> q_b (D, 8, 8)
    [q_b, upsample(q_t)] (2D, 8, 8) --decoder--> image

The top grid is quantised first and *decoded into the bottom encoder's
features* before the bottom is quantised, so the bottom codes only have to
carry what the top codes leave out: the top is meant for the global
structure, the bottom for the detail (which level learns what is up to
training; chapter 4 measures it). Each extra level adds one more halving on top (the paper's three-level
1024 x 1024 model: 128 x 128, 64 x 64 and 32 x 32 grids); each level is
conditioned on the one directly above it, and the final decoder sees all of
them, upsampled to the bottom grid.
Reference: Razavi, van den Oord and Vinyals, "Generating Diverse High-Fidelity
Images with VQ-VAE-2", arXiv:1906.00446.
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

LEVEL_NAMES = {2: ("bottom", "top"), 3: ("bottom", "middle", "top")}


@dataclass(frozen=True)
class VQVAE2Config:
    in_channels: int = 3
    image_size: int = 32
    channels: int = 64  # width of every encoder and decoder
    residual_blocks: int = 1
    levels: int = 2  # 2: bottom + top; 3: bottom + middle + top
    bottom_halvings: int = 2  # bottom grid = image_size / 4; each level above halves
    vq: VQConfig = field(default_factory=VQConfig)
    # the decoder draws the difference from this grey level (see configs.vqvae2)
    output_offset: float = 0.0

    def __post_init__(self):
        check_sizes(self, "in_channels", "image_size", "channels", "bottom_halvings")
        check_non_negative(self, "residual_blocks")
        if self.levels not in LEVEL_NAMES:
            raise ValueError(
                f"VQVAE2Config.levels must be one of {sorted(LEVEL_NAMES)}, got {self.levels}"
            )
        halvings = self.bottom_halvings + self.levels - 1
        if self.image_size % 2**halvings:
            raise ValueError(
                f"VQVAE2Config.image_size {self.image_size} must be divisible by "
                f"2**{halvings} (the top grid is image_size / 2**{halvings}); "
                f"use a multiple of {2**halvings}"
            )

    @property
    def level_names(self) -> tuple[str, ...]:
        return LEVEL_NAMES[self.levels]

    @property
    def grid_sizes(self) -> tuple[int, ...]:
        """Side of each level's code grid, bottom first, e.g. (8, 4) at 32 x 32."""
        bottom = self.image_size // 2**self.bottom_halvings
        return tuple(bottom // 2**i for i in range(self.levels))


class Encoder(nn.Module):
    """``halvings`` stride-2 convolutions, a 3x3 convolution, residual blocks."""

    def __init__(self, in_channels: int, channels: int, halvings: int, blocks: int):
        super().__init__()
        layers, previous = [], in_channels
        for _ in range(halvings):
            layers += [nn.Conv2d(previous, channels, 4, stride=2, padding=1), nn.GELU()]
            previous = channels
        self.net = nn.Sequential(
            *layers,
            nn.Conv2d(channels, channels, 3, padding=1),
            *[ResidualBlock(channels) for _ in range(blocks)],
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """A 3x3 convolution, residual blocks, ``halvings`` stride-2 transposed convolutions."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        halvings: int,
        blocks: int,
    ):
        super().__init__()
        layers = [
            nn.Conv2d(in_channels, channels, 3, padding=1),
            *[ResidualBlock(channels) for _ in range(blocks)],
        ]
        for i in range(halvings):
            last = i == halvings - 1
            layers += [
                nn.GELU(),
                nn.ConvTranspose2d(
                    channels, out_channels if last else channels, 4, stride=2, padding=1
                ),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def upsampler(code_dim: int, halvings: int) -> nn.Sequential:
    """Code vectors of a level ``halvings`` above the bottom, up to the bottom grid."""
    layers: list[nn.Module] = []
    for i in range(halvings):
        if i:
            layers.append(nn.GELU())
        layers.append(nn.ConvTranspose2d(code_dim, code_dim, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


class VQVAE2(nn.Module):
    def __init__(self, config: VQVAE2Config):
        super().__init__()
        self.config = config
        c, d, blocks = config.channels, config.vq.code_dim, config.residual_blocks
        levels = config.levels
        # encoders[0]: image -> bottom features; encoders[i]: level i-1 -> level i
        self.encoders = nn.ModuleList(
            [Encoder(config.in_channels, c, config.bottom_halvings, blocks)]
            + [Encoder(c, c, 1, blocks) for _ in range(levels - 1)]
        )
        # decodes level i+1's codes to level i's grid, as a condition for level i
        self.from_above = nn.ModuleList(
            Decoder(d, d, c, 1, blocks) for _ in range(levels - 1)
        )
        # features (+ what the level above says) -> code vectors of size D
        self.to_code = nn.ModuleList(
            nn.Conv2d(c + (d if i < levels - 1 else 0), d, 1) for i in range(levels)
        )
        self.quantizers = nn.ModuleList(
            VectorQuantizer(config.vq) for _ in range(levels)
        )
        self.upsamplers = nn.ModuleList(upsampler(d, i) for i in range(1, levels))
        self.decoder = Decoder(
            levels * d, config.in_channels, c, config.bottom_halvings, blocks
        )

    def encode(self, x: torch.Tensor) -> list[Quantized]:
        """Images -> one :class:`Quantized` per level, bottom first."""
        check_images(x, self.config.in_channels, self.config.image_size)
        features = [self.encoders[0](x)]  # (B, C, s/4, s/4)
        for encoder in self.encoders[1:]:
            features.append(encoder(features[-1]))  # (B, C, s/8, s/8), ...
        top = len(features) - 1
        quantized = [None] * len(features)
        quantized[top] = self.quantizers[top](self.to_code[top](features[top]))
        for i in reversed(range(top)):  # top-down: each level sees the one above
            context = self.from_above[i](
                quantized[i + 1].vectors
            )  # (B, D, grid_i, grid_i)
            z = self.to_code[i](torch.cat([features[i], context], dim=1))
            quantized[i] = self.quantizers[i](z)
        return quantized

    def decode(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        """Code vectors per level, bottom first -> images (unclamped)."""
        upsampled = [up(v) for up, v in zip(self.upsamplers, vectors[1:])]
        drawn = self.decoder(torch.cat([vectors[0], *upsampled], dim=1))
        return drawn + self.config.output_offset

    def decode_indices(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Code grids per level, bottom first, ``(B, g, g)`` each -> images."""
        if len(indices) != self.config.levels:
            raise ValueError(
                f"expected {self.config.levels} code grids "
                f"({', '.join(self.config.level_names)}), got {len(indices)}"
            )
        k = self.config.vq.num_codes
        vectors = []
        for name, grid, size, quantizer in zip(
            self.config.level_names, indices, self.config.grid_sizes, self.quantizers
        ):
            check_code_grids(grid, f"{name} codes", size, k)
            vectors.append(quantizer.lookup(grid))
        return self.decode(vectors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode([q.vectors for q in self.encode(x)])

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0]
        quantized = self.encode(x)
        reconstruction = F.mse_loss(self.decode([q.vectors for q in quantized]), x)
        vq = sum(q.loss for q in quantized)
        out = {"loss": reconstruction + vq, "reconstruction": reconstruction, "vq": vq}
        for name, q in zip(self.config.level_names, quantized):
            out[f"perplexity_{name}"] = q.perplexity
            out[f"codes_used_{name}"] = torch.tensor(
                float(q.indices.unique().numel()), device=x.device
            )
        return out

    @torch.no_grad()
    def codes(self, images: torch.Tensor, batch_size: int = 500) -> list[torch.Tensor]:
        """Code grids of a whole data set, one ``(N, g, g)`` tensor per level,
        bottom first, in eval mode (no codebook updates)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        chunks = [
            [q.indices.cpu() for q in self.encode(chunk.to(device))]
            for chunk in images.split(batch_size)
        ]
        self.train(was_training)
        return [torch.cat(level) for level in zip(*chunks)]


def bits_per_level(config: VQVAE2Config) -> dict[str, float]:
    """Size of one image's code at each level: ``g * g * log2 K`` bits."""
    k = config.vq.num_codes
    return {
        name: size**2 * math.log2(k)
        for name, size in zip(config.level_names, config.grid_sizes)
    }
