"""A GPT-style decoder: the prior of chapters 5 to 7.

    tokens (B, T) -> token + position embeddings -> n_layer blocks -> LayerNorm -> logits (B, T, V)
    block: x + self_attention(LN(x)) [+ cross_attention(LN(x), context)] + mlp(LN(x))

Pre-norm blocks as in GPT-2 and nanoGPT. Attention goes through
``F.scaled_dot_product_attention``. Three additions over a plain GPT, each
optional:

* ``mask``: an extra ``(L, L)`` boolean mask over the whole sequence, True
  where a position may attend, or one per layer, ``(n_layer, L, L)``
  (DALL·E's row, column and convolutional masks, chapter 6). It is combined
  with the causal mask, never replaces it.
* cross-attention to a ``context`` sequence (a caption encoder's output,
  chapter 7), with an optional ``context_mask`` for padding.
* a key/value cache for sampling: each new token attends to the stored keys
  and values of the earlier ones instead of recomputing them, so sampling
  ``T`` tokens costs ``T`` single-token passes, not ``T`` full passes.

``prefix_length`` is the number of condition tokens at the start of every
sequence (a class token, segmentation codes). The loss counts only the
predictions of the tokens after the prefix: with ``n`` condition and ``n``
image tokens, the model is fed the first ``2n - 1`` tokens and the logits at
positions ``n - 1 ... 2n - 2`` predict image tokens ``0 ... n - 1``.
References: Radford et al., "Language Models are Unsupervised Multitask
Learners" (GPT-2); Karpathy, nanoGPT; Esser et al., arXiv:2012.09841.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..sample import sample_logits
from ..validate import check_non_negative, check_probability, check_sizes


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 512
    block_size: int = 256  # the longest sequence the model reads
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    prefix_length: int = 0  # condition tokens whose own prediction is not trained
    context_dim: int = 0  # width of a cross-attention context; 0: no cross-attention
    # 0: one learned embedding per position. g > 0: the sequence is a run of
    # g x g grids in raster order (a map's codes, then a picture's), and a
    # position is embedded as grid index + row + column (GridPositions)
    grid_size: int = 0

    def __post_init__(self):
        check_sizes(self, "vocab_size", "block_size", "n_layer", "n_head", "n_embd")
        check_non_negative(self, "prefix_length", "context_dim", "grid_size")
        check_probability(self, "dropout", one=False)
        if self.n_embd % self.n_head:
            raise ValueError(
                f"TransformerConfig.n_embd ({self.n_embd}) must be divisible by "
                f"n_head ({self.n_head})"
            )
        if self.prefix_length >= self.block_size:
            raise ValueError(
                f"TransformerConfig.prefix_length ({self.prefix_length}) must be "
                f"shorter than block_size ({self.block_size})"
            )


@dataclass
class LayerCache:
    """The keys and values one attention layer has seen so far.

    They live in buffers ``(B, H, capacity, d)`` that double when full, so a
    new token's keys are written in place: appending the whole cache to
    itself at every step (``torch.cat``) would copy ``T^2 / 2`` rows over a
    sequence of ``T`` tokens, doubling copies fewer than ``2 T``.
    """

    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    length: int = 0

    def append(
        self, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` ``(B, H, t, d)`` after the earlier ones; return all of them."""
        end = self.length + k.shape[2]
        if self.keys is None or end > self.keys.shape[2]:
            capacity = max(end, 2 * self.length, 16)
            grown = [k.new_empty(*k.shape[:2], capacity, k.shape[3]) for _ in range(2)]
            if self.keys is not None:
                grown[0][:, :, : self.length] = self.keys[:, :, : self.length]
                grown[1][:, :, : self.length] = self.values[:, :, : self.length]
            self.keys, self.values = grown
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


