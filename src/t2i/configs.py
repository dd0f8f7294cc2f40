"""Scale presets: one code path, three sizes.

========  =====================================  ==============================
scale     hardware                               data
========  =====================================  ==============================
tiny      a laptop CPU, offline (the website)    shipped or procedural samples
small     one GPU (Colab T4 and up)              full MNIST, CIFAR-10
full      GPUs for hours (longer schedules)      full MNIST, CIFAR-10
========  =====================================  ==============================

Every scale runs in the same loop; launched by ``torchrun`` it trains
data-parallel over several GPUs (:mod:`t2i.distributed`), with the same
global batch sizes as here.

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
from .models.dvae import DVAEConfig
from .models.pixelcnn import PixelCNNConfig
from .models.transformer import TransformerConfig
from .models.vae import VAEConfig
from .models.vqgan import DiscriminatorConfig, VQGANConfig
from .models.vqvae import VQVAEConfig
from .models.vqvae2 import VQVAE2Config
from .quantize import VQConfig
from .shapes import COLOURS, SHAPES
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


# ---- chapter 5: VQGAN and its transformer priors ----
# Shapes world at every scale: the judge and the segmentation maps exist only
# there. tiny: 32 x 32 at factor 4 (an 8 x 8 grid, 64 codes), the grid and
# codebook of chapter 4's one-level VQ-VAE, so the two compare at equal
# settings. small and full: 64 x 64 at factor 8 (8 x 8 codes again).
# tiny has no GroupNorm. Measured at tiny, 500 steps of batch 16, squared
# error only: with GroupNorm the judge read 37% of the reconstructed colours
# right (test error 0.0058), without it 92% (0.0031); every object came out
# brown. taming trains for days, and its GroupNorm is kept at small and full.
# Batch 16, not the VQ-VAE's 32: a VQGAN step costs about twice as much, and
# the tiny chapter has a time budget; the chapter says so beside its numbers.
_VQGAN = {
    "tiny": (
        DataConfig(name="shapes", image_size=32),
        {
            "channels": (16, 32, 64),
            "residual_blocks": 0,
            "disc_start": 500,
            "normalise": False,
        },
        DiscriminatorConfig(channels=32, layers=2),
        VQConfig(num_codes=64, code_dim=32, ema=True, restart_dead=True),
        TrainConfig(
            steps=1000, batch_size=16, lr=2e-3, log_every=20, checkpoint_every=500
        ),
    ),
    "small": (
        DataConfig(name="shapes", image_size=64, n_train=50_000),
        {"channels": (64, 128, 128, 256), "residual_blocks": 2, "disc_start": 10_000},
        DiscriminatorConfig(channels=64, layers=3),
        VQConfig(num_codes=512, code_dim=64, ema=True, restart_dead=True),
        TrainConfig(
            steps=30_000, batch_size=64, lr=4.5e-4, log_every=100, checkpoint_every=1000
        ),
    ),
    "full": (
        DataConfig(name="shapes", image_size=64, n_train=200_000),
        {"channels": (128, 128, 256, 256), "residual_blocks": 2, "disc_start": 30_000},
        DiscriminatorConfig(channels=64, layers=3),
        VQConfig(num_codes=1024, code_dim=256, ema=True, restart_dead=True),
        TrainConfig(
            steps=150_000,
            batch_size=64,
            lr=4.5e-4,
            log_every=100,
            checkpoint_every=5000,
        ),
    ),
}


def vqgan(
    scale: str, perceptual: str = "", perceptual_weight: float = 1.0, **overrides: Any
) -> Experiment:
    """The chapter-5 VQGAN. ``perceptual`` names the network behind the
    perceptual loss (e.g. the judge's weights' SHA-256, or "lpips-vgg"): it is
    part of the cache key. ``overrides`` may change the model (``disc_start``,
    ``disc_weight``) or the training (``steps``, ...)."""
    data, shape, discriminator, vq, train = _VQGAN[check_scale(scale)]
    model_fields = {"disc_start", "disc_weight", "perceptual_weight"}
    model_overrides = {k: v for k, v in overrides.items() if k in model_fields}
    train_overrides = {k: v for k, v in overrides.items() if k not in model_fields}
    return Experiment(
        model=VQGANConfig(
            in_channels=3,
            image_size=data.image_size,
            vq=vq,
            discriminator=discriminator,
            output_offset=0.85,
            perceptual_weight=perceptual_weight,
            **(shape | model_overrides),
        ),
        train=replace(train, **train_overrides),
        data=data,
        scale=scale,
        source=f"perceptual-{perceptual}",
    )


def vqvae_baseline(scale: str, **train_overrides: Any) -> Experiment:
    """Chapter 3's VQ-VAE at the VQGAN's data, grid, codebook and training
    budget: MSE only, no attention, no discriminator. At tiny it is chapter
    4's one-level model, so a built book trains it once."""
    if check_scale(scale) == "tiny":
        return vqvae_one_level(scale, **train_overrides)
    gan = vqgan(scale, **train_overrides)
    return Experiment(
        model=VQVAEConfig(
            in_channels=3,
            image_size=gan.model.image_size,
            channels=gan.model.channels[1:],
            residual_blocks=gan.model.residual_blocks,
            vq=gan.model.vq,
            output_offset=gan.model.output_offset,
        ),
        train=gan.train,
        data=gan.data,
        scale=scale,
    )


