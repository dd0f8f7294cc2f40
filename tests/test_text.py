import pytest
import torch

from t2i import shapes, text
from t2i.text import CaptionTokenizer, fitted_tokenizer, frequent_pieces


@pytest.fixture(scope="module")
def tokenizer():
    return CaptionTokenizer(40)


def three_object_table() -> torch.Tensor:
    table = torch.full((9, 4), -1)
    table[1] = torch.tensor([2, 3, 1, 1])  # large green striped triangle, top centre
    table[4] = torch.tensor([0, 4, 0, 0])  # small blue solid circle, centre
    table[8] = torch.tensor([4, 5, 1, 2])  # large purple dotted cross, bottom right
    return table


def test_the_vocabulary_is_the_pieces_of_every_caption_word_and_deterministic():
    pieces = text.compact_pieces()
    text.compact_pieces.cache_clear()
    assert text.compact_pieces() == pieces  # rebuilt from scratch: the same
    assert list(pieces) == sorted(set(pieces))
    for word in (*shapes.SHAPES, *shapes.COLOURS, "stripes", "centre", "there", ";"):
        assert all(p in pieces for p in text._bpe_pieces(word)), word
    assert "magenta</w>" not in pieces
    a, b = CaptionTokenizer(40), CaptionTokenizer(40)
    assert a.names == b.names
    assert a.vocab_size == len(pieces) + 3 + 40 == len(a.names)
    # the specials sit between the pieces and the pads, each once
    assert len({a.unknown_id, a.start_id, a.end_id, a.pad_id(0)}) == 4
    assert max(a.unknown_id, a.start_id, a.end_id) < a.pad_id(0)


def test_each_position_has_its_own_padding_token(tokenizer):
    tokens = tokenizer.encode(["a small red solid circle at the centre"])[0]
    assert len(tokens) == 40
    n = len(tokenizer.ids("a small red solid circle at the centre"))
    assert n == 8
    pads = tokens[n:].tolist()
    assert pads == [tokenizer.pad_id(i) for i in range(n, 40)]
    assert len(set(pads)) == len(pads)  # every padding position differs
    assert all(p >= tokenizer.first_pad_id for p in pads)
    assert (tokens[:n] < tokenizer.unknown_id).all()
    with pytest.raises(ValueError, match=r"\[0, 40\)"):
        tokenizer.pad_id(40)


def test_an_unknown_word_is_one_unknown_token_whatever_its_bpe_pieces(tokenizer):
    assert len(text._bpe_pieces("hexagon")) == 2  # CLIP splits it: hex + agon
    ids = tokenizer.ids("a large Hexagon in the centre")
    assert ids.count(tokenizer.unknown_id) == 1 and len(ids) == 6
    assert tokenizer.pieces("a magenta circle") == ["a</w>", "<unknown>", "circle</w>"]
    assert tokenizer.decode(tokenizer.encode(["a magenta circle"])) == [
        "a <unknown> circle"
    ]
    # capitals are CLIP's lower case: known
    assert tokenizer.ids("A RED Circle") == tokenizer.ids("a red circle")


def test_an_empty_caption_is_all_padding(tokenizer):
    tokens = tokenizer.encode(["", "   \n "])
    pads = torch.arange(40) + tokenizer.first_pad_id
    assert torch.equal(tokens, torch.stack([pads, pads]))
    assert tokenizer.decode(tokens) == ["", ""]
    clip = tokenizer.clip_tokens([""])
    assert clip[0, :2].tolist() == [tokenizer.start_id, tokenizer.end_id]
    assert (clip[0, 2:] == tokenizer.clip_pad_id).all()


def test_a_caption_too_long_raises_with_its_length_and_the_fix():
    short = CaptionTokenizer(5)
    caption = "a small red solid circle at the centre"  # 8 tokens
    with pytest.raises(ValueError, match="8 tokens.*text_length is 5.*text_length=8"):
        short.encode([caption])
    with pytest.raises(ValueError, match="8 tokens.*context_length 7"):
        short.clip_tokens([caption])
    assert short.encode(["a small red solid circle"]).shape == (1, 5)  # exactly fits
    with pytest.raises(ValueError, match="at most 7"):
        short.clip_tokens(["a"], context_length=8)


