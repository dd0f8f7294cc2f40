"""Captions to tokens: CLIP's byte-pair encoding, cut down to shapes world.

DALL·E reads a caption as byte-pair-encoded (BPE) tokens: frequent words are
one piece, rare ones a few ("hexagon" -> "hex" "agon</w>"; "</w>" marks the
end of a word). We use the real thing, the BPE of CLIP as open_clip ships it
(``SimpleTokenizer``, 49,408 pieces), and keep only the pieces a shapes-world
caption can contain, renumbered 0, 1, 2, ... A model then needs an embedding
table of a few dozen rows instead of 49,408. Every shapes-world word happens
to be a single piece of CLIP's vocabulary (it was learned on web text, where
"triangle" is common), so BPE only splits words from outside shapes world.

    ids: [0, P) the BPE pieces, sorted | unknown | start | end | pad 0 ... pad T-1

Two layouts of the same pieces:

* :meth:`CaptionTokenizer.encode`, for DALL·E: the caption's pieces, then
  padding up to ``text_length``. As in the paper, each text position has its
  own padding token, so "no text here" at position 3 is a different input
  from "no text here" at position 40, and a caption-free sample is all pads.
* :meth:`CaptionTokenizer.clip_tokens`, for the small CLIP of
  :mod:`t2i.models.clip`: start, pieces, end, then padding. CLIP's text
  transformer is causal and reads the caption off the end token, so the
  padding after it is never seen; any id would do, and we reuse ``pad 0``.

For captions from outside shapes world (web captions in webdataset shards,
:mod:`t2i.shards`), :func:`fitted_tokenizer` with ``max_pieces`` keeps the
pieces those captions use most instead, and ``max_length`` cuts the long
ones (DALL·E cut its captions at 256 tokens).

A word with a piece outside the compact vocabulary becomes ONE unknown token,
however many BPE pieces it has: "magenta" and "hexagon" each count as one
token, so a caption's length in tokens never depends on how rare its unknown
words are. Captions are lower-cased (CLIP's cleaning), so "Red" is "red".
"""

from __future__ import annotations

import re
from functools import cache

import torch

from . import shapes

UNKNOWN, START, END = "<unknown>", "<start>", "<end>"


@cache
def clip_bpe():
    """open_clip's CLIP tokenizer; its vocabulary file ships with the package."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def _words(text: str) -> list[str]:
    """CLIP's cleaning (lower case, whitespace) and its split into words and marks."""
    bpe = clip_bpe()
    return bpe.pat.findall(bpe.clean_fn(text))


@cache
def _bpe_pieces(word: str) -> tuple[str, ...]:
    bpe = clip_bpe()
    word = "".join(bpe.byte_encoder[b] for b in word.encode("utf-8"))
    return tuple(bpe.bpe(word).split(" "))


def caption_words() -> tuple[str, ...]:
    """Every word and punctuation mark a shapes-world caption can contain, sorted.

    Words come from shapes.py's constants; the marks are those
    :func:`shapes.caption` writes (found by captioning a three-object scene in
    every style), plus the full stop, which :func:`shapes.parse_caption`
    accepts from a reader.
    """
    texts = [
        *shapes.SHAPES,
        *shapes.COLOURS,
        *shapes.SIZES,
        *shapes.TEXTURES,
        *shapes._TEXTURE_WORDS.values(),
        *shapes.POSITIONS,
        *shapes._FILLER,
        ".",
    ]
    table = torch.full((9, 4), -1)
    table[[0, 4, 8]] = torch.tensor([0, 0, 0, 1])  # three striped objects
    table[4, 3] = 0  # the centre one solid (style 2 says "plain")
    texts += [shapes.caption(table, style) for style in range(shapes.CAPTION_STYLES)]
    return tuple(sorted({word for text in texts for word in _words(text)}))


@cache
def compact_pieces() -> tuple[str, ...]:
    """The sorted BPE pieces of :func:`caption_words`: the compact vocabulary."""
    return tuple(sorted({p for word in caption_words() for p in _bpe_pieces(word)}))