def segmentation_vq(scale: str, **train_overrides: Any) -> Experiment:
    """A small VQ-VAE over one-hot segmentation maps (background + 5 shapes):
    the condition's own encoder, on the same grid as the VQGAN's codes."""
    gan = vqgan(scale)
    tiny = scale == "tiny"
    return Experiment(
        model=VQVAEConfig(
            in_channels=1 + len(SHAPES),
            image_size=gan.model.image_size,
            channels=(32,) * (len(gan.model.channels) - 1),
            residual_blocks=1,
            vq=VQConfig(num_codes=32, code_dim=16, ema=True, restart_dead=True),
        ),
        train=replace(
            TrainConfig(
                steps=400 if tiny else 5000,
                batch_size=32 if tiny else 128,
                lr=2e-3 if tiny else 1e-3,
                log_every=20 if tiny else 100,
                checkpoint_every=200 if tiny else 1000,
            ),
            **train_overrides,
        ),
        data=gan.data,
        scale=scale,
    )


def vqgan_prior(
    scale: str,
    condition: str,
    codes_from: Experiment,
    model: nn.Module,
    condition_model: nn.Module | None = None,
    **train_overrides: Any,
) -> Experiment:
    """A GPT-style prior over the code grid of the trained VQGAN ``model``.

    ``condition="class"``: one class token (the first object's colour) before
    the n image codes. ``condition="segmentation"``: the n codes of a
    segmentation map (from ``condition_model``, a :func:`segmentation_vq`)
    before the n image codes, as in taming's conditional transformer; the
    block holds all 2n tokens so the off-by-one reading can be shown. Image
    codes are tokens 0 ... K - 1; condition tokens come after them.
    """
    if condition not in ("class", "segmentation"):
        raise ValueError(
            f"unknown condition {condition!r}; use 'class' or 'segmentation'"
        )
    gan = codes_from.model
    n = gan.grid_size**2
    k = gan.vq.num_codes
    source = f"vqgan-weights-{weights_fingerprint(model)[:16]}"
    if condition == "class":
        vocab, block, prefix = k + len(COLOURS), 1 + n, 1
    else:
        if condition_model is None:
            raise ValueError(
                "a segmentation prior needs condition_model=, the trained "
                "segmentation VQ (configs.segmentation_vq)"
            )
        vocab = k + condition_model.config.vq.num_codes
        block, prefix = 2 * n, n
        source += f"-segmentation-{weights_fingerprint(condition_model)[:16]}"
    tiny = check_scale(scale) == "tiny"
    # tiny: 3 layers at lr 3e-3 trained faster and as well as 4 at 2e-3 (500
    # steps; segmentation prior: foreground IoU 0.42 against 0.43 for 800
    # steps of batch 16 with 4 layers, in 35 s against 43 s)
    width, layers = {"tiny": (64, 3), "small": (256, 8), "full": (512, 12)}[scale]
    steps = {
        "tiny": 500,
        "small": 20_000,
        "full": 100_000,
    }[scale]
    train = TrainConfig(
        steps=steps,
        batch_size=32 if tiny else 64,
        lr=3e-3 if tiny else 4.5e-4,
        log_every=25 if tiny else 100,
        checkpoint_every=100 if tiny else 1000,
        eval_every=0 if tiny else 2000,
    )
    return Experiment(
        model=TransformerConfig(
            vocab_size=vocab,
            block_size=block,
            n_layer=layers,
            n_head=4 if tiny else 8,
            n_embd=width,
            prefix_length=prefix,
            # map and picture as two grids (GridPositions). Measured at tiny
            # (500 steps of 4 layers at lr 2e-3): one embedding per position ended at 3.47 bits per code in
            # training and its samples covered their maps' objects with a
            # foreground IoU of 0.08 (another scene's map: 0.03); grid
            # positions ended at 3.19 bits, IoU 0.36 (0.05)
            grid_size=gan.grid_size if condition == "segmentation" else 0,
        ),
        train=replace(train, **train_overrides),
        data=codes_from.data,
        scale=scale,
        source=source,
    )


