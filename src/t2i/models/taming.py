"""taming-transformers' VQGAN, laid out so its published checkpoints load as they are.

Chapter 5's VQGAN is written for reading; this one is written for loading:
the same ideas (residual blocks with GroupNorm and SiLU, one attention
block at the 16 x 16 resolution and at the bottom, a stride-2 convolution
down and nearest-neighbour + convolution up, a 1 x 1 convolution into and
out of the codebook), with the module names of Esser et al.'s code, so
``encoder.down.0.block.1.conv2.weight`` in their checkpoint is
``encoder.down[0].block[1].conv2.weight`` here. Only two things differ from
their checkpoint's names: their discriminator and perceptual network
(``loss.*``) are not needed to draw, and their ``quantize`` is called
``quantizer`` here, as in the book's VQGAN, so chapter 8's loop can steer
either model. Their pictures live in [-1, 1]; this class takes and returns
[0, 1] like every model in the book.

Reference: Esser, Rombach, Ommer, "Taming Transformers for High-Resolution
Image Synthesis", CVPR 2021; github.com/CompVis/taming-transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .. import env
from ..checkpoints import download
from ..quantize import nearest_codes
from ..nn import check_images
from ..validate import check_sizes


@dataclass(frozen=True)
class TamingConfig:
    """The published ImageNet VQGAN f16 with 16,384 codes (their ``model.yaml``)."""

    image_size: int = 256  # their "resolution"
    channels: int = 128  # their "ch": the width at full resolution
    multipliers: tuple[int, ...] = (1, 1, 2, 2, 4)  # "ch_mult": widths per level
    residual_blocks: int = 2  # "num_res_blocks" (the decoder has one more)
    attention_at: tuple[int, ...] = (16,)  # "attn_resolutions", in pixels
    z_channels: int = 256
    code_dim: int = 256  # "embed_dim"
    num_codes: int = 16384  # "n_embed"

    def __post_init__(self):
        check_sizes(self, "image_size", "channels", "multipliers", "z_channels")
        check_sizes(self, "code_dim", "num_codes")
        if self.image_size % self.factor:
            raise ValueError(
                f"TamingConfig.image_size {self.image_size} must be divisible by "
                f"{self.factor} (one halving between levels)"
            )
        if any(self.channels * m % 32 for m in self.multipliers):
            raise ValueError(
                "every width channels * multiplier must be a multiple of 32: "
                "taming's GroupNorm uses 32 groups"
            )

    @property
    def factor(self) -> int:
        return 2 ** (len(self.multipliers) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.factor


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # their dropout is 0 here
        shortcut = getattr(self, "nin_shortcut", None)
        return (x if shortcut is None else shortcut(x)) + h


class AttnBlock(nn.Module):
    """One head of attention over all positions, with 1 x 1 convolutions."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q, self.k, self.v, self.proj_out = (
            nn.Conv2d(channels, channels, 1) for _ in range(4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        _, _, height, width = x.shape
        q, k, v = (
            rearrange(f(h), "b c h w -> b 1 (h w) c") for f in (self.q, self.k, self.v)
        )
        mixed = F.scaled_dot_product_attention(q, k, v)
        mixed = rearrange(mixed, "b 1 (h w) c -> b c h w", h=height, w=width)
        return x + self.proj_out(mixed)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # pad right and bottom only


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def level(blocks: list[ResnetBlock], attention: bool) -> nn.Module:
    """One resolution: ``block`` (residual blocks) and ``attn`` (an attention
    block after each, at the resolutions that have one)."""
    module = nn.Module()
    module.block = nn.ModuleList(blocks)
    widths = [b.conv2.out_channels for b in blocks]
    module.attn = (
        nn.ModuleList(AttnBlock(w) for w in widths) if attention else nn.ModuleList()
    )
    return module


def middle(channels: int) -> nn.Module:
    module = nn.Module()
    module.block_1 = ResnetBlock(channels, channels)
    module.attn_1 = AttnBlock(channels)
    module.block_2 = ResnetBlock(channels, channels)
    return module


def run_middle(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


def run_level(stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    return h


class Encoder(nn.Module):
    def __init__(self, config: TamingConfig):
        super().__init__()
        widths = [config.channels * m for m in config.multipliers]
        self.conv_in = nn.Conv2d(3, config.channels, 3, padding=1)
        self.down = nn.ModuleList()
        width, resolution = config.channels, config.image_size
        for i, out in enumerate(widths):
            blocks = []
            for _ in range(config.residual_blocks):
                blocks.append(ResnetBlock(width, out))
                width = out
            stage = level(blocks, resolution in config.attention_at)
            if i < len(widths) - 1:
                stage.downsample = Downsample(width)
                resolution //= 2
            self.down.append(stage)
        self.mid = middle(width)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = run_level(stage, h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = run_middle(self.mid, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``up[i]`` works at the resolution of ``down[i]``; they run from the
    last (coarsest) to the first, so ``up`` is indexed like ``down``."""

    def __init__(self, config: TamingConfig):
        super().__init__()
        widths = [config.channels * m for m in config.multipliers]
        width, resolution = widths[-1], config.grid_size
        self.conv_in = nn.Conv2d(config.z_channels, width, 3, padding=1)
        self.mid = middle(width)
        stages = []
        for i in reversed(range(len(widths))):
            blocks = []
            for _ in range(config.residual_blocks + 1):
                blocks.append(ResnetBlock(width, widths[i]))
                width = widths[i]
            stage = level(blocks, resolution in config.attention_at)
            if i > 0:
                stage.upsample = Upsample(width)
                resolution *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = run_middle(self.mid, self.conv_in(z))
        for stage in reversed(self.up):
            h = run_level(stage, h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Codebook(nn.Module):
    """taming's quantiser at drawing time: an embedding table and a lookup."""

    def __init__(self, num_codes: int, code_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_codes, code_dim)

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding.weight

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` -> code vectors ``(B, D, h, w)``."""
        return rearrange(self.embedding(indices), "b h w d -> b d h w")

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D, h, w)`` -> the indices of their nearest codes."""
        b, _, h, w = z.shape
        flat = rearrange(z, "b d h w -> (b h w) d")
        return rearrange(
            nearest_codes(flat, self.codebook), "(b h w) -> b h w", b=b, h=h, w=w
        )


class TamingVQGAN(nn.Module):
    """Encoder, codebook and decoder of taming's ``VQModel``; [0, 1] pictures."""

    def __init__(self, config: TamingConfig = TamingConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(config.z_channels, config.code_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.code_dim, config.z_channels, 1)
        self.quantizer = Codebook(config.num_codes, config.code_dim)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] pictures -> continuous latents ``(B, code_dim, g, g)``."""
        check_images(x, 3, self.config.image_size)
        return self.quant_conv(self.encoder(2 * x - 1))

    def decode(self, vectors: torch.Tensor) -> torch.Tensor:
        """Code vectors ``(B, code_dim, h, w)`` -> [0, 1] pictures (unclamped)."""
        return (self.decoder(self.post_quant_conv(vectors)) + 1) / 2

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer.nearest(self.latents(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.lookup(self.codes(x)))


# The checkpoint Esser et al. published (a PyTorch Lightning file, about 1 GB).
# No checksum is published for it, and this book was written on a machine
# that cannot reach it, so none is recorded here: download() keeps the
# SHA-256 of the first copy it fetches and checks every later use against it.
TAMING_F16_16384 = (
    "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/"
    "?p=%2Fckpts%2Flast.ckpt&dl=1"
)


def taming_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """taming's ``VQModel`` state dict -> this class's: drop the training
    losses (``loss.*``), rename ``quantize.`` to ``quantizer.``."""
    renamed = {}
    for key, value in state.items():
        if key.startswith("loss."):
            continue
        if key.startswith("quantize."):
            key = "quantizer." + key.removeprefix("quantize.")
        renamed[key] = value
    return renamed


def read_lightning_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a PyTorch Lightning checkpoint, unpickled with
    ``weights_only=True``. Lightning also saves its callbacks' numbers as
    numpy scalars: the scalar type (under its numpy 1 and 2 names) and the
    float64 dtype are allowed, nothing else."""
    scalar = np._core.multiarray.scalar
    allowed = [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),  # its name before numpy 2
        np.dtype,
        type(np.dtype(np.float64)),
    ]
    with torch.serialization.safe_globals(allowed):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint:
        raise ValueError(
            f"{path} has no 'state_dict': not a taming-transformers (Lightning) "
            f"checkpoint; its keys are {sorted(checkpoint)[:8]}"
        )
    return checkpoint["state_dict"]


def load_taming_vqgan(
    path: str | Path | None = None,
    config: TamingConfig = TamingConfig(),
    url: str = TAMING_F16_16384,
    sha256: str | None = None,
) -> TamingVQGAN:
    """The published ImageNet VQGAN, in eval mode. Without ``path`` it is
    downloaded once into ``$T2I_CACHE/pretrained`` (checked against
    ``sha256`` if given, else against the first download's). Offline, it
    raises ConnectionError that says to use the book's own VQGAN."""
    if path is None:
        path = env.cache_dir() / "pretrained" / "vqgan_imagenet_f16_16384.ckpt"
        try:
            download(url, path, sha256)
        except ConnectionError as error:
            raise ConnectionError(
                f"taming's VQGAN could not be fetched: {error}"
            ) from error
    model = TamingVQGAN(config)
    state = taming_state_dict(read_lightning_checkpoint(path))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise ValueError(
            f"{path} does not fit {config}: {' '.join(str(error).split())}; pass the config "
            f"of the checkpoint's model.yaml"
        ) from error
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit {config}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; pass the config of the checkpoint's "
            f"model.yaml"
        )
    return model.eval().requires_grad_(False)