def _check_captions(captions) -> list[str]:
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
        raise TypeError(
            f"expected a list of captions (strings), got {type(captions).__name__}; "
            f"wrap a single caption in a list: [caption]"
        )
    for caption in captions:
        if not isinstance(caption, str):
            raise TypeError(
                f"captions must be strings, got {type(caption).__name__} "
                f"({caption!r}); convert them with str() first"
            )
    return list(captions)


class CaptionTokenizer:
    """Captions to ids of a compact BPE vocabulary, and back: shapes world's
    pieces unless ``pieces`` (sorted BPE pieces) says otherwise."""

    def __init__(self, text_length: int, pieces: tuple[str, ...] | None = None):
        if not isinstance(text_length, int) or isinstance(text_length, bool):
            raise TypeError(f"text_length must be an int, got {text_length!r}")
        if text_length < 1:
            raise ValueError(f"text_length must be >= 1, got {text_length}")
        self.text_length = text_length
        pieces = compact_pieces() if pieces is None else tuple(pieces)
        self.unknown_id = len(pieces)
        self.start_id = self.unknown_id + 1
        self.end_id = self.unknown_id + 2
        self.first_pad_id = self.unknown_id + 3
        self.vocab_size = self.first_pad_id + text_length
        # id -> readable name: the BPE piece itself, or "<pad 7>"
        self.names = [*pieces, UNKNOWN, START, END]
        self.names += [f"<pad {i}>" for i in range(text_length)]
        self._ids = {piece: i for i, piece in enumerate(pieces)}
        self._words: dict[str, list[int]] = {}  # word -> its ids

    def __repr__(self) -> str:
        return (
            f"CaptionTokenizer(text_length={self.text_length}): "
            f"{self.unknown_id} BPE pieces + 3 specials + {self.text_length} pads "
            f"= {self.vocab_size} ids"
        )

    def pad_id(self, position: int) -> int:
        """The padding token of text position ``position`` (0 to text_length - 1)."""
        if not 0 <= position < self.text_length:
            raise ValueError(
                f"position must lie in [0, {self.text_length}), got {position!r}"
            )
        return self.first_pad_id + position

    @property
    def clip_pad_id(self) -> int:
        """Padding after CLIP's end token: never read, so one id does."""
        return self.first_pad_id

    # ---------------------------------------------------------------- splitting

    def _word_ids(self, word: str) -> list[int]:
        if word not in self._words:  # each word is split once
            ids = [self._ids.get(piece) for piece in _bpe_pieces(word)]
            self._words[word] = [self.unknown_id] if None in ids else ids
        return self._words[word]

    def ids(self, caption: str) -> list[int]:
        """The caption's piece ids, no specials; an unknown word is one unknown id."""
        return [i for word in _words(caption) for i in self._word_ids(word)]

    def pieces(self, caption: str) -> list[str]:
        """The caption as readable pieces, one per token: ["a</w>", "red</w>", ...]."""
        (caption,) = _check_captions([caption])
        return [self.names[i] for i in self.ids(caption)]

    def _checked_ids(self, caption: str, room: int, what: str) -> list[int]:
        ids = self.ids(caption)
        if len(ids) > room:
            shown = caption if len(caption) <= 80 else caption[:77] + "..."
            raise ValueError(
                f"the caption {shown!r} is {len(ids)} tokens long, but {what}; "
                f"shorten it, or build CaptionTokenizer(text_length={len(ids)}) "
                f"(or larger)"
            )
        return ids

    # ---------------------------------------------------------------- layouts

    def encode(self, captions: list[str], truncate: bool = False) -> torch.Tensor:
        """DALL·E's layout, ``(N, text_length)`` long: pieces, then the pad of
        each position left (no start or end). An empty caption is all pads.
        A caption too long is an error, or with ``truncate`` cut to fit."""
        pads = list(range(self.first_pad_id, self.vocab_size))
        rows = []
        for caption in _check_captions(captions):
            if truncate:
                ids = self.ids(caption)[: self.text_length]
            else:
                ids = self._checked_ids(
                    caption, self.text_length, f"text_length is {self.text_length}"
                )
            rows.append(ids + pads[len(ids) :])
        return torch.tensor(rows, dtype=torch.long).reshape(-1, self.text_length)

    def clip_tokens(
        self, captions: list[str], context_length: int | None = None
    ) -> torch.Tensor:
        """CLIP's layout, ``(N, context_length)`` long: start, pieces, end, then
        ``clip_pad_id``. ``context_length`` defaults to text_length + 2, room
        for every caption :meth:`encode` takes."""
        captions = _check_captions(captions)
        length = self.text_length + 2 if context_length is None else context_length
        if not isinstance(length, int) or length < 2:
            raise ValueError(
                f"context_length must be an int >= 2 (start and end), got {length!r}"
            )
        if length - 2 > self.text_length:
            raise ValueError(
                f"context_length {length} leaves room for {length - 2} tokens, more "
                f"than text_length={self.text_length}; use at most "
                f"{self.text_length + 2}, or a tokenizer with a larger text_length"
            )
        rows = []
        for caption in captions:
            ids = self._checked_ids(
                caption,
                length - 2,
                f"context_length {length} holds {length - 2} plus start and end",
            )
            padding = [self.clip_pad_id] * (length - 2 - len(ids))
            rows.append([self.start_id, *ids, self.end_id, *padding])
        return torch.tensor(rows, dtype=torch.long).reshape(-1, length)

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Ids ``(N, L)`` of either layout back to text: pads and start dropped,
        everything after an end token ignored, unknown words as "<unknown>"."""
        tokens = torch.as_tensor(tokens)
        if tokens.ndim != 2 or tokens.is_floating_point():
            raise ValueError(
                f"decode expects integer ids of shape (N, L), got "
                f"{tuple(tokens.shape)} {tokens.dtype}; pass tokens[None] for one row"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}), got "
                f"{tokens.min().item()}..{tokens.max().item()}"
            )
        texts = []
        for row in tokens.tolist():
            parts = []
            for i in row:
                if i == self.end_id:
                    break
                if i < self.unknown_id:
                    parts.append(self.names[i])
                elif i == self.unknown_id:
                    parts.append(UNKNOWN + "</w>")
            text = "".join(parts).replace("</w>", " ").strip()
            texts.append(re.sub(r" ([,;:.])", r"\1", text))  # "a , b" -> "a, b"
        return texts


def fitted_tokenizer(
    collections, max_pieces: int | None = None, max_length: int | None = None
) -> CaptionTokenizer:
    """A tokenizer whose text_length is the longest caption in ``collections``
    (Scenes, or lists of captions): no text position is padding everywhere.

    At 32 px the longest over the train, test and held-out splits is 34
    tokens, the most any shapes-world caption can have (style 2, three
    objects, two-word positions, "with stripes" or "with dots").

    For other captions: ``max_pieces`` builds the vocabulary from the
    captions themselves, their most frequent BPE pieces (the rest becomes
    the unknown token); ``max_length`` caps text_length (encode longer
    captions with ``truncate=True``).
    """
    captions = [
        caption
        for collection in collections
        for caption in _check_captions(getattr(collection, "captions", collection))
    ]
    if not captions:
        raise ValueError("fitted_tokenizer needs at least one caption")
    pieces = None if max_pieces is None else frequent_pieces(captions, max_pieces)
    counter = CaptionTokenizer(1, pieces)  # its ids do not depend on text_length
    longest = max(1, max(len(counter.ids(c)) for c in captions))
    return CaptionTokenizer(
        longest if max_length is None else min(longest, max_length), pieces
    )


def frequent_pieces(captions: list[str], count: int) -> tuple[str, ...]:
    """The ``count`` BPE pieces used most in ``captions`` (ties by the piece),
    sorted: the vocabulary of a tokenizer for captions from anywhere."""
    if count < 1:
        raise ValueError(f"max_pieces must be >= 1, got {count}")
    uses: dict[str, int] = {}
    for caption in captions:
        for word in _words(caption):
            for piece in _bpe_pieces(word):
                uses[piece] = uses.get(piece, 0) + 1
    ranked = sorted(uses, key=lambda piece: (-uses[piece], piece))
    return tuple(sorted(ranked[:count]))
