"""VQGAN's adversarial parts (chapter 5): a PatchGAN discriminator, hinge
losses, and the adaptive weight that balances the GAN loss against the
reconstruction loss.

    discriminator: image (3, s, s) -> a map of real/fake logits, one per patch
    d_loss = 1/2 [ mean relu(1 - D(x)) + mean relu(1 + D(x_hat)) ]      (hinge)
    g_loss = - mean D(x_hat)
    lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta),  G_L = the
             decoder's last layer, clamped to [0, 1e4] and detached

The discriminator sees the picture patch by patch: each output logit depends
on a square of input pixels, its receptive field, 70 x 70 for the usual
three stride-2 layers. :func:`receptive_field` computes it from the layers.
References: Esser, Rombach and Ommer, "Taming Transformers for High-Resolution
Image Synthesis", arXiv:2012.09841; Isola et al., "Image-to-Image Translation
with Conditional Adversarial Networks" (PatchGAN), arXiv:1611.07004.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..validate import check_sizes

ADAPTIVE_DELTA = 1e-4  # keeps lambda finite when the GAN gradient vanishes
ADAPTIVE_MAX = 1e4


@dataclass(frozen=True)
class DiscriminatorConfig:
    in_channels: int = 3
    channels: int = 64  # width of the first layer; it doubles per layer, up to 8x
    layers: int = 3  # stride-2 layers; 3 gives 70 x 70 patches

    def __post_init__(self):
        check_sizes(self, "in_channels", "channels", "layers")


class PatchDiscriminator(nn.Module):
    """``layers`` stride-2 4x4 convolutions, then two stride-1 ones: a grid of
    logits, each judging one patch of the input."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        widths = [c * min(2**i, 8) for i in range(config.layers + 1)]
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, widths[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        for i in range(1, config.layers + 1):
            stride = 2 if i < config.layers else 1
            layers += [
                nn.Conv2d(
                    widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False
                ),
                nn.BatchNorm2d(widths[i]),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, s, s)`` -> patch logits ``(B, 1, h, w)``."""
        return self.net(x)


def receptive_field(network: nn.Module) -> int:
    """Side of the input square each output of a stack of convolutions sees.

    Walking back from one output pixel, a layer with kernel k and stride s
    turns a field of r pixels into (r - 1) * s + k.
    """
    field = 1
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    for conv in reversed(convolutions):
        field = (field - 1) * conv.stride[0] + conv.kernel_size[0]
    return field


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss: real logits above +1, fake below -1 cost nothing."""
    return 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The generator's side: raise the discriminator's logits on its pictures."""
    return -logits_fake.mean()


def adaptive_weight(
    reconstruction_loss: torch.Tensor,
    gan_loss: torch.Tensor,
    last_layer: torch.Tensor,
    discriminator_weight: float = 1.0,
) -> torch.Tensor:
    """lambda = ||d L_rec / d G_L|| / (||d L_GAN / d G_L|| + delta), clamped to
    [0, 1e4], detached, times ``discriminator_weight``: the GAN loss gets as
    much say over the decoder's last layer as the reconstruction loss has.
    Both losses must still have their graphs (the graphs are kept)."""
    rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[
        0
    ]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + ADAPTIVE_DELTA)
    return weight.clamp(0.0, ADAPTIVE_MAX).detach() * discriminator_weight
