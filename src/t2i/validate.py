"""Checks that configs run when they are made, so a bad value fails at once
with its name and the allowed range, not deep inside torch ("negative
dimension") minutes later."""

from __future__ import annotations

import torch


def _where(owner: object, name: str) -> str:
    return f"{type(owner).__name__}.{name}"


def check_sizes(owner: object, *names: str) -> None:
    """Sizes and counts (an int, or a tuple of ints) must be whole numbers >= 1."""
    for name in names:
        value = getattr(owner, name)
        items = value if isinstance(value, tuple) else (value,)
        if not items or not all(isinstance(v, int) and v >= 1 for v in items):
            raise ValueError(
                f"{_where(owner, name)} must be a whole number >= 1"
                f"{' for every entry' if isinstance(value, tuple) else ''}, "
                f"got {value!r}"
            )


def check_positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not value > 0:
            raise ValueError(f"{_where(owner, name)} must be > 0, got {value!r}")


def check_non_negative(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not value >= 0:
            raise ValueError(f"{_where(owner, name)} must be >= 0, got {value!r}")


def check_probability(
    owner: object, name: str, *, zero: bool = True, one: bool = True
) -> None:
    """A probability or rate in [0, 1]; ``zero``/``one`` say whether the ends are allowed."""
    value = getattr(owner, name)
    low_ok = value >= 0 if zero else value > 0
    high_ok = value <= 1 if one else value < 1
    if not (low_ok and high_ok):
        interval = f"{'[' if zero else '('}0, 1{']' if one else ')'}"
        raise ValueError(f"{_where(owner, name)} must lie in {interval}, got {value!r}")


def check_code_grids(
    grids: torch.Tensor, what: str, size: int, num_codes: int, batch: int | None = None
) -> None:
    """Raise a ValueError naming ``what`` unless ``grids`` are ``(batch, size, size)``
    code indices in ``[0, num_codes)`` (and ``batch`` of them, if given)."""
    leading = "batch" if batch is None else batch
    if (
        grids.ndim != 3
        or grids.shape[1:] != (size, size)
        or (batch is not None and len(grids) != batch)
    ):
        raise ValueError(
            f"expected {what} of shape ({leading}, {size}, {size}), "
            f"got {tuple(grids.shape)}"
        )
    if grids.min() < 0 or grids.max() >= num_codes:
        raise ValueError(
            f"{what} must lie in [0, {num_codes}), got {grids.min()}..{grids.max()}"
        )


def check_text_tokens(text: torch.Tensor, text_length: int, text_vocab: int) -> None:
    """Caption tokens ``(batch, text_length)`` with ids in ``[0, text_vocab)``,
    as chapter 6's tokenizer makes them (DALL·E and its encoder-decoder)."""
    if text.ndim != 2 or text.shape[1] != text_length:
        raise ValueError(
            f"expected text tokens of shape (batch, {text_length}) from the "
            f"tokenizer (CaptionTokenizer(text_length={text_length})), got "
            f"{tuple(text.shape)}"
        )
    if text.numel() and (text.min() < 0 or text.max() >= text_vocab):
        raise ValueError(
            f"text tokens must lie in [0, {text_vocab}), got "
            f"{text.min()}..{text.max()}: was the model built for this tokenizer?"
        )
