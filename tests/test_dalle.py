"""DALL·E's transformer: sparse masks, the split loss, and sampling."""

import math

import pytest
import torch
import torch.nn.functional as F

from t2i.models.dalle import (
    Dalle,
    DalleConfig,
    DallePositions,
    attention_masks,
    image_mask,
    layer_kinds,
)

SMALL = DalleConfig(
    text_vocab=20, text_length=6, num_codes=10, grid_size=4, n_layer=5, n_embd=32
)


def test_layer_kinds_follow_the_papers_rule():
    assert layer_kinds(5) == ["row", "column", "row", "row", "convolutional"]
    kinds = layer_kinds(64)
    assert kinds[-1] == "convolutional"
    columns = [i + 1 for i, kind in enumerate(kinds) if kind == "column"]
    assert columns[:3] == [2, 6, 10] and all((i - 2) % 4 == 0 for i in columns)
    assert kinds.count("row") == 63 - len(columns)
    assert layer_kinds(3, sparse=False) == ["dense"] * 3


def test_masks_have_the_stated_shapes():
    g = 4
    row = image_mask("row", g)
    # the token itself and the g before it: the last one read is the one above
    assert row[9].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]
    column = image_mask("column", g)
    assert column[13].nonzero().flatten().tolist() == [1, 5, 9, 13]
    conv = image_mask("convolutional", g, conv_kernel=3)
    # cell (2, 1) = 9 reads (1, 0..2) = 4, 5, 6 and (2, 0..1) = 8, 9
    assert conv[9].nonzero().flatten().tolist() == [4, 5, 6, 8, 9]
    assert conv[4].nonzero().flatten().tolist() == [0, 1, 4]  # no wrap-around
    masks = attention_masks(SMALL)
    assert masks.shape == (5, 6 + 16, 6 + 16) and masks.dtype == torch.bool


def test_no_token_attends_to_a_later_one_in_any_layer():
    for sparse in (True, False):
        config = DalleConfig(**{**SMALL.__dict__, "sparse": sparse})
        masks = attention_masks(config)
        later = torch.ones(22, 22, dtype=torch.bool).triu(1)
        assert not (masks & later).any()
        # every image token reads every text token, text never reads the image
        assert masks[:, 6:, :6].all() and not masks[:, :6, 6:].any()


def test_a_later_token_never_changes_an_earlier_prediction():
    torch.manual_seed(0)
    model = Dalle(SMALL).eval()
    text = torch.randint(0, 20, (2, 6))
    codes = torch.randint(0, 10, (2, 4, 4))
    tokens = model.sequences(text, codes)
    changed = tokens.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 10
    before, after = model(tokens), model(changed)
    assert torch.allclose(before[:, :12], after[:, :12], atol=1e-6)
    assert not torch.allclose(before[:, 12:], after[:, 12:])


def test_the_loss_weights_text_by_one_eighth_and_image_by_seven_eighths():
    model = Dalle(SMALL)
    tokens = model.sequences(
        torch.randint(0, 20, (3, 6)), torch.randint(0, 10, (3, 4, 4))
    )
    logits = model(tokens[:, :-1])
    nats = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    # hand count: 5 text predictions (tokens 1..5), 16 image ones
    text, image = nats[:, :5].mean(), nats[:, 5:].mean()
    loss = model.loss((tokens,))
    assert torch.allclose(loss["text_loss"], text)
    assert torch.allclose(loss["image_loss"], image)
    assert torch.allclose(loss["loss"], text / 8 + 7 * image / 8)
    # averaged over each part's own tokens, not over all 21
    assert not torch.allclose(loss["loss"], nats.mean())


def test_text_and_image_positions_are_embedded_apart():
    positions = DallePositions(text_length=3, grid_size=2, n_embd=4)
    out = positions(torch.arange(7))
    assert torch.allclose(out[0], positions.text.weight[0])
    # image cell (1, 0) = position 3 + 2
    expected = positions.row.weight[1] + positions.column.weight[0]
    assert torch.allclose(out[5], expected)


def test_sampling_with_and_without_the_cache_agree_and_draws_only_codes():
    torch.manual_seed(0)
    model = Dalle(SMALL).eval()
    text = torch.randint(0, 20, (3, 6))
    fast = model.generate(text, generator=torch.Generator().manual_seed(1))
    slow = model.generate(
        text, generator=torch.Generator().manual_seed(1), use_cache=False
    )
    assert torch.equal(fast, slow)
    assert fast.shape == (3, 4, 4) and fast.max() < 10


def test_sampling_reads_the_logits_of_the_token_before():
    """The first code comes from the last text position's logits: a model
    whose only wish at that position is code 7 draws 7 first."""
    model = Dalle(SMALL).eval()
    text = torch.randint(0, 20, (2, 6))
    inner = model.transformer.forward

    def forward(tokens, **kwargs):  # the uncached path: positions are columns
        logits = inner(tokens, **kwargs)
        logits[:, :, :10] = -1e9
        logits[:, 5, 7] = 1e9  # position 5 = the last text token
        logits[:, 6:, 3] = 1e9
        return logits

    model.transformer.forward = forward
    codes = model.generate(text, use_cache=False)
    assert codes[:, 0, 0].tolist() == [7, 7]
    assert (codes.flatten(1)[:, 1:] == 3).all()


def test_bad_text_gets_a_clear_error():
    model = Dalle(SMALL)
    with pytest.raises(ValueError, match="text_length=6"):
        model.generate(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(torch.full((1, 6), 20))
    with pytest.raises(ValueError, match="odd"):
        DalleConfig(conv_kernel=4)


def test_trains_on_a_tiny_copy_task():
    """Code grids that spell out the text: the image loss falls well below
    log K within a few dozen steps."""
    from t2i.train import TrainConfig, fit

    torch.manual_seed(0)
    config = DalleConfig(
        text_vocab=10, text_length=4, num_codes=10, grid_size=2, n_layer=2, n_embd=32
    )
    model = Dalle(config)
    text = torch.randint(0, 10, (256, 4))
    tokens = model.sequences(text, text.reshape(256, 2, 2))
    history = fit(
        model,
        (tokens,),
        TrainConfig(steps=400, batch_size=32, lr=3e-3, log_every=50),
    )
    assert history["image_loss"][-1] < 0.3 * math.log(10)
