"""DALL·E's transformer: one decoder over a caption's tokens and a picture's codes.

    [text_0 ... text_{T-1} | code_0 ... code_{N-1}]   N = g x g codes in raster order
      text: BPE tokens, then a padding token *per position* up to T
      codes: the dVAE's argmax codes of the picture

One sequence, one next-token objective: the model learns p(text) and
p(codes | text) together, and at sampling time it is handed a caption and
writes the N codes. Four things make it DALL·E's and not chapter 5's prior:

* text positions have one learned embedding each; image positions the sum of
  a row and a column embedding (:class:`DallePositions`);
* the loss is the text's cross-entropy and the image's, each averaged over
  its own tokens, weighted 1/8 and 7/8: the image is what the model is for;
* every image token reads every text token, but only some earlier image
  tokens: layer ``i`` (counting from 1) uses column attention when
  ``(i - 2) mod 4 = 0``, row attention otherwise, and the last layer a
  causal convolutional neighbourhood (:func:`attention_masks`). The paper
  uses these sparse masks to afford 1,024 image tokens; here they go to
  chapter 5's transformer as per-layer masks;
* image and text tokens share one vocabulary: codes are ``0 ... K - 1``, text
  tokens ``K ... K + V - 1``, so sampling restricts itself to the first K.

Reference: Ramesh et al., "Zero-Shot Text-to-Image Generation",
arXiv:2102.12092 (section 2.2 and appendix B); Child et al., "Generating Long
Sequences with Sparse Transformers", arXiv:1904.10509.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..validate import check_non_negative, check_sizes, check_text_tokens
from .transformer import Transformer, TransformerConfig

KINDS = ("row", "column", "convolutional", "dense")


@dataclass(frozen=True)
class DalleConfig:
    text_vocab: int = 64  # the tokenizer's vocabulary, padding tokens included
    text_length: int = 40  # T: every caption is padded to this many tokens
    num_codes: int = 64  # K: the dVAE's codebook
    grid_size: int = 8  # g: the picture is g x g codes
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    conv_kernel: int = 3  # side of the last layer's causal neighbourhood (paper: 11)
    text_weight: float = 1 / 8  # of the text's loss; the image's is 1 - text_weight
    sparse: bool = True  # False: plain causal attention in every layer

    def __post_init__(self):
        check_sizes(self, "text_vocab", "text_length", "num_codes", "grid_size")
        check_sizes(self, "n_layer", "n_head", "n_embd", "conv_kernel")
        check_non_negative(self, "dropout")
        if self.conv_kernel % 2 == 0:
            raise ValueError(
                f"DalleConfig.conv_kernel must be odd (a neighbourhood centred on "
                f"the cell), got {self.conv_kernel}"
            )
        if not 0 <= self.text_weight <= 1:
            raise ValueError(
                f"DalleConfig.text_weight must lie in [0, 1], got {self.text_weight}"
            )

    @property
    def image_length(self) -> int:
        return self.grid_size**2

    @property
    def length(self) -> int:
        return self.text_length + self.image_length


def layer_kinds(n_layer: int, sparse: bool = True) -> list[str]:
    """The paper's rule: layer ``i = 1 ... n_layer - 1`` uses column attention
    when ``(i - 2) mod 4 = 0`` and row attention otherwise; the last layer is
    convolutional. (So layers 2, 6, 10, ... are column layers.)"""
    if not sparse:
        return ["dense"] * n_layer
    kinds = ["column" if (i - 2) % 4 == 0 else "row" for i in range(1, n_layer)]
    return kinds + ["convolutional"]


def image_mask(kind: str, grid_size: int, conv_kernel: int = 3) -> torch.Tensor:
    """Which earlier image tokens an image token may read, ``(N, N)`` boolean
    over raster positions (query rows, key columns), itself included:

    * row: the ``g`` tokens before it in raster order, which ends at the token
      above it (the paper's mask (a): it wraps around into the previous row);
    * column: every earlier token in its column;
    * convolutional: the earlier tokens of the ``k x k`` neighbourhood centred
      on it (rows up to ``k // 2`` above, columns up to ``k // 2`` either side;
      no wrap-around);
    * dense: every earlier token.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; use one of {KINDS}")
    g = grid_size
    index = torch.arange(g * g)
    query, key = index[:, None], index[None, :]
    earlier = key <= query
    row, column = index // g, index % g
    if kind == "row":
        near = query - key <= g
    elif kind == "column":
        near = column[:, None] == column[None, :]
    elif kind == "convolutional":
        reach = conv_kernel // 2
        near = (row[:, None] - row[None, :] <= reach) & (
            (column[:, None] - column[None, :]).abs() <= reach
        )
    else:
        near = torch.ones(g * g, g * g, dtype=torch.bool)
    return earlier & near


def attention_masks(config: DalleConfig) -> torch.Tensor:
    """One ``(L, L)`` boolean mask per layer, ``(n_layer, L, L)``, True = may
    attend: text reads earlier text; an image token reads all text and the
    image tokens its layer's kind allows (:func:`image_mask`)."""
    t, n = config.text_length, config.image_length
    masks = []
    for kind in layer_kinds(config.n_layer, config.sparse):
        mask = torch.zeros(t + n, t + n, dtype=torch.bool)
        mask[:t, :t] = torch.ones(t, t, dtype=torch.bool).tril()
        mask[t:, :t] = True
        mask[t:, t:] = image_mask(kind, config.grid_size, config.conv_kernel)
        masks.append(mask)
    return torch.stack(masks)


class DallePositions(nn.Module):
    """Text positions: one learned vector each. Image positions: row + column."""

    def __init__(self, text_length: int, grid_size: int, n_embd: int):
        super().__init__()
        self.text_length, self.grid_size = text_length, grid_size
        self.text = nn.Embedding(text_length, n_embd)
        self.row = nn.Embedding(grid_size, n_embd)
        self.column = nn.Embedding(grid_size, n_embd)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        t, g = self.text_length, self.grid_size
        is_text = positions < t
        cell = (positions - t).clamp_min(0)
        image = self.row(cell // g) + self.column(cell % g)
        text = self.text(positions.clamp_max(t - 1))
        return torch.where(is_text[:, None], text, image)


class Dalle(nn.Module):
    def __init__(self, config: DalleConfig):
        super().__init__()
        self.config = config
        c = config
        self.transformer = Transformer(
            TransformerConfig(
                vocab_size=c.num_codes + c.text_vocab,
                block_size=c.length,
                n_layer=c.n_layer,
                n_head=c.n_head,
                n_embd=c.n_embd,
                dropout=c.dropout,
            ),
            position_embedding=DallePositions(c.text_length, c.grid_size, c.n_embd),
        )
        self.register_buffer("masks", attention_masks(config), persistent=False)

    def sequences(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Text tokens ``(B, T)`` and code grids ``(B, g, g)`` -> ``(B, T + N)``
        in the shared vocabulary (text shifted past the K codes)."""
        check_text_tokens(text, self.config.text_length, self.config.text_vocab)
        codes = rearrange(codes, "b h w -> b (h w)")
        if codes.shape[1] != self.config.image_length:
            raise ValueError(
                f"expected {self.config.grid_size} x {self.config.grid_size} code "
                f"grids, got {codes.shape[1]} codes per picture"
            )
        return torch.cat([text + self.config.num_codes, codes], dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T', V)`` of sequences ``(B, T')``, under the layer masks."""
        return self.transformer(tokens, mask=self.masks)

    def losses(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Text and image cross-entropy, each averaged over its own predictions."""
        t = self.config.text_length
        logits = self(tokens[:, :-1])
        nats = F.cross_entropy(
            rearrange(logits, "b l v -> b v l"), tokens[:, 1:], reduction="none"
        )  # (B, T + N - 1): position p predicts token p + 1
        text, image = nats[:, : t - 1], nats[:, t - 1 :]
        return {"text": text.mean(), "image": image.mean()}

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        parts = self.losses(batch[0])
        w = self.config.text_weight
        return {
            "loss": w * parts["text"] + (1 - w) * parts["image"],
            "text_loss": parts["text"].detach(),
            "image_loss": parts["image"].detach(),
            "image_bits_per_code": parts["image"].detach() / math.log(2),
        }

    @torch.no_grad()
    def generate(
        self,
        text: torch.Tensor,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Text tokens ``(B, T)`` -> sampled code grids ``(B, g, g)``: the N
        codes one at a time, each from the logits of the token before it,
        restricted to the K image codes."""
        check_text_tokens(text, self.config.text_length, self.config.text_vocab)
        c = self.config
        tokens = self.transformer.generate(
            text + c.num_codes,
            steps=c.image_length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            mask=self.masks,
            use_cache=use_cache,
            num_choices=c.num_codes,
        )
        return rearrange(tokens[:, c.text_length :], "b (h w) -> b h w", h=c.grid_size)
