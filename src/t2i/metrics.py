"""Numbers the chapters report, kept in one place so every chapter measures
them the same way."""

from __future__ import annotations

import math

import torch


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for images with values in [0, peak]."""
    return 10 * math.log10(peak**2 / mse)


@torch.no_grad()
def nearest_labels(
    query: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor, k: int = 10
) -> torch.Tensor:
    """The majority label among the ``k`` nearest ``codes`` of each query point.

    Used as a cheap stand-in for "which digit does the decoder draw here":
    near a cluster of encoded 3s the decoder draws a 3. A tied vote goes to
    the tied label whose nearest member is closest (``torch.mode`` would
    always pick the smallest label, and about one vote in ten is a tie).
    """
    nearest = (
        torch.cdist(query, codes).topk(k, largest=False).indices
    )  # (Q, k), nearest first
    neighbour_labels = labels[nearest]  # (Q, k)
    votes = torch.nn.functional.one_hot(neighbour_labels, int(labels.max()) + 1).sum(1)
    tied = votes == votes.max(1, keepdim=True).values  # (Q, C): the winning labels
    winner_at = tied.gather(
        1, neighbour_labels
    )  # (Q, k): neighbour has a winning label
    first = winner_at.int().argmax(1)  # the nearest such neighbour
    return neighbour_labels.gather(1, first[:, None])[:, 0]


def class_mix(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The fraction of each class among ``labels``."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    return counts / counts.sum()


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """Half the L1 distance between two distributions: 0 = equal, 1 = disjoint."""
    return 0.5 * (p - q).abs().sum().item()
