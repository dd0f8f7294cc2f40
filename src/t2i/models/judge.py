"""The attribute judge: a small CNN that reads a shapes-world picture back
into its (9, 4) attribute table.

    image (3, S, S) --cut--> 9 cell windows (3, w, w), each read by the same
        form path:   convs -> 3 x 3 map -> MLP -> shape or empty, size, texture
        colour path: per-pixel MLP -> max over pixels -> colour

Later chapters score generated pictures with it: does the picture show what
the caption asked for, also for the (colour, shape) pairs no training set
has? A single path learns that blue things are never circles and reads a
blue circle as a square (82% shape accuracy on the held-out split, against
99% on the test split). So shape has its own colour-blind path: in training
it sees each window with its RGB channels shuffled, and colour is read by a
path that only sees single pixels, so it cannot tell shapes apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..nn import check_images
from ..shapes import ATTRIBUTES, COLOURS, MIN_SIZE, SHAPES, SIZES, TEXTURES
from ..validate import check_sizes

CLASSES = {  # head sizes; the shape head's last class is "empty cell"
    "shape": len(SHAPES) + 1,
    "colour": len(COLOURS),
    "size": len(SIZES),
    "texture": len(TEXTURES),
}
EMPTY = len(SHAPES)
PERMUTATIONS = torch.tensor(list(itertools.permutations(range(3))))  # of RGB


@dataclass(frozen=True)
class JudgeConfig:
    image_size: int = 32
    channels: tuple[int, ...] = (32, 64, 128)  # first at full size, then each halves
    hidden: int = 128  # width of the per-cell MLP
    chunk_size: int = 500  # images per forward pass in read/accuracy (memory)

    def __post_init__(self):
        check_sizes(self, "image_size", "channels", "hidden", "chunk_size")
        if self.image_size < MIN_SIZE:
            raise ValueError(
                f"JudgeConfig.image_size must be >= {MIN_SIZE} (shapes world's "
                f"smallest pictures), got {self.image_size}"
            )


def cell_windows(size: int) -> tuple[int, torch.Tensor]:
    """Side of the square window read around each cell, and the windows' first
    rows (or columns) in a picture padded by 1 px: cells are S/3 px, not whole."""
    window = size // 3 + 2
    centres = (torch.arange(3) + 0.5) * size / 3 + 1  # +1: the padding
    return window, (centres - window / 2).round().long()


class AttributeJudge(nn.Module):
    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = config
        layers, previous = [], 3
        for i, width in enumerate(config.channels):
            layers += [
                nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            previous = width
        # form: shape, size and texture, from a 3 x 3 map of conv features
        self.form = nn.Sequential(
            *layers,
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(previous * 9, config.hidden),
            nn.ReLU(),
        )
        # colour: per-pixel features (1 x 1 convs), the strongest of each kept
        self.colour = nn.Sequential(
            nn.Conv2d(3, 16, 1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(32, config.hidden),
            nn.ReLU(),
        )
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.hidden, k) for name, k in CLASSES.items()}
        )
        window, starts = cell_windows(config.image_size)
        offsets = starts[:, None] + torch.arange(window)  # (3, window)
        self.register_buffer("offsets", offsets, persistent=False)

    def cells(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) -> the 9 cells' windows (B * 9, 3, w, w), row-major."""
        check_images(images, 3, self.config.image_size)
        padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
        rows = self.offsets[:, None, :, None]  # (3, 1, w, 1)
        cols = self.offsets[None, :, None, :]  # (1, 3, 1, w)
        windows = padded[:, :, rows, cols]  # (B, 3, 3, 3, w, w)
        return rearrange(windows, "b c i j h w -> (b i j) c h w")

    def forward(
        self, images: torch.Tensor, form_cells: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Images (B, 3, S, S) -> logits per cell, e.g. "shape": (B, 9, 6).

        ``form_cells`` replaces the windows the form path reads (training
        feeds it colour-shuffled ones).
        """
        cells = self.cells(images)
        form = self.form(cells if form_cells is None else form_cells)
        hidden = {"colour": self.colour(cells)} | dict.fromkeys(
            ("shape", "size", "texture"), form
        )
        return {
            name: rearrange(head(hidden[name]), "(b n) k -> b n k", n=9)
            for name, head in self.heads.items()
        }

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Cross-entropy of every head; colour, size and texture on occupied cells only."""
        images, attributes = batch[0], batch[1]
        form_cells = None
        if self.training:  # shuffle the colour channels of each window the form
            # path sees, so it cannot learn that blue things are never circles
            cells = self.cells(images)
            order = PERMUTATIONS.to(cells.device)[
                torch.randint(len(PERMUTATIONS), (len(cells),), device=cells.device)
            ]
            form_cells = cells.gather(1, order[:, :, None, None].expand_as(cells))
        logits = self(images, form_cells)
        occupied = attributes[..., 0] >= 0  # (B, 9)
        target = {"shape": attributes[..., 0].where(occupied, EMPTY)}
        target |= {a: attributes[..., i] for i, a in enumerate(ATTRIBUTES) if i}
        metrics = {}
        for name, head_logits in logits.items():
            keep = occupied if name != "shape" else torch.ones_like(occupied)
            chosen, truth = head_logits[keep], target[name][keep]
            metrics[name] = F.cross_entropy(chosen, truth)
            metrics[f"{name}_accuracy"] = (chosen.argmax(-1) == truth).float().mean()
        metrics["loss"] = sum(metrics[name] for name in CLASSES)
        return metrics

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax of every head, computed in eval mode in chunks, on the CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        parts = [
            self(chunk.to(device)) for chunk in images.split(self.config.chunk_size)
        ]
        self.train(was_training)
        return {
            name: torch.cat([p[name] for p in parts]).softmax(-1).cpu()
            for name in CLASSES
        }

    @staticmethod
    def _reading(probs: dict[str, torch.Tensor]) -> torch.Tensor:
        table = torch.stack([probs[a].argmax(-1) for a in ATTRIBUTES], dim=-1)
        empty = table[..., :1] == EMPTY
        return table.masked_fill(empty, -1)

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> torch.Tensor:
        """The attribute table the judge sees: (B, 9, 4), -1 for cells read as empty."""
        return self._reading(self.probabilities(images))

    @torch.no_grad()
    def confidence(self, images: torch.Tensor) -> torch.Tensor:
        """(B,) in [0, 1]: the judge's least sure decision about a picture.

        Per cell, the probability of its own reading: of "empty" for an empty
        cell, else the smallest of the four attributes' top probabilities.
        """
        probs = self.probabilities(images)
        top = torch.stack([probs[a].max(-1).values for a in ATTRIBUTES], dim=-1)
        empty = probs["shape"].argmax(-1) == EMPTY
        per_cell = top.min(-1).values.where(~empty, top[..., 0])  # (B, 9)
        return per_cell.min(-1).values

    def _compare(self, images: torch.Tensor, attributes: torch.Tensor):
        attributes = torch.as_tensor(attributes).cpu()
        if attributes.shape != (len(images), 9, 4):
            raise ValueError(
                f"expected attribute tables of shape ({len(images)}, 9, 4), "
                f"got {tuple(attributes.shape)}"
            )
        reading = self.read(images)
        occupied = attributes[..., 0] >= 0
        return reading == attributes, (reading[..., 0] >= 0) == occupied, occupied

    @torch.no_grad()
    def agreement(self, images: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        """(B,) fraction of a scene's claims the picture shows.

        An object claims 5 things (it is there, and its 4 attributes); an
        empty cell claims 1 (nothing is there).
        """
        right, present, occupied = self._compare(images, attributes)
        per_object = present.float() + (right & occupied[..., None]).sum(-1)
        scored = per_object.where(occupied, present.float())
        claims = torch.where(occupied, 5.0, 1.0)
        return scored.sum(-1) / claims.sum(-1)

    @torch.no_grad()
    def accuracy(
        self, images: torch.Tensor, attributes: torch.Tensor
    ) -> dict[str, float]:
        """Per attribute over objects (read in the object's own cell);
        "position": objects whose cell is read as occupied; "presence" over
        all 9 cells; "object": all four attributes right where it is;
        "scene": the whole table right."""
        right, present, occupied = self._compare(images, attributes)
        result = {
            a: right[..., i][occupied].float().mean().item()
            for i, a in enumerate(ATTRIBUTES)
        }
        result["position"] = present[occupied].float().mean().item()
        result["presence"] = present.float().mean().item()
        result["object"] = right.all(-1)[occupied].float().mean().item()
        result["scene"] = right.all(-1).all(-1).float().mean().item()
        return result