def _split_overrides(overrides: dict, model_class: type) -> tuple[dict, dict]:
    """Keyword overrides -> (those that are fields of ``model_class``, the rest,
    which go to the TrainConfig)."""
    fields = set(model_class.__dataclass_fields__)
    return (
        {k: v for k, v in overrides.items() if k in fields},
        {k: v for k, v in overrides.items() if k not in fields},
    )


def _caption_model_training(scale: str) -> TrainConfig:
    """One training for chapter 6's and chapter 7's transformers, so the two
    compare at equal steps and batch."""
    tiny = scale == "tiny"
    return TrainConfig(
        steps={"tiny": 1000, "small": 30_000, "full": 200_000}[scale],
        batch_size=32 if tiny else 128,
        lr=3e-3 if tiny else 4.5e-4,
        log_every=25 if tiny else 100,
        checkpoint_every=250 if tiny else 1000,
    )


# ---- chapter 6: DALL·E ----
# Shapes world at every scale (captions and the judge exist only there). tiny:
# the grid, codebook, widths and training budget of chapter 4's one-level
# VQ-VAE (configs.vqvae_one_level), so the dVAE and straight-through VQ
# compare at equal settings. small and full: 64 x 64 scenes, 16 x 16 codes.
# Measured at tiny (1,000 steps of batch 32), the judge reading 1,000
# held-out scenes rebuilt from their argmax codes (shape / colour / texture):
# sigma 0.1: 45% / 73% / 35%; sigma 0.05 (kept): 50% / 87% / 35%; sigma 0.05
# with K = 512: 52% / 89% / 35% (81 codes used); sigma 0.05 on a 16 x 16 grid
# (one halving, K = 64): 83% / 97% / 36%. The grid, not the codebook, limits
# the shapes; no setting tried rebuilt the stripes and dots.
_DVAE = {
    "tiny": (
        DataConfig(name="shapes", image_size=32),
        {"channels": (48, 48), "residual_blocks": 1, "num_codes": 64, "code_dim": 32},
        TrainConfig(
            steps=1000, batch_size=32, lr=2e-3, log_every=20, checkpoint_every=500
        ),
    ),
    "small": (
        DataConfig(name="shapes", image_size=64, n_train=50_000),
        {
            "channels": (128, 128),
            "residual_blocks": 2,
            "num_codes": 1024,
            "code_dim": 64,
        },
        TrainConfig(
            steps=20_000, batch_size=64, lr=1e-3, log_every=100, checkpoint_every=1000
        ),
    ),
    "full": (
        DataConfig(name="shapes", image_size=64, n_train=200_000),
        {
            "channels": (256, 256),
            "residual_blocks": 4,
            "num_codes": 8192,
            "code_dim": 128,
        },
        TrainConfig(
            steps=100_000, batch_size=128, lr=1e-3, log_every=100, checkpoint_every=5000
        ),
    ),
}


