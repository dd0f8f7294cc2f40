"""Building blocks shared by the image models: conv encoders and decoders.

Each stage of the encoder halves the resolution (a 4x4 convolution with
stride 2); the decoder mirrors it with transposed convolutions, so an image
of side ``s`` becomes a ``(channels[-1], s / 2**k, s / 2**k)`` feature map
after ``k`` stages and back again.
"""

from __future__ import annotations

import torch
from einops.layers.torch import Rearrange
from torch import nn


def check_images(x: torch.Tensor, channels: int, size: int) -> None:
    """Raise a ValueError that says how to fix a batch of the wrong shape or type."""
    if not torch.is_tensor(x):
        raise TypeError(
            f"expected a torch.Tensor of images, got {type(x).__name__}; convert "
            f"with torch.as_tensor(x, dtype=torch.float32)"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"expected floating-point images with values in [0, 1], got {x.dtype}. "
            f"Convert 8-bit images with x.float() / 255."
        )
    if (
        x.ndim != 4
        or x.shape[1] != channels
        or x.shape[2] != size
        or x.shape[3] != size
    ):
        raise ValueError(
            f"expected images of shape (batch, {channels}, {size}, {size}), got {tuple(x.shape)}. "
            f"Resize or pad the images to {size}x{size} (add a channel axis with x[:, None] "
            f"for grey images), or build the model with image_size={x.shape[-1]}."
        )
    if len(x) and x.max() > 2:  # [0, 1] images never get near 2; 0-255 ones do
        raise ValueError(
            f"image values reach {x.max().item():g}, but the models expect [0, 1]. "
            f"Divide images stored as 0-255 by 255."
        )


class ConvEncoder(nn.Module):
    """Image ``(B, C, s, s)`` -> feature vector ``(B, out_features)``."""

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        image_size: int,
        out_features: int,
    ):
        super().__init__()
        if image_size % 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} must be divisible by 2**{len(channels)}"
            )
        layers, previous = [], in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 4, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.GELU(),
            ]
            previous = width
        side = image_size // 2 ** len(channels)
        self.net = nn.Sequential(
            *layers,
            Rearrange("b c h w -> b (c h w)"),
            nn.Linear(previous * side * side, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Feature vector ``(B, in_features)`` -> image ``(B, C, s, s)``.

    The last layer is linear, with no sigmoid. With a sigmoid and a squared
    error loss, training on MNIST often collapses: the output is pushed to
    black (most pixels are 0), the sigmoid saturates, and its gradient
    vanishes. Outputs are clamped to [0, 1] only for display.
    """

    def __init__(
        self,
        in_features: int,
        channels: tuple[int, ...],
        image_size: int,
        out_channels: int,
    ):
        super().__init__()
        side = image_size // 2 ** len(channels)
        widths = list(reversed(channels))
        layers = [
            nn.Linear(in_features, widths[0] * side * side),
            nn.GELU(),
            Rearrange("b (c h w) -> b c h w", c=widths[0], h=side, w=side),
        ]
        for width, next_width in zip(widths, widths[1:] + [out_channels]):
            layers += [
                nn.Conv2d(width, width, 3, padding=1),
                nn.GELU(),
                nn.ConvTranspose2d(width, next_width, 4, stride=2, padding=1),
            ]
            if next_width != out_channels:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ResidualBlock(nn.Module):
    """``x + conv1x1(gelu(conv3x3(gelu(x))))``: the VQ-VAE paper's residual block.

    It keeps shape and resolution, so it can be stacked anywhere in an encoder
    or decoder to add depth without changing the code grid.
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels // 2
        self.net = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)
