"""The BART-style encoder-decoder of chapter 7 and super-conditioning."""

import pytest
import torch

from t2i.models.seq2seq import Seq2Seq, Seq2SeqConfig
from t2i.sample import super_condition

SMALL = Seq2SeqConfig(
    text_vocab=20,
    text_length=6,
    first_pad_id=14,
    num_codes=10,
    grid_size=3,
    encoder_layers=2,
    decoder_layers=2,
    n_embd=32,
)


def model(**changes) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(**{**SMALL.__dict__, **changes})).eval()


def test_the_encoder_is_bidirectional():
    """A late text token changes the encoder's output at the first position."""
    net = model()
    text = torch.randint(0, 14, (2, 6))
    changed = text.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 14
    before, after = net.encoder(text), net.encoder(changed)
    assert not torch.allclose(before[:, 0], after[:, 0])


def test_the_decoder_is_causal():
    net = model()
    text = torch.randint(0, 14, (2, 6))
    codes = torch.randint(0, 10, (2, 3, 3))
    changed = codes.clone()
    changed[:, 1, 1] = (changed[:, 1, 1] + 1) % 10  # code 4 of 9
    before, after = net(text, codes), net(text, changed)
    # logits 0 ... 4 are read before code 4 is fed (position 5 reads it)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_cross_attention_sees_every_text_token():
    net = model()
    text = torch.randint(0, 14, (1, 6))
    codes = torch.randint(0, 10, (1, 3, 3))
    first = net(text, codes)[0, 0]  # the first code's logits read only the text
    for position in range(6):
        changed = text.clone()
        changed[0, position] = (changed[0, position] + 1) % 14
        assert not torch.allclose(net(changed, codes)[0, 0], first), position


def test_super_conditioning_scale_one_and_zero():
    cond, uncond = torch.randn(4, 10), torch.randn(4, 10)
    assert torch.allclose(super_condition(cond, uncond, 1.0), cond)
    assert torch.allclose(super_condition(cond, uncond, 0.0), uncond)
    assert torch.allclose(
        super_condition(cond, uncond, 3.0), uncond + 3 * (cond - uncond)
    )
    with pytest.raises(ValueError, match=">= 0"):
        super_condition(cond, uncond, -1.0)


def test_sampling_at_scale_one_follows_the_conditional_model_and_zero_the_empty_caption():
    """With argmax sampling, scale 1 writes what the captioned model prefers and
    scale 0 what the caption-free model prefers, code by code."""
    net = model()
    text = torch.randint(0, 14, (3, 6))

    def greedy(t):
        grid = torch.full((len(t), 9), net.start_token)
        out = []
        for i in range(9):
            logits = net.decoder(
                torch.cat([grid[:, :1], torch.stack(out, 1)], 1)
                if out
                else grid[:, :1],
                context=net.encoder(t),
            )[:, -1, :10]
            out.append(logits.argmax(-1))
        return torch.stack(out, 1).reshape(-1, 3, 3)

    assert torch.equal(net.generate(text, scale=1.0, temperature=0), greedy(text))
    empty = net.empty_text.expand(3, -1)
    assert torch.equal(net.generate(text, scale=0.0, temperature=0), greedy(empty))


def test_guided_sampling_with_the_cache_matches_guidance_recomputed_in_full():
    """Scale 2.5, argmax: the batched caption + empty caption with one key/value
    cache writes what full forward passes of both, guided, prefer."""
    net = model()
    text = torch.randint(0, 14, (2, 6))
    empty = net.empty_text.expand(2, -1)
    written = []
    for _ in range(9):
        inputs = torch.full((2, 1), net.start_token)
        if written:
            inputs = torch.cat([inputs, torch.stack(written, 1)], 1)
        cond, uncond = (
            net.decoder(inputs, context=net.encoder(t))[:, -1, :10]
            for t in (text, empty)
        )
        written.append(super_condition(cond, uncond, 2.5).argmax(-1))
    expected = torch.stack(written, 1).reshape(-1, 3, 3)
    assert torch.equal(net.generate(text, scale=2.5, temperature=0), expected)
    with pytest.raises(ValueError, match=">= 0"):
        net.generate(text, scale=-0.5)


def test_caption_dropout_rate_as_configured():
    net = model(caption_dropout=0.3)
    torch.manual_seed(1)
    text = torch.randint(0, 14, (20_000, 6))
    dropped = net.drop_captions(text)
    empty = (dropped == net.empty_text).all(1)
    assert abs(empty.float().mean().item() - 0.3) < 0.015
    assert torch.equal(dropped[~empty], text[~empty])
    assert torch.equal(net.empty_text, torch.arange(14, 20))


def test_training_drops_captions_and_evaluation_does_not():
    net = model(caption_dropout=0.5)
    text = torch.randint(0, 14, (8, 6))
    codes = torch.randint(0, 10, (8, 3, 3))
    net.eval()
    assert torch.equal(net.loss((text, codes))["loss"], net.loss((text, codes))["loss"])
    net.train()
    losses = {round(net.loss((text, codes))["loss"].item(), 6) for _ in range(6)}
    assert len(losses) > 1  # a different share of the batch is dropped each time


def test_bad_settings_get_clear_errors():
    with pytest.raises(ValueError, match="caption_dropout"):
        Seq2SeqConfig(caption_dropout=1.0)
    with pytest.raises(ValueError, match="must fit in text_vocab"):
        Seq2SeqConfig(text_vocab=40, text_length=34, first_pad_id=10)
    with pytest.raises(ValueError, match=r"\(batch, 6\)"):
        model().generate(torch.zeros(1, 5, dtype=torch.long))


def test_the_defaults_fit_chapter_6s_tokenizer():
    from t2i.text import CaptionTokenizer

    tokenizer = CaptionTokenizer(Seq2SeqConfig().text_length)
    config = Seq2SeqConfig()
    assert (config.text_vocab, config.first_pad_id) == (
        tokenizer.vocab_size,
        tokenizer.first_pad_id,
    )
    assert torch.equal(
        Seq2Seq(config).empty_text, tokenizer.encode([""])[0]
    )  # the empty caption is the tokenizer's all-padding caption