def test_non_strings_are_refused_with_a_type_error(tokenizer):
    with pytest.raises(TypeError, match=r"\[caption\]"):
        tokenizer.encode("a red circle")  # a string, not a list of them
    with pytest.raises(TypeError, match="strings"):
        tokenizer.encode(["a red circle", 3])
    with pytest.raises(TypeError, match="strings"):
        tokenizer.clip_tokens([None])
    with pytest.raises(ValueError, match="tokens\\[None\\]"):
        tokenizer.decode(torch.zeros(40, dtype=torch.long))


@pytest.mark.parametrize("style", range(shapes.CAPTION_STYLES))
def test_real_captions_round_trip_in_every_style(tokenizer, style):
    caption = shapes.caption(three_object_table(), style)
    assert "," in caption or ";" in caption  # punctuation is part of the test
    tokens = tokenizer.encode([caption])
    assert tokenizer.unknown_id not in tokens.tolist()[0]
    assert tokenizer.decode(tokens) == [caption]
    clip = tokenizer.clip_tokens([caption])
    assert clip.shape == (1, 42) and clip[0, 0] == tokenizer.start_id
    n = len(tokenizer.ids(caption))
    assert clip[0, n + 1] == tokenizer.end_id
    assert (clip[0] == tokenizer.end_id).sum() == 1
    assert tokenizer.decode(clip) == [caption]
    assert torch.equal(clip[0, 1 : n + 1], tokens[0, :n])  # the same pieces
    pieces = tokenizer.pieces(caption)
    assert "".join(pieces).replace("</w>", "") == caption.replace(" ", "")


def test_scene_captions_round_trip_and_fit_34_tokens():
    scenes = shapes.make_scenes(200, 32, "held_out")
    tokenizer = CaptionTokenizer(34)  # the longest shapes-world caption
    assert tokenizer.decode(tokenizer.encode(scenes.captions)) == scenes.captions


def test_a_fitted_tokenizer_fits_the_longest_caption():
    worst = torch.full((9, 4), -1)
    worst[[0, 1, 2]] = torch.tensor([0, 0, 0, 1])  # striped, two-word positions
    longest = shapes.caption(worst, 2)
    scenes = shapes.make_scenes(50, 32, "test")
    tokenizer = text.fitted_tokenizer([scenes, [longest]])
    assert tokenizer.text_length == len(tokenizer.ids(longest)) == 34
    assert text.fitted_tokenizer([scenes]).text_length <= 34
    assert text.fitted_tokenizer([["a red circle", ""]]).text_length == 3
    with pytest.raises(TypeError, match="list"):
        text.fitted_tokenizer(["a red circle"])  # captions must come in a list


def test_a_tokenizer_fitted_to_other_captions_keeps_their_most_used_pieces():
    captions = [
        "a photo of a dog on the beach",
        "a dog running on grass",
        "the skyline of a city at night",
    ]
    pieces = frequent_pieces(captions, 4)
    assert "a</w>" in pieces and "dog</w>" in pieces  # used 4 and 2 times
    assert len(pieces) == 4 and list(pieces) == sorted(pieces)
    tokenizer = fitted_tokenizer([captions], max_pieces=4, max_length=5)
    assert tokenizer.text_length == 5 and tokenizer.unknown_id == 4
    row = tokenizer.encode(["a dog at night under the moon"], truncate=True)[0]
    assert tokenizer.decode(row[None]) == ["a dog <unknown> <unknown> <unknown>"]
    with pytest.raises(ValueError, match="text_length is 5"):
        tokenizer.encode(["a dog at night under the moon"])
    with pytest.raises(ValueError, match="max_pieces must be >= 1"):
        frequent_pieces(captions, 0)
