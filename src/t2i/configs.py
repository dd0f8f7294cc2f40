"""Scale presets: one code path, three sizes.

========  =====================================  ==============================
scale     hardware                               data
========  =====================================  ==============================
tiny      a laptop CPU, offline (the website)    shipped or procedural samples
small     one GPU (Colab T4 and up)              full MNIST, CIFAR-10
full      one GPU for hours (longer schedules)   full MNIST, CIFAR-10
========  =====================================  ==============================

``full`` runs in the same single-process loop as the others; data-parallel
training over several GPUs is not there yet.

Each chapter sets ``SCALE`` in its parameters cell and asks this module for
its experiment, e.g. ``configs.autoencoder(SCALE, latent_dim=2)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from .cache import weights_fingerprint
from .data import DataConfig
from .models.ae import AEConfig
from .models.pixelcnn import PixelCNNConfig
from .models.vae import VAEConfig
from .models.vqvae import VQVAEConfig
from .models.vqvae2 import VQVAE2Config
from .quantize import VQConfig
from .train import TrainConfig

SCALES = ("tiny", "small", "full")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(
            f"unknown scale {scale!r}; choose one of {', '.join(repr(s) for s in SCALES)} "
            f"(set SCALE in the chapter's parameters cell, or T2I_SCALE for the command line)"
        )
    return scale


def default_scale() -> str:
    """``$T2I_SCALE`` if set (so ``make book`` can build at another scale), else tiny."""
    return check_scale(os.environ.get("T2I_SCALE", "tiny"))


@dataclass(frozen=True)
class Experiment:
    """Everything that decides a trained model; its hash is the cache key."""

    model: Any
    train: TrainConfig
    data: DataConfig
    scale: str
    # what the training data is derived from, e.g. the VQ-VAE whose codes a prior learns
    source: str = ""


_AE = {
    "tiny": (
        DataConfig(source="sample"),
        (16, 32),
        TrainConfig(
            steps=1000,
            batch_size=64,
            lr=3e-3,
            log_every=50,
            checkpoint_every=500,
        ),
    ),
    "small": (
        DataConfig(source="auto"),
        (32, 64),
        TrainConfig(
            steps=12_000,
            batch_size=256,
            lr=2e-3,
            log_every=100,
            checkpoint_every=1000,
        ),
    ),
    "full": (
        DataConfig(source="auto"),
        (64, 128),
        TrainConfig(
            steps=50_000,
            batch_size=256,
            lr=1e-3,
            log_every=100,
            checkpoint_every=2000,
        ),
    ),
}


def autoencoder(
    scale: str,
    latent_dim: int = 2,
    binarize: bool = False,
    **train_overrides: Any,
) -> Experiment:
    """The chapter-1 autoencoder on MNIST at ``scale`` (binarised pixels if asked)."""
    data, channels, train = _AE[check_scale(scale)]
    return Experiment(
        model=AEConfig(channels=channels, latent_dim=latent_dim),
        train=replace(train, **train_overrides),
        data=replace(data, binarize=binarize),
        scale=scale,
    )


def vae(
    scale: str,
    latent_dim: int = 2,
    body: str = "conv",
    beta: float = 1.0,
    binarize: bool = True,
    **train_overrides: Any,
) -> Experiment:
    """The chapter-2 VAE on binarised MNIST; the AE's conv widths and training
    settings, for either body, so every comparison is at equal steps.

    ``binarize=False`` trains it on grey digits (cross-entropy against grey
    values), to compare with models that see grey images.
    """
    data, channels, train = _AE[check_scale(scale)]
    hidden = 256 if scale == "tiny" else 512
    return Experiment(
        model=VAEConfig(
            latent_dim=latent_dim,
            body=body,
            channels=channels,
            hidden=hidden,
            beta=beta,
        ),
        train=replace(train, **train_overrides),
        data=replace(data, binarize=binarize),
        scale=scale,
    )


MOON_PHASES = (
    (0.0, 0.35),
    (0.65, 0.9),
)  # in units of pi: no half moons (0.5) in training


def moons(scale: str, model: str = "vae", **train_overrides: Any) -> Experiment:
    """AE or VAE with a 2-D latent on procedural moon phases (the article's moon demo)."""
    n_train = {"tiny": 2000, "small": 20_000, "full": 50_000}[check_scale(scale)]
    steps = {"tiny": 600, "small": 8000, "full": 20_000}[scale]
    train = TrainConfig(
        steps=steps, batch_size=64, lr=2e-3, log_every=50, checkpoint_every=300
    )
    if model == "ae":
        config = AEConfig(channels=(16, 32), latent_dim=2)
    elif model == "vae":
        config = VAEConfig(channels=(16, 32), latent_dim=2, hidden=128)
    else:
        raise ValueError(f"unknown model {model!r}; use 'ae' or 'vae'")
    return Experiment(
        model=config,
        train=replace(train, **train_overrides),
        data=DataConfig(
            name="moons", n_train=n_train, n_test=500, phase_ranges=MOON_PHASES
        ),
        scale=scale,
    )


# data, (image channels, size), encoder widths, K, D: MNIST at tiny, CIFAR-10 above
_CIFAR_VQVAE = (
    DataConfig(name="cifar10", source="torchvision"),
    (3, 32),
    (128, 256),
    512,
    64,
)
_VQVAE = {
    "tiny": (DataConfig(source="sample"), (1, 28), (32, 64), 128, 16),
    "small": _CIFAR_VQVAE,
    "full": _CIFAR_VQVAE,
}
_VQVAE_TRAIN = {
    "tiny": TrainConfig(
        steps=800, batch_size=32, lr=2e-3, log_every=20, checkpoint_every=400
    ),
    "small": TrainConfig(
        steps=15_000,
        batch_size=128,
        lr=1e-3,
        log_every=100,
        checkpoint_every=1000,
    ),
    # the paper's CIFAR-10 schedule: Adam, 250k steps of batch 128 at a fixed 2e-4
    "full": TrainConfig(
        steps=250_000,
        batch_size=128,
        lr=2e-4,
        grad_clip=None,
        cosine_decay=False,
        log_every=100,
        checkpoint_every=5000,
    ),
}


def vqvae(
    scale: str,
    ema: bool = True,
    restart_dead: bool = True,
    **train_overrides: Any,
) -> Experiment:
    """The chapter-3 VQ-VAE: MNIST at tiny scale, CIFAR-10 32x32 (K=512, D=64) above.

    ``ema=False, restart_dead=False`` is the plain recipe that tends to collapse.
    """
    data, (c, size), widths, k, d = _VQVAE[check_scale(scale)]
    train = _VQVAE_TRAIN[scale]
    vq = VQConfig(
        num_codes=k, code_dim=d, beta=0.25, ema=ema, restart_dead=restart_dead
    )
    return Experiment(
        model=VQVAEConfig(
            in_channels=c,
            image_size=size,
            channels=widths,
            residual_blocks=1 if scale == "tiny" else 2,
            vq=vq,
        ),
        train=replace(train, **train_overrides),
        data=data,
        scale=scale,
    )


def pixelcnn_prior(
    scale: str, codes_from: Experiment, vqvae: nn.Module, **train_overrides: Any
) -> Experiment:
    """A class-conditional gated PixelCNN over the code grids of ``vqvae``, the
    trained model of experiment ``codes_from``.

    The VQ-VAE's weights (their SHA-256) are part of this experiment's key: a
    retrained VQ-VAE, even under the same settings, gets a new prior.
    """
    vq_model = codes_from.model
    channels, layers = {"tiny": (48, 6), "small": (128, 12), "full": (256, 15)}[
        check_scale(scale)
    ]
    train = {
        "tiny": TrainConfig(  # batch 32: as good as 64 in half the time on a CPU
            steps=800,
            batch_size=32,
            lr=2e-3,
            log_every=50,
            eval_every=200,
            checkpoint_every=400,
        ),
        "small": TrainConfig(
            steps=15_000,
            batch_size=128,
            lr=1e-3,
            log_every=100,
            eval_every=2000,
            checkpoint_every=1000,
        ),
        "full": TrainConfig(
            steps=200_000,
            batch_size=128,
            lr=3e-4,
            log_every=100,
            eval_every=10_000,
            checkpoint_every=5000,
        ),
    }[scale]
    return Experiment(
        model=PixelCNNConfig(
            num_codes=vq_model.vq.num_codes,
            grid_size=vq_model.grid_size,
            channels=channels,
            layers=layers,
            kernel_size=3 if scale == "tiny" else 5,
        ),
        train=replace(train, **train_overrides),
        data=codes_from.data,
        scale=scale,
        source=f"vqvae-weights-{weights_fingerprint(vqvae)[:16]}",
    )


# ---- chapter 4: VQ-VAE-2 ----
# data, VQ-VAE-2 settings, training: shapes world at tiny, STL-10 photos above
# (the three-level model at full reads STL-10 at its own 96 x 96).
# output_offset: a decoder starts out drawing values near 0, and Adam moves a
# weight by about the learning rate per step, so on shapes world (light
# backgrounds, about 0.9) the first few hundred steps went into brightening the
# picture. Drawing the difference from a light grey instead spends them on the
# objects: after 400 steps of the tiny one-level model the training
# reconstruction error was 0.0052 with the offset and 0.0136 without.
_VQVAE2 = {
    "tiny": (
        DataConfig(name="shapes", image_size=32),
        {
            "channels": 48,
            "residual_blocks": 1,
            "levels": 2,
            "output_offset": 0.85,
        },
        # K = 64, not the paper's 512. Measured at tiny, 1,000 steps: with 512
        # codes the test error was 0.00234 (64: 0.00261), but each prior step
        # costs more (a 512-way output) and 8% of 160 two-level samples were
        # good (the judge sure of a 1-3 object scene) against 18% with 64. With 512
        # the decoder ignored the top level entirely: pictures decoded from
        # swapped levels were 0.00003 per pixel from the bottom codes' scene.
        VQConfig(num_codes=64, code_dim=32, ema=True, restart_dead=True),
        TrainConfig(
            steps=1000,
            batch_size=32,
            lr=2e-3,
            log_every=20,
            checkpoint_every=500,
        ),
    ),
    "small": (
        DataConfig(name="stl10", image_size=64, n_train=50_000, n_test=2000),
        {
            "channels": 128,
            "residual_blocks": 2,
            "levels": 2,
            "output_offset": 0.45,
        },
        VQConfig(num_codes=512, code_dim=64, ema=True, restart_dead=True),
        TrainConfig(
            steps=20_000,
            batch_size=128,
            lr=1e-3,
            log_every=100,
            checkpoint_every=1000,
        ),
    ),
    "full": (
        DataConfig(name="stl10", image_size=96, n_test=2000),
        {
            "channels": 128,
            "residual_blocks": 2,
            "levels": 3,
            "output_offset": 0.45,
        },
        VQConfig(num_codes=512, code_dim=64, ema=True, restart_dead=True),
        TrainConfig(
            steps=150_000,
            batch_size=128,
            lr=3e-4,
            log_every=100,
            checkpoint_every=5000,
        ),
    ),
}


def vqvae2(scale: str, **train_overrides: Any) -> Experiment:
    """The chapter-4 VQ-VAE-2: two levels on 32 x 32 shapes world at tiny, on
    64 x 64 STL-10 at small, three levels on 96 x 96 STL-10 at full."""
    data, shape, vq, train = _VQVAE2[check_scale(scale)]
    return Experiment(
        model=VQVAE2Config(in_channels=3, image_size=data.image_size, vq=vq, **shape),
        train=replace(train, **train_overrides),
        data=data,
        scale=scale,
    )


def vqvae_one_level(scale: str, **train_overrides: Any) -> Experiment:
    """Chapter 3's one-level VQ-VAE on chapter 4's data, with the same codebook
    and training budget as :func:`vqvae2`, and the same grid as its bottom level."""
    two_level = vqvae2(scale, **train_overrides)
    width = two_level.model.channels
    return Experiment(
        model=VQVAEConfig(
            in_channels=3,
            image_size=two_level.model.image_size,
            channels=(width,) * two_level.model.bottom_halvings,
            residual_blocks=two_level.model.residual_blocks,
            vq=two_level.model.vq,
            output_offset=two_level.model.output_offset,
        ),
        train=two_level.train,
        data=two_level.data,
        scale=scale,
    )


def vqvae2_prior(
    scale: str,
    level: str,
    codes_from: Experiment,
    model: nn.Module,
    **train_overrides: Any,
) -> Experiment:
    """A gated PixelCNN over one level's codes of the trained VQ-VAE-2 ``model``.

    The top prior is unconditional, with one causal self-attention block (as
    PixelSNAIL has); every level below reads the whole grid of the level above
    as a spatial condition. The VQ-VAE-2's weights are part of the key.
    """
    vq_model = codes_from.model
    names = vq_model.level_names
    if level not in names:
        raise ValueError(
            f"unknown level {level!r}; this VQ-VAE-2 has {', '.join(names)}"
        )
    i = names.index(level)
    top = i == len(names) - 1
    k, grids = vq_model.vq.num_codes, vq_model.grid_sizes
    return _code_prior(
        scale,
        codes_from,
        num_codes=k,
        grid_size=grids[i],
        condition_grid=0 if top else grids[i + 1],
        attention_blocks=1 if top else 0,
        steps_at_tiny=400 if top else 500,
        source=f"vqvae2-weights-{weights_fingerprint(model)[:16]}-{level}",
        **train_overrides,
    )


def one_level_prior(
    scale: str, codes_from: Experiment, model: nn.Module, **train_overrides: Any
) -> Experiment:
    """A PixelCNN over the one-level VQ-VAE's grid (:func:`vqvae_one_level`),
    of the bottom prior's size and training budget, reading nothing but its own
    grid: the one-level half of chapter 4's comparison of samples."""
    return _code_prior(
        scale,
        codes_from,
        num_codes=codes_from.model.vq.num_codes,
        grid_size=codes_from.model.grid_size,
        condition_grid=0,
        attention_blocks=0,
        steps_at_tiny=500,
        source=f"vqvae-weights-{weights_fingerprint(model)[:16]}",
        **train_overrides,
    )


def _code_prior(
    scale: str,
    codes_from: Experiment,
    num_codes: int,
    grid_size: int,
    condition_grid: int,
    attention_blocks: int,
    steps_at_tiny: int,
    source: str,
    **train_overrides: Any,
) -> Experiment:
    """An unconditional gated PixelCNN over code grids (chapter 4's priors)."""
    # tiny: narrower and shallower than chapter 3's prior, because K = 512 codes
    # make every layer and the output head dearer; evaluated once, at the end
    channels, layers = {"tiny": (40, 5), "small": (128, 12), "full": (256, 15)}[
        check_scale(scale)
    ]
    tiny = scale == "tiny"
    steps = {"tiny": steps_at_tiny, "small": 20_000, "full": 200_000}[scale]
    train = TrainConfig(
        steps=steps,
        batch_size=32 if tiny else 128,
        lr=2e-3 if tiny else 1e-3,
        log_every=50 if tiny else 100,
        eval_every=0 if tiny else 2000,
        checkpoint_every=200 if tiny else 1000,
    )
    return Experiment(
        model=PixelCNNConfig(
            num_codes=num_codes,
            grid_size=grid_size,
            channels=channels,
            layers=layers,
            kernel_size=3 if tiny else 5,
            num_classes=0,
            class_dropout=0.0,
            condition_codes=num_codes if condition_grid else 0,
            condition_grid=condition_grid,
            attention_blocks=attention_blocks,
        ),
        train=replace(train, **train_overrides),
        data=codes_from.data,
        scale=scale,
        source=source,
    )


def attribute_judge(scale: str, **train_overrides: Any) -> Experiment:
    """The shapes-world attribute judge that scores chapters 4 to 8: 32 x 32
    scenes at tiny scale, 64 x 64 above."""
    from .models.judge import JudgeConfig

    tiny = check_scale(scale) == "tiny"
    size = 32 if tiny else 64
    n_train = {"tiny": None, "small": 50_000, "full": 200_000}[scale]  # None: 10,000
    train = TrainConfig(
        steps={"tiny": 800, "small": 6000, "full": 20_000}[scale],
        batch_size=64 if tiny else 128,
        lr=4e-3 if tiny else 2e-3,
        log_every=50 if tiny else 100,
        checkpoint_every=400 if tiny else 1000,
    )
    return Experiment(
        model=JudgeConfig(
            image_size=size,
            channels=(16, 32, 64) if tiny else (32, 64, 128),
            hidden=128 if tiny else 256,
        ),
        train=replace(train, **train_overrides),
        data=DataConfig(name="shapes", image_size=size, n_train=n_train),
        scale=scale,
    )
