"""VQGAN (chapter 5): a VQ-VAE whose decoder is trained like a GAN's generator.

    image --encoder--> z (D, s/f, s/f) --quantise--> z_q --decoder--> image
    loss_G = L1 + w_p * perceptual + lambda * g_loss + codebook/commitment
    loss_D = hinge on the discriminator's patch logits (real vs decoded)

Compared with chapter 3's VQ-VAE, three things change, after Esser, Rombach
and Ommer's taming-transformers:

* the encoder and decoder are deeper: residual blocks with GroupNorm and
  SiLU at every resolution, and a self-attention block at the lowest one, so
  every code can see the whole picture;
* the squared error becomes L1 plus a perceptual distance (features of a
  frozen network, :mod:`t2i.models.perceptual`), which cares less about
  where an edge is to the pixel and more about whether there is one;
* a PatchGAN discriminator judges the decoded picture patch by patch, and
  its hinge loss pushes the decoder towards sharp, plausible texture:

    discriminator: image (3, s, s) -> a map of real/fake logits, one per patch
    d_loss = 1/2 [ mean relu(1 - D(x)) + mean relu(1 + D(x_hat)) ]      (hinge)
    g_loss = - mean D(x_hat)
    lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta),  G_L = the
             decoder's last layer, clamped to [0, 1e4] and detached

The adversarial term is switched on at ``disc_start``; before that the
discriminator does not learn and the decoder is a plain perceptual
autoencoder. Both players live in this one module: ``loss`` returns the
generator's ``"loss"`` and the ``"discriminator_loss"``, and
``optimizer_groups`` tells :func:`t2i.train.fit` which trains what.

The discriminator sees the picture patch by patch: each output logit depends
on a square of input pixels, its receptive field, 70 x 70 for the usual
three stride-2 layers. :func:`receptive_field` computes it from the layers.

Where beta goes. The VQ-VAE paper weights the *commitment* term by beta
(``||sg(z_q) - z||^2``, which pulls the encoder towards its codes); taming's
``VectorQuantizer2`` in its default ``legacy=True`` mode puts beta on the
*codebook* term instead (taming issues #46, #57). This book keeps the
paper's placement (the chapter-3 quantiser), and with ``ema=True`` the
codebook is moved by moving averages, so there is no codebook term at all.
References: Esser, Rombach and Ommer, "Taming Transformers for
High-Resolution Image Synthesis", arXiv:2012.09841; Isola et al.,
"Image-to-Image Translation with Conditional Adversarial Networks"
(PatchGAN), arXiv:1611.07004; Lim and Ye, "Geometric GAN" (hinge loss),
arXiv:1705.02894.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..nn import check_images
from ..quantize import Quantized, VectorQuantizer, VQConfig
from ..validate import check_code_grids, check_non_negative, check_sizes
from .vqvae import code_grids

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


# ---------------------------------------------------------------- the generator


def group_norm(channels: int, normalise: bool = True) -> nn.Module:
    """GroupNorm with taming's 32 groups where the width allows (128 channels
    and up), fewer otherwise, and never fewer than 4 channels per group: with
    one channel per group it becomes instance norm, which wipes out each
    channel's overall level in a picture. ``normalise=False``: no norm."""
    if not normalise:
        return nn.Identity()
    return nn.GroupNorm(math.gcd(32, max(channels // 4, 1)), channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))))))``, with a 1x1 shortcut when
    the width changes: taming's residual block, without dropout."""

    def __init__(self, in_channels: int, out_channels: int, normalise: bool = True):
        super().__init__()
        self.net = nn.Sequential(
            group_norm(in_channels, normalise),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            group_norm(out_channels, normalise),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.net(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over every position of a feature map: at the
    lowest resolution it lets each code read the whole picture."""

    def __init__(self, channels: int, normalise: bool = True):
        super().__init__()
        self.norm = group_norm(channels, normalise)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        q, k, v = (
            rearrange(t, "b c h w -> b 1 (h w) c")
            for t in self.qkv(self.norm(x)).chunk(3, dim=1)
        )
        mixed = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(rearrange(mixed, "b 1 (h w) c -> b c h w", h=h, w=w))


def middle(channels: int, normalise: bool) -> nn.Sequential:
    """The lowest resolution of encoder and decoder: residual, attention, residual."""
    return nn.Sequential(
        ResnetBlock(channels, channels, normalise),
        AttentionBlock(channels, normalise),
        ResnetBlock(channels, channels, normalise),
    )


@dataclass(frozen=True)
class VQGANConfig:
    in_channels: int = 3
    image_size: int = 32
    # one entry per resolution; the picture is halved between entries, so the
    # code grid is image_size / 2 ** (len(channels) - 1) on a side
    channels: tuple[int, ...] = (32, 64, 64)
    # per resolution, in the encoder and the decoder (taming's decoder has one more)
    residual_blocks: int = 1
    vq: VQConfig = field(default_factory=VQConfig)
    output_offset: float = 0.0  # the decoder draws the difference from this grey
    perceptual_weight: float = 1.0  # 0: L1 only
    # GroupNorm in every block, as in taming (configs.vqgan: why tiny has none)
    normalise: bool = True
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    disc_start: int = 0  # training step at which the GAN loss is switched on
    disc_weight: float = 0.8  # times the adaptive weight (taming's)
    betas: tuple[float, float] = (0.5, 0.9)  # Adam's, for both players (taming's)

    def __post_init__(self):
        check_sizes(self, "in_channels", "image_size", "channels")
        check_non_negative(
            self, "residual_blocks", "perceptual_weight", "disc_start", "disc_weight"
        )
        if self.image_size % self.factor:
            raise ValueError(
                f"VQGANConfig.image_size {self.image_size} must be divisible by "
                f"{self.factor} (one halving between entries of channels)"
            )

    @property
    def factor(self) -> int:
        """Downsampling factor f: one code per f x f pixels."""
        return 2 ** (len(self.channels) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.factor


class Encoder(nn.Module):
    """conv, then per resolution: residual blocks and a stride-2 convolution
    to the next width; at the lowest: residual, attention, residual."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        widths, norm = config.channels, config.normalise
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        ]
        for i, width in enumerate(widths):
            layers += [
                ResnetBlock(width, width, norm) for _ in range(config.residual_blocks)
            ]
            if i < len(widths) - 1:
                layers.append(nn.Conv2d(width, widths[i + 1], 4, stride=2, padding=1))
        layers += [
            middle(widths[-1], norm),
            group_norm(widths[-1], norm),
            nn.SiLU(),
            nn.Conv2d(widths[-1], config.vq.code_dim, 1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """The mirror image: residual, attention, residual at the lowest
    resolution, then per resolution residual blocks and a nearest-neighbour
    upsampling followed by a convolution to the next width."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        widths, norm = list(reversed(config.channels)), config.normalise
        layers: list[nn.Module] = [
            nn.Conv2d(config.vq.code_dim, widths[0], 3, padding=1),
            middle(widths[0], norm),
        ]
        for i, width in enumerate(widths):
            layers += [
                ResnetBlock(width, width, norm) for _ in range(config.residual_blocks)
            ]
            if i < len(widths) - 1:
                layers += [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(width, widths[i + 1], 3, padding=1),
                ]
        layers += [group_norm(widths[-1], norm), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        # G_L of the adaptive weight: the layer whose gradients are compared
        self.last_layer = nn.Conv2d(widths[-1], config.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.net(z))


class VQGAN(nn.Module):
    """Encoder, quantiser, decoder, and the discriminator that trains the decoder.

    ``perceptual`` is a frozen distance network (:mod:`t2i.models.perceptual`);
    it is kept as a submodule, so the checkpoint records exactly which
    features trained the model. ``step`` counts training steps in a buffer,
    so a resumed run switches the discriminator on at the same step.
    """

    def __init__(self, config: VQGANConfig, perceptual: nn.Module | None = None):
        super().__init__()
        if config.perceptual_weight and perceptual is None:
            raise ValueError(
                f"VQGANConfig.perceptual_weight is {config.perceptual_weight} but no "
                f"perceptual network was passed: VQGAN(config, perceptual=...) with "
                f"e.g. t2i.models.perceptual.from_judge(judge), or perceptual_weight=0"
            )
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.vq)
        self.decoder = Decoder(config)
        self.discriminator = PatchDiscriminator(config.discriminator)
        self.perceptual = perceptual if config.perceptual_weight else None
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def optimizer_groups(self) -> dict[str, dict]:
        """The generator (encoder, codebook, decoder) minimises ``"loss"``; the
        discriminator ``"discriminator_loss"``; each with taming's Adam betas."""
        discriminator = set(self.discriminator.parameters())
        frozen = set(self.perceptual.parameters()) if self.perceptual else set()
        generator = [
            p for p in self.parameters() if p not in discriminator and p not in frozen
        ]
        betas = self.config.betas
        return {
            "loss": {"params": generator, "betas": betas},
            "discriminator_loss": {
                "params": list(self.discriminator.parameters()),
                "betas": betas,
            },
        }

    def encode(self, x: torch.Tensor) -> Quantized:
        """Images -> quantised code vectors, their indices ``(B, h, w)``, VQ loss."""
        check_images(x, self.config.in_channels, self.config.image_size)
        return self.quantizer(self.encoder(x))

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the encoder's continuous vectors ``(B, D, h, w)``, before
        quantisation (where VQGAN-CLIP starts from a picture)."""
        check_images(x, self.config.in_channels, self.config.image_size)
        return self.encoder(x)

    def decode(self, vectors: torch.Tensor) -> torch.Tensor:
        """Code vectors ``(B, D, h, w)`` -> images (unclamped). Any grid size
        works: the decoder is convolutional, and its attention reads all codes."""
        return self.decoder(vectors) + self.config.output_offset

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` -> images; ``h, w`` may exceed the training
        grid (sliding-window samples)."""
        if indices.ndim != 3:
            raise ValueError(
                f"expected code grids of shape (batch, h, w), got {tuple(indices.shape)}"
            )
        check_code_grids(
            indices, "code indices", indices.shape[-1], self.config.vq.num_codes
        )
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).vectors)

    def discriminator_on(self) -> bool:
        return int(self.step) >= self.config.disc_start

    def reconstruction_terms(
        self, x: torch.Tensor, x_hat: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """L1, squared error and perceptual distance, each a batch mean, and
        ``rec``, the reconstruction loss: L1 plus the weighted perceptual
        distance (the squared error is only watched)."""
        terms = {
            "l1": (x_hat - x).abs().mean(),
            "mse": F.mse_loss(x_hat, x),
            "perceptual": torch.zeros((), device=x.device),
        }
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(x_hat, x).mean()
        terms["rec"] = terms["l1"] + self.config.perceptual_weight * terms["perceptual"]
        return terms

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Both players' losses from one forward pass. In evaluation (no
        gradients) only the reconstruction terms: lambda needs gradients."""
        x = batch[0]
        quantized = self.encode(x)
        x_hat = self.decode(quantized.vectors)
        terms = self.reconstruction_terms(x, x_hat)
        metrics = {
            "loss": terms["rec"] + quantized.loss,
            **terms,
            "vq": quantized.loss,
            "perplexity": quantized.perplexity,
        }
        if not (self.training and torch.is_grad_enabled()):
            return metrics
        on = self.discriminator_on()
        g_loss = hinge_g_loss(self.discriminator(x_hat))
        # lambda is measured from the first step, so the plot shows what it
        # would be; it only acts from disc_start on (taming's disc_factor)
        weight = adaptive_weight(
            terms["rec"],
            g_loss,
            self.decoder.last_layer.weight,
            self.config.disc_weight,
        )
        metrics["g_loss"] = g_loss
        metrics["adaptive_weight"] = weight
        metrics["disc_on"] = torch.tensor(float(on), device=x.device)
        if on:
            metrics["loss"] = metrics["loss"] + weight * g_loss
        # before disc_start the discriminator is only watched, not trained
        # (taming's disc_factor = 0): its loss then has no graph to follow
        with torch.set_grad_enabled(on):
            logits_real = self.discriminator(x.detach())
            logits_fake = self.discriminator(x_hat.detach())
            metrics["discriminator_loss"] = hinge_d_loss(logits_real, logits_fake)
        metrics["logits_real"] = logits_real.mean().detach()
        metrics["logits_fake"] = logits_fake.mean().detach()
        self.step += 1
        return metrics

    def codes(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Code grids ``(N, h, w)`` of a whole data set, in eval mode."""
        return code_grids(self, images, batch_size)