# A mask that says "causal": row i may read columns 0 .. i
CAUSAL = "causal"


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``source`` is None."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, source_dim: int = 0):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.query = nn.Linear(n_embd, n_embd)
        self.key_value = nn.Linear(source_dim or n_embd, 2 * n_embd)
        self.out = nn.Linear(n_embd, n_embd)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        source: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """``mask`` is a boolean ``(T, S)`` or ``(B, 1, T, S)``, True = may
        attend; None: all may; :data:`CAUSAL`: each position its own and
        earlier ones (SDPA's ``is_causal``, without building the mask)."""
        heads = {"pattern": "b t (n d) -> b n t d", "n": self.n_head}
        q = rearrange(self.query(x), **heads)
        k, v = (
            rearrange(part, **heads)
            for part in self.key_value(x if source is None else source).chunk(2, -1)
        )
        if cache is not None:  # prepend what earlier calls have seen
            k, v = cache.append(k, v)
        mixed = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if mask is CAUSAL else mask,
            is_causal=mask is CAUSAL,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(rearrange(mixed, "b n t d -> b t (n d)"))


class GridPositions(nn.Module):
    """Position embeddings for a sequence of ``g x g`` grids: the sum of a
    learned embedding of the grid's index, of the row and of the column.

    The same cell of two grids (a map's code and the picture's code it
    conditions) then shares its row and column embeddings, so attending from
    a picture's cell to the map's cell below it is one query-key match to
    learn, where separate embeddings for 2 g^2 positions leave that pairing
    to be found position by position. DALL·E embeds image positions by row
    and column too (chapter 6).
    """

    def __init__(self, block_size: int, grid_size: int, n_embd: int):
        super().__init__()
        self.grid_size = grid_size
        self.grid = nn.Embedding(-(-block_size // grid_size**2), n_embd)
        self.row = nn.Embedding(grid_size, n_embd)
        self.column = nn.Embedding(grid_size, n_embd)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        g = self.grid_size
        grid, cell = positions // (g * g), positions % (g * g)
        return self.grid(grid) + self.row(cell // g) + self.column(cell % g)


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        d = config.n_embd
        self.norm_attention = nn.LayerNorm(d)
        self.attention = Attention(d, config.n_head, config.dropout)
        self.cross = None
        if config.context_dim:
            self.norm_cross = nn.LayerNorm(d)
            self.cross = Attention(d, config.n_head, config.dropout, config.context_dim)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 4 * d),
            nn.GELU(),
            nn.Linear(4 * d, d),
            nn.Dropout(config.dropout),
        )

    def forward(self, x, mask, context, context_mask, cache) -> torch.Tensor:
        x = x + self.attention(self.norm_attention(x), mask, cache=cache)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), context_mask, source=context)
        return x + self.mlp(self.norm_mlp(x))