def dvae(scale: str, **overrides: Any) -> Experiment:
    """The chapter-6 dVAE. Both schedules (tau from 1 to 1/16, beta from 0 to
    6.6, cosine) run over the whole training at tiny; the paper anneals tau
    over its first 150,000 of 3 million updates and beta over 5,000, far too
    few at tiny to see anything. ``overrides`` may change the model (e.g.
    ``sigma``, ``straight_through``) or the training."""
    data, shape, train = _DVAE[check_scale(scale)]
    steps = overrides.get("steps", train.steps)
    model_overrides, train_overrides = _split_overrides(overrides, DVAEConfig)
    schedule = {
        "tau_steps": steps,
        "kl_steps": steps if scale == "tiny" else max(1, steps // 20),
    }
    return Experiment(
        model=DVAEConfig(
            in_channels=3,
            image_size=data.image_size,
            # shapes world's grey background; other pictures may override it
            **(
                {"output_offset": 0.85}
                | shape
                | schedule
                | {"sigma": 0.05}
                | model_overrides
            ),
        ),
        train=replace(train, **train_overrides),
        data=data,
        scale=scale,
    )


def dalle(
    scale: str,
    codes_from: Experiment,
    model: nn.Module,
    text_vocab: int,
    text_length: int,
    **overrides: Any,
) -> Experiment:
    """The chapter-6 transformer over ``text_length`` caption tokens (from a
    tokenizer of ``text_vocab`` tokens) and the code grid of the trained dVAE
    ``model``. ``overrides`` may change the model (``sparse``, ``n_layer``,
    ``n_embd``, ...) or the training (``steps``, ...)."""
    from .models.dalle import DalleConfig

    codec = codes_from.model
    tiny = check_scale(scale) == "tiny"
    # tiny, measured with word-level tokens (36 words, 34 per caption), 1,000
    # steps of batch 32 at lr 3e-3, 4 layers of width 64, judged on 200 held-out
    # captions, one sample each: the paper's sparse masks put an object in the
    # asked-for cell 92% of the time with the asked-for colour 51% (shape 25%);
    # dense attention in every layer 85% and 46% (shape 19%). The same sparse
    # model trained 3,000 steps: 98% and 80% (shape 35%, size 88%; on seen
    # captions 97%, 79%, 35%, 91%).
    width, layers, heads = {
        "tiny": (64, 4, 4),
        "small": (384, 12, 6),
        "full": (768, 24, 12),
    }[scale]
    train = _caption_model_training(scale)
    model_overrides, train_overrides = _split_overrides(overrides, DalleConfig)
    return Experiment(
        model=DalleConfig(
            text_vocab=text_vocab,
            text_length=text_length,
            num_codes=codec.num_codes,
            grid_size=codec.grid_size,
            n_layer=layers,
            n_head=heads,
            n_embd=width,
            conv_kernel=3 if tiny else 5,
            **model_overrides,
        ),
        train=replace(train, **train_overrides),
        data=codes_from.data,
        scale=scale,
        source=f"dvae-weights-{weights_fingerprint(model)[:16]}",
    )


def small_clip(scale: str, tokenizer, **train_overrides: Any) -> Experiment:
    """The chapter-6 CLIP: open_clip's CLIP class at a small size, reading the
    ``tokenizer``'s compact BPE ids (its vocabulary is part of the cache key
    through the config)."""
    from .models.clip import tiny_clip_config, tiny_clip_training

    check_scale(scale)
    size = 32 if scale == "tiny" else 64
    return Experiment(
        model=tiny_clip_config(tokenizer, image_size=size),
        train=replace(tiny_clip_training(), **train_overrides),
        data=DataConfig(name="shapes", image_size=size),
        scale=scale,
    )


def clip_data_options(scale: str) -> dict:
    """Keyword arguments of :func:`t2i.models.clip.clip_data` for ``scale``."""
    check_scale(scale)
    return {}


# ---- chapter 7: DALL·E mini ----
def dalle_mini(
    scale: str, codes_from: Experiment, model: nn.Module, tokenizer, **overrides: Any
) -> Experiment:
    """The chapter-7 encoder-decoder over the ``tokenizer``'s caption ids and
    the code grid of the trained VQGAN ``model`` (chapter 5's; a dVAE of
    chapter 6 works too, for the chapter's exercise). ``overrides``
    may change the model (``caption_dropout``, ``encoder_layers``, ...) or
    the training (``steps``, ...).

    tiny: the training of chapter 6's transformer (1,000 steps of batch 32 at
    lr 3e-3) and its width, with 2 encoder and 4 decoder layers, so that one
    training step costs what DALL·E's does: 3.73 against 3.83 GFLOP per step
    of batch 32 (torch's FlopCounterMode, forward and backward)."""
    from .models.seq2seq import Seq2SeqConfig

    codec = codes_from.model
    num_codes = codec.vq.num_codes if hasattr(codec, "vq") else codec.num_codes
    check_scale(scale)
    width, encoder, decoder, heads = {
        "tiny": (64, 2, 4, 4),
        "small": (384, 6, 12, 6),
        "full": (768, 12, 24, 12),
    }[scale]
    train = _caption_model_training(scale)
    model_overrides, train_overrides = _split_overrides(overrides, Seq2SeqConfig)
    return Experiment(
        model=Seq2SeqConfig(
            **{
                "text_vocab": tokenizer.vocab_size,
                "text_length": tokenizer.text_length,
                "first_pad_id": tokenizer.first_pad_id,
                "num_codes": num_codes,
                "grid_size": codec.grid_size,
                "encoder_layers": encoder,
                "decoder_layers": decoder,
                "n_head": heads,
                "n_embd": width,
                "caption_dropout": 0.1,
            }
            | model_overrides
        ),
        train=replace(train, **train_overrides),
        data=codes_from.data,
        scale=scale,
        source=f"codes-weights-{weights_fingerprint(model)[:16]}",
    )


# ---- chapter 8: VQGAN-CLIP ----
def vqgan_clip(scale: str, pretrained: bool = False, **overrides: Any):
    """How chapter 8 steers: a :class:`t2i.models.vqgan_clip.SteerConfig`.

    Nothing is trained, so this is the loop's settings only. tiny (chapter
    5's VQGAN and chapter 6's small CLIP, 32 x 32): 100 Adam steps at lr 0.3
    with 32 cutouts of at least half the picture. Measured on 24 held-out
    captions (judge accuracy position / shape / colour, 2 CPU cores): lr 0.2
    65% / 16% / 41%, lr 0.3 73% / 22% / 53% at 0.8 s per picture; 16 cutouts
    halve the time for 69% / 22% / 47%; 150 steps at lr 0.2 (1.2 s per
    picture) did no better. small and full: the book's 64 x 64 models, twice
    the steps at lr 0.2. ``pretrained``: taming's VQGAN at 256 x 256 with
    open_clip's ViT-B/32, at Crowson's settings (lr 0.1, 32 cutouts between
    224 and 256 pixels, resized to CLIP's 224)."""
    from .models.vqgan_clip import SteerConfig

    check_scale(scale)
    if pretrained:
        base = SteerConfig(steps=300, lr=0.1, cutouts=32, min_cut=224 / 256)
    elif scale == "tiny":
        base = SteerConfig(steps=100, lr=0.3, cutouts=32, min_cut=0.5)
    else:
        base = SteerConfig(steps=200, lr=0.2, cutouts=32, min_cut=0.5)
    return replace(base, **overrides)
