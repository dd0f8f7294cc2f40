"""Turning a prior's logits into a token: temperature, top-k and top-p.

Every autoregressive prior in the book (the PixelCNN of chapter 3, the
transformers of chapters 5 to 7) ends a step with one logit per code. This
module is the only place that turns those logits into a choice:

* **temperature** T divides the logits: T < 1 sharpens the distribution
  (safer, less varied samples), T > 1 flattens it; T = 0 means argmax, and
  so does any T below ``GREEDY_BELOW``, where dividing by T would overflow.
* **top-k** keeps the k most likely codes and renormalises.
* **top-p** (nucleus) keeps the smallest set of codes whose probabilities add
  up to at least p, so the set is small where the model is sure and large
  where it is not.
Reference: Holtzman et al., "The Curious Case of Neural Text Degeneration",
arXiv:1904.09751 (top-p).
"""

from __future__ import annotations

import math

import torch

# Temperatures below this count as 0 (argmax): logits / 1e-45 overflow to inf,
# and softmax of inf is NaN. At 1e-6 a logit gap of 1e-4 is already a factor e^100.
GREEDY_BELOW = 1e-6


def check_settings(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise a ValueError that names the allowed range of each setting."""
    if temperature < 0:
        raise ValueError(
            f"temperature must be >= 0 (0 = always the most likely code), got {temperature}"
        )
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p}")


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Set the logits outside the top-k / top-p set to -inf (last axis)."""
    check_settings(1.0, top_k, top_p)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a code when the codes before it already reach p; the first always stays
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one index per row of ``logits`` ``(..., K)``; returns shape ``(...)``."""
    check_settings(temperature, top_k, top_p)
    impossible = torch.isneginf(logits).all(-1) | torch.isnan(logits).any(-1)
    if impossible.any():
        row = impossible.flatten().nonzero()[0].item()
        raise ValueError(
            f"row {row} of the logits gives no code a chance (all -inf, or NaN); "
            f"check the mask or constraint applied before sampling, and the model "
            f"for NaN outputs"
        )
    if temperature < GREEDY_BELOW:
        return logits.argmax(-1)
    probabilities = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
    flat = probabilities.reshape(-1, probabilities.shape[-1])
    if generator is not None:  # a generator lives on one device; draw there
        flat = flat.to(generator.device)
    choice = torch.multinomial(flat, 1, generator=generator)
    return choice.to(logits.device).reshape(logits.shape[:-1])


def super_condition(
    conditional: torch.Tensor, unconditional: torch.Tensor, scale: float
) -> torch.Tensor:
    """DALL·E mini's super-conditioning (classifier-free guidance on logits):
    ``unconditional + scale * (conditional - unconditional)``. ``scale`` 1 is
    the conditional model, 0 the unconditional one, above 1 pushes further
    from what the model would draw without the caption. Apply it before
    temperature, top-k and top-p, as dalle-mini does."""
    if conditional.shape != unconditional.shape:
        raise ValueError(
            f"conditional and unconditional logits must have one shape, got "
            f"{tuple(conditional.shape)} and {tuple(unconditional.shape)}"
        )
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"the super-conditioning scale must be >= 0, got {scale!r}")
    return unconditional + scale * (conditional - unconditional)