class Transformer(nn.Module):
    def __init__(
        self, config: TransformerConfig, position_embedding: nn.Module | None = None
    ):
        """``position_embedding`` maps positions ``(T,)`` to ``(T, n_embd)``;
        by default one learned vector per position, or :class:`GridPositions`."""
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        if position_embedding is None:
            position_embedding = (
                GridPositions(config.block_size, config.grid_size, config.n_embd)
                if config.grid_size
                else nn.Embedding(config.block_size, config.n_embd)
            )
        self.position_embedding = position_embedding
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # tied, as in GPT-2
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_cache(self) -> list[LayerCache]:
        """An empty key/value cache, one entry per block, for :meth:`forward`."""
        return [LayerCache() for _ in self.blocks]

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        cache: list[LayerCache] | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, T, V)``: position t predicts token t + 1 from tokens <= t.

        With ``cache``, ``tokens`` continue the sequence the cache has seen.
        ``mask`` is an extra boolean mask over the whole sequence (L >= its
        length), ``(L, L)`` for every layer or ``(n_layer, L, L)`` one per
        layer, combined with the causal one. ``context_mask`` is a
        ``(B, S)`` boolean, True for context entries that may be read.
        """
        start = 0 if cache is None else cache[0].length
        t = tokens.shape[1]
        self._check(tokens, start + t, mask, context)
        positions = torch.arange(start, start + t, device=tokens.device)
        x = self.drop(self.token_embedding(tokens) + self.position_embedding(positions))
        if mask is None and t == 1:
            allowed = None  # one new token may read every earlier one
        elif mask is None and start == 0:
            allowed = CAUSAL  # the fused kernel, no (T, T) mask built
        else:  # row i (position start + i) may read columns 0 .. start + i
            allowed = torch.ones(
                t, start + t, dtype=torch.bool, device=tokens.device
            ).tril(start)
        layer_allowed = [allowed] * len(self.blocks)
        if mask is not None:
            window = mask[..., start : start + t, : start + t].to(tokens.device)
            layer_allowed = [
                allowed & (window if mask.ndim == 2 else window[i])
                for i in range(len(self.blocks))
            ]
        if context_mask is not None:
            context_mask = context_mask[
                :, None, None, :
            ]  # (B, 1, 1, S) over heads and rows
        for i, block in enumerate(self.blocks):
            x = block(
                x,
                layer_allowed[i],
                context,
                context_mask,
                None if cache is None else cache[i],
            )
        return self.head(self.norm(x))

    def _check(self, tokens, length, mask, context) -> None:
        c = self.config
        if tokens.ndim != 2:
            raise ValueError(
                f"expected token sequences of shape (batch, length), got {tuple(tokens.shape)}"
            )
        if length > c.block_size:
            raise ValueError(
                f"a sequence of {length} tokens is longer than block_size {c.block_size}; "
                f"build the model with block_size >= {length} or feed fewer tokens"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= c.vocab_size):
            raise ValueError(
                f"tokens must lie in [0, {c.vocab_size}), got {tokens.min()}..{tokens.max()}"
            )
        if mask is not None and (
            mask.dtype != torch.bool
            or mask.shape[-1] < length
            or mask.ndim not in (2, 3)
            or (mask.ndim == 3 and mask.shape[0] != c.n_layer)
        ):
            raise ValueError(
                f"mask must be a boolean (L, L) or ({c.n_layer}, L, L) tensor with "
                f"L >= {length} (True = may attend), got {mask.dtype} of shape "
                f"{tuple(mask.shape)}"
            )
        if (context is not None) != bool(c.context_dim):
            raise ValueError(
                "pass context= exactly when the model has cross-attention "
                f"(TransformerConfig.context_dim = {c.context_dim})"
            )

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Next-token cross-entropy on the tokens after the prefix.

        ``batch[0]`` is ``(B, L)`` tokens, ``batch[1]`` the context if the model
        has cross-attention. The model reads ``tokens[:, :-1]``; the logits from
        position ``prefix_length - 1`` on predict ``tokens[:, prefix_length:]``.
        """
        tokens = batch[0]
        context = batch[1] if self.config.context_dim else None
        first = max(self.config.prefix_length - 1, 0)
        logits = self(tokens[:, :-1], context=context)[:, first:]
        targets = tokens[:, first + 1 :]
        nats = F.cross_entropy(rearrange(logits, "b t v -> (b t) v"), targets.flatten())
        return {"loss": nats, "bits_per_token": nats / math.log(2)}

    @torch.no_grad()
    def generate(
        self,
        prefix: torch.Tensor,
        steps: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        use_cache: bool = True,
        num_choices: int | None = None,
    ) -> torch.Tensor:
        """Continue ``prefix`` ``(B, P)`` by ``steps`` sampled tokens; returns
        ``(B, P + steps)``. ``use_cache=False`` reruns the whole sequence at
        every step (the slow way, kept to measure the cache against).
        ``num_choices`` samples only tokens ``0 ... num_choices - 1``: the image
        codes, where condition tokens share the vocabulary after them."""
        if num_choices is not None and not 0 < num_choices <= self.config.vocab_size:
            raise ValueError(
                f"num_choices must lie in 1..{self.config.vocab_size} (the "
                f"vocabulary), got {num_choices}"
            )
        if prefix.ndim != 2 or prefix.shape[1] == 0:
            raise ValueError(
                "generate needs a prefix of at least one token per sequence, shape "
                f"(batch, P >= 1); got {tuple(prefix.shape)}. Start unconditional "
                "sequences with a start or class token."
            )
        tokens = prefix
        cache = self.new_cache() if use_cache else None
        fresh = tokens  # what the model has not read yet
        for _ in range(steps):
            logits = self(
                fresh if use_cache else tokens,
                mask=mask,
                context=context,
                context_mask=context_mask,
                cache=cache,
            )[:, -1, :num_choices]
            new = sample_logits(logits, temperature, top_k, top_p, generator)[:, None]
            tokens = torch.cat([tokens, new], dim=1)
            fresh = new
        return tokens
