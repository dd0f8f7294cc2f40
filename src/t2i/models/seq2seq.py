"""DALL·E mini's shape: a bidirectional caption encoder and a causal code decoder.

    caption tokens (B, T) --encoder (no causal mask)--> context (B, T, D)
    [start, code_0 ... code_{N-2}] --decoder (causal, cross-attends to context)--> logits of code_0 ... code_{N-1}

DALL·E (chapter 6) reads the caption with the same causal transformer that
writes the picture, so an early caption token never sees a later one. BART,
and DALL·E mini after it, encode the caption with a *bidirectional* encoder:
every text position reads every other, and the decoder reads the whole
encoded caption at every step through cross-attention (chapter 5's
transformer with ``context_dim``).

Training replaces a share of the captions by the empty caption (all
padding), so the same model also learns p(codes) without text. Sampling can
then push away from it, DALL·E mini's "super-conditioning":

    logits = logits(empty) + s * (logits(caption) - logits(empty))

with s = 1 the plain conditional model and s = 0 the unconditional one
(:func:`t2i.sample.super_condition`). Both are computed in one batch, with
one key/value cache. References: Lewis et al., "BART", arXiv:1910.13461;
Dayma et al., "DALL·E Mini" (github.com/borisdayma/dalle-mini); Ho and
Salimans, "Classifier-Free Diffusion Guidance", arXiv:2207.12598.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..sample import sample_logits, super_condition
from ..validate import check_non_negative, check_sizes, check_text_tokens
from .transformer import Block, Transformer, TransformerConfig


@dataclass(frozen=True)
class Seq2SeqConfig:
    text_vocab: int = 75  # the tokenizer's ids, pads included (chapter 6: 75)
    text_length: int = 34  # T
    first_pad_id: int = 41  # the empty caption is pads first_pad_id ... + T - 1
    num_codes: int = 64  # K: the image tokenizer's codebook
    grid_size: int = 8  # the picture is g x g codes
    encoder_layers: int = 2
    decoder_layers: int = 4
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    caption_dropout: float = 0.1  # share of training captions made empty

    def __post_init__(self):
        check_sizes(self, "text_vocab", "text_length", "num_codes", "grid_size")
        check_sizes(self, "encoder_layers", "decoder_layers", "n_head", "n_embd")
        check_non_negative(self, "dropout", "first_pad_id")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(
                f"Seq2SeqConfig.caption_dropout must lie in [0, 1), got "
                f"{self.caption_dropout}"
            )
        if self.first_pad_id + self.text_length > self.text_vocab:
            raise ValueError(
                f"Seq2SeqConfig: the pads first_pad_id ({self.first_pad_id}) + "
                f"text_length ({self.text_length}) must fit in text_vocab "
                f"({self.text_vocab}); take them from the tokenizer"
            )

    @property
    def image_length(self) -> int:
        return self.grid_size**2


class TextEncoder(nn.Module):
    """Token + position embeddings, pre-norm blocks without any mask, LayerNorm."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        block_config = TransformerConfig(
            vocab_size=config.text_vocab,
            block_size=config.text_length,
            n_layer=config.encoder_layers,
            n_head=config.n_head,
            n_embd=config.n_embd,
            dropout=config.dropout,
        )
        self.token_embedding = nn.Embedding(config.text_vocab, config.n_embd)
        self.position_embedding = nn.Embedding(config.text_length, config.n_embd)
        self.blocks = nn.ModuleList(
            Block(block_config) for _ in range(config.encoder_layers)
        )
        self.norm = nn.LayerNorm(config.n_embd)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """Text tokens ``(B, T)`` -> context ``(B, T, D)``; every position reads all."""
        positions = torch.arange(text.shape[1], device=text.device)
        x = self.token_embedding(text) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x, None, None, None, None)  # mask None: bidirectional
        return self.norm(x)


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = TextEncoder(config)
        # decoder vocabulary: the K codes and a start token (K)
        self.decoder = Transformer(
            TransformerConfig(
                vocab_size=c.num_codes + 1,
                block_size=c.image_length,
                n_layer=c.decoder_layers,
                n_head=c.n_head,
                n_embd=c.n_embd,
                dropout=c.dropout,
                context_dim=c.n_embd,
                grid_size=c.grid_size,
            )
        )
        empty = torch.arange(c.text_length) + c.first_pad_id
        self.register_buffer("empty_text", empty, persistent=False)

    @property
    def start_token(self) -> int:
        return self.config.num_codes

    def drop_captions(self, text: torch.Tensor) -> torch.Tensor:
        """Replace each caption by the empty one with probability caption_dropout."""
        dropped = (
            torch.rand(len(text), device=text.device) < self.config.caption_dropout
        )
        return torch.where(dropped[:, None], self.empty_text.to(text.device), text)

    def forward(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, N, K + 1)`` for code grids ``(B, g, g)`` given their text:
        position i predicts code i from the start token and codes 0 ... i - 1."""
        check_text_tokens(text, self.config.text_length, self.config.text_vocab)
        codes = rearrange(codes, "b h w -> b (h w)")
        start = torch.full_like(codes[:, :1], self.start_token)
        inputs = torch.cat([start, codes[:, :-1]], dim=1)
        return self.decoder(inputs, context=self.encoder(text))

    def loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """``batch = (text (B, T), codes (B, g, g))``; captions dropped in training."""
        text, codes = batch[0], batch[1]
        if self.training:
            text = self.drop_captions(text)
        logits = self(text, codes)
        nats = F.cross_entropy(rearrange(logits, "b n v -> (b n) v"), codes.flatten())
        return {"loss": nats, "bits_per_code": nats / math.log(2)}

    @torch.no_grad()
    def generate(
        self,
        text: torch.Tensor,
        scale: float = 1.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Text tokens ``(B, T)`` -> code grids ``(B, g, g)``, with
        super-conditioning ``scale`` (1: plain conditional sampling). For any
        other scale the caption and the empty caption run as one batch of 2B
        with one cache; guidance acts on the logits before temperature, top-k
        and top-p."""
        check_text_tokens(text, self.config.text_length, self.config.text_vocab)
        super_condition(torch.zeros(1), torch.zeros(1), scale)  # checks the scale
        c = self.config
        b = len(text)
        guided = scale != 1  # s = 1 is the conditional model: no empty caption
        if guided:
            text = torch.cat([text, self.empty_text.expand(b, -1)])
        context = self.encoder(text)
        cache = self.decoder.new_cache()
        fresh = torch.full((len(text), 1), self.start_token, device=text.device)
        codes = []
        for _ in range(c.image_length):
            logits = self.decoder(fresh, context=context, cache=cache)[
                :, -1, : c.num_codes
            ]
            if guided:
                logits = super_condition(logits[:b], logits[b:], scale)
            new = sample_logits(logits, temperature, top_k, top_p, generator)
            codes.append(new)
            fresh = (torch.cat([new, new]) if guided else new)[:, None]
        return rearrange(torch.stack(codes, 1), "b (h w) -> b h w", h=c.grid_size)
