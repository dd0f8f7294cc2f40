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
            steps=1000, batch_size=64, lr=3e-3, log_every=50, checkpoint_every=500
        ),
    ),
    "small": (
        DataConfig(source="auto"),
        (32, 64),
        TrainConfig(
            steps=12_000, batch_size=256, lr=2e-3, log_every=100, checkpoint_every=1000
        ),
    ),
    "full": (
        DataConfig(source="auto"),
        (64, 128),
        TrainConfig(
            steps=50_000, batch_size=256, lr=1e-3, log_every=100, checkpoint_every=2000
        ),
    ),
}


def autoencoder(
    scale: str, latent_dim: int = 2, binarize: bool = False, **train_overrides: Any
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
        steps=15_000, batch_size=128, lr=1e-3, log_every=100, checkpoint_every=1000
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
