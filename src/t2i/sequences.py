"""Pictures -> the token sequences chapter 5's transformer priors learn.

    class prior:         [class | image codes 0 ... n-1]          1 + n tokens
    segmentation prior:  [map codes 0 ... n-1 | image codes 0 ... n-1]   2n tokens

Image codes are tokens 0 ... K - 1; condition tokens (a class, a map's codes)
are offset by K, so one vocabulary holds both. The segmentation prior
learns from random ``k x k`` windows cut from 2 x 2 tiles of scenes' code
grids (the same window from the map's codes and the picture's), so it has
seen windows
that do not start at a picture's corner: what the sliding-window sampler
(:mod:`t2i.models.window`) asks of it.
"""

from __future__ import annotations

import torch
from torch import nn

from . import shapes

CLASS_ATTRIBUTE = "colour"  # the class of chapter 5's class-conditional prior
NUM_CLASSES = len(shapes.COLOURS)


def class_sequences(
    codes: torch.Tensor, attributes: torch.Tensor, num_codes: int
) -> torch.Tensor:
    """Code grids ``(N, h, w)`` and their scenes' tables -> ``(N, 1 + h w)``
    sequences led by the class token ``num_codes + class``, the class being
    the colour of the scene's first object.

    Why colour, not shape: measured at tiny (600 steps), a prior given the
    first object's shape drew it no more often than chance (14% of samples
    against 21% for always the commonest shape): its blobs do not have
    shapes yet. Given the colour, 33% of samples had it (chance: 17%)."""
    classes = shapes.first_object(attributes, CLASS_ATTRIBUTE)
    if (classes < 0).any():
        raise ValueError("every scene needs an object to have a class")
    return torch.cat([num_codes + classes[:, None], codes.flatten(1)], 1)


def condition_tokens(
    segmentation_vq: nn.Module, maps: torch.Tensor, num_codes: int
) -> torch.Tensor:
    """Segmentation maps ``(N, S, S)`` -> their codes ``(N, h, w)``, offset by
    ``num_codes`` to sit after the image codes in the vocabulary."""
    return num_codes + segmentation_vq.codes(shapes.one_hot_segmentation(maps))


def random_windows(
    grids: tuple[torch.Tensor, ...],
    window: int,
    per_grid: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    """``per_grid`` random ``window x window`` crops of each grid ``(N, H, W)``,
    at the same place in every tensor of ``grids``: ``(N * per_grid, k, k)``."""
    n, height, width = grids[0].shape
    if window > min(height, width):
        raise ValueError(
            f"a {window} x {window} window does not fit a {height} x {width} grid"
        )
    grid = torch.arange(n).repeat(per_grid)
    top = torch.randint(0, height - window + 1, (len(grid),), generator=generator)
    left = torch.randint(0, width - window + 1, (len(grid),), generator=generator)
    rows = (top[:, None] + torch.arange(window))[:, :, None]
    cols = (left[:, None] + torch.arange(window))[:, None, :]
    return tuple(g[grid[:, None, None], rows, cols] for g in grids)


def segmentation_sequences(
    image_codes: torch.Tensor,
    map_tokens: torch.Tensor,
    window: int,
    per_picture: int = 4,
    seed: int = 0,
) -> torch.Tensor:
    """Tile the scenes' code grids 2 x 2 (in a shuffled order) and cut
    ``per_picture`` random windows from each tile: ``(M, 2 k k)`` sequences of
    map tokens, then image codes.

    ``image_codes`` are the pictures' codes ``(N, h, w)``, ``map_tokens`` their
    maps' offset codes from :func:`condition_tokens`, both computed once by the
    caller. The grids are tiled, not the pictures: each scene is encoded at
    the size the models were trained on, and a tile of codes decodes to the
    tile of pictures (the decoders are convolutional)."""
    if image_codes.shape != map_tokens.shape:
        raise ValueError(
            f"image codes {tuple(image_codes.shape)} and map tokens "
            f"{tuple(map_tokens.shape)} must be grids of the same scenes"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(image_codes), generator=generator)
    order = order[: len(order) // 4 * 4]
    map_windows, image_windows = random_windows(
        (shapes.tile(map_tokens[order]), shapes.tile(image_codes[order])),
        window,
        per_picture,
        generator,
    )
    return torch.cat([map_windows.flatten(1), image_windows.flatten(1)], 1)
