"""taming-transformers' VQGAN (chapter 8's real model): its checkpoint's names
load as they are, the published f16-16384 layout has the reference's size,
and the download keeps and checks a checksum. The checkpoints here are made
by the tests: the real one is 1 GB and offline."""

import numpy as np
import pytest
import torch

from t2i.checkpoints import download
from t2i.models.taming import (
    TamingConfig,
    TamingVQGAN,
    load_taming_vqgan,
    taming_state_dict,
)
from t2i.models.vqgan_clip import SteerConfig, steer

SMALL = TamingConfig(
    image_size=16,
    channels=32,
    multipliers=(1, 2),
    residual_blocks=1,
    attention_at=(8,),
    z_channels=8,
    code_dim=4,
    num_codes=16,
)


def taming_checkpoint(model: TamingVQGAN) -> dict:
    """What taming's training writes: a Lightning file whose ``state_dict``
    names the codebook ``quantize`` and holds the losses' weights too, and
    whose callbacks keep numpy scalars."""
    state = {}
    for key, value in model.state_dict().items():
        state[key.replace("quantizer.", "quantize.", 1)] = value.clone()
    state["loss.discriminator.main.0.weight"] = torch.randn(4, 3, 4, 4)
    state["loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(4, 3, 3, 3)
    return {
        "state_dict": state,
        "epoch": 3,
        "global_step": 1234,
        "callbacks": {"ModelCheckpoint": {"best_model_score": np.float64(0.25)}},
    }


def test_published_layout_has_the_reference_names_and_size():
    model = TamingVQGAN()  # random weights, the f16-16384 layout
    keys = list(model.state_dict())
    # numbers read off taming-transformers' Encoder/Decoder with this config
    assert sum(p.numel() for p in model.parameters()) == 76_073_859
    assert len([k for k in keys if k.startswith(("encoder.", "decoder."))]) == 338
    for key in (
        "encoder.down.0.downsample.conv.weight",
        "encoder.down.4.attn.1.proj_out.weight",
        "encoder.mid.attn_1.q.weight",
        "decoder.up.1.upsample.conv.weight",
        "decoder.up.4.attn.2.v.bias",
        "decoder.up.0.block.2.conv2.weight",
        "decoder.up.1.block.0.nin_shortcut.weight",
        "quant_conv.weight",
        "post_quant_conv.bias",
        "quantizer.embedding.weight",
    ):
        assert key in keys, key
    assert "encoder.down.4.downsample.conv.weight" not in keys  # last level: none
    assert model.config.grid_size == 16


def test_a_taming_checkpoint_loads_and_draws_the_same(tmp_path):
    torch.manual_seed(0)
    source = TamingVQGAN(SMALL).eval()
    path = tmp_path / "last.ckpt"
    torch.save(taming_checkpoint(source), path)
    loaded = load_taming_vqgan(path, SMALL)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.latents(x), source.latents(x))
        assert torch.equal(loaded(x), source(x))
    assert loaded.codes(x).shape == (2, 8, 8)
    # the pictures are [0, 1] outside, taming's [-1, 1] inside
    with torch.no_grad():
        inside = source.quant_conv(source.encoder(2 * x - 1))
    assert torch.equal(inside, loaded.latents(x))


def test_taming_state_dict_drops_the_losses_and_renames_the_codebook():
    state = taming_checkpoint(TamingVQGAN(SMALL))["state_dict"]
    renamed = taming_state_dict(state)
    assert "quantizer.embedding.weight" in renamed
    assert not any(k.startswith(("loss.", "quantize.")) for k in renamed)
    assert len(renamed) == len(state) - 2


def test_a_checkpoint_of_another_model_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save(taming_checkpoint(TamingVQGAN(SMALL)), path)
    other = TamingConfig(**{**SMALL.__dict__, "num_codes": 32})
    with pytest.raises(ValueError, match="model.yaml"):
        load_taming_vqgan(path, other)
    deeper = TamingConfig(**{**SMALL.__dict__, "multipliers": (1, 2, 2)})
    with pytest.raises(ValueError, match="missing"):
        load_taming_vqgan(path, deeper)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="state_dict"):
        load_taming_vqgan(path, SMALL)


def test_taming_config_checks_its_sizes():
    with pytest.raises(ValueError, match="divisible"):
        TamingConfig(image_size=20)
    with pytest.raises(ValueError, match="32 groups"):
        TamingConfig(channels=48, multipliers=(1, 2))


def test_download_without_a_published_checksum_records_the_first(tmp_path):
    source = tmp_path / "published.bin"
    source.write_bytes(b"weights" * 100)
    target = tmp_path / "cache" / "copy.bin"
    target.parent.mkdir()
    download(source.as_uri(), target, None)
    record = target.with_name("copy.bin.sha256")
    assert target.read_bytes() == source.read_bytes()
    first = record.read_text().strip()
    assert len(first) == 64
    source.write_bytes(b"other")  # the copy is there: not fetched again
    download(source.as_uri(), target, None)
    assert target.read_bytes() == b"weights" * 100
    target.write_bytes(b"damaged")
    with pytest.raises(ValueError, match="changed"):
        download(source.as_uri(), target, None)
    # a published checksum still wins over nothing
    with pytest.raises(ValueError, match="expected"):
        download(source.as_uri(), tmp_path / "x.bin", "0" * 64)


def test_chapter_8s_loop_steers_the_taming_model_too():
    torch.manual_seed(0)
    gan = TamingVQGAN(SMALL).eval().requires_grad_(False)
    projection = torch.randn(3 * 16 * 16, 6)

    def encode_images(pictures):
        return pictures.flatten(1) @ projection

    target = torch.randn(2, 6)
    config = SteerConfig(steps=4, cutouts=2, record_every=2)
    history = steer(gan, encode_images, target, config)
    assert history["step"] == [0, 2, 4]
    assert history["final"].shape == (2, 3, 16, 16)
    start = torch.rand(2, 3, 16, 16)
    history = steer(gan, encode_images, target, config, start=start)
    with torch.no_grad():
        assert torch.allclose(history["pictures"][0], gan(start).clamp(0, 1), atol=1e-5)


def test_the_pretrained_pair_steers_through_open_clip(tiny_open_clip):
    """taming's model with an open_clip model (a tiny registered architecture
    with random weights, as load_pretrained returns them): the picture reaches
    CLIP at its input size and normalisation, and the loss falls."""
    import open_clip

    from t2i.models.vqgan_clip import pretrained_encoders

    torch.manual_seed(0)
    model = open_clip.create_model(tiny_open_clip).eval().requires_grad_(False)
    encode_images, encode_texts, size = pretrained_encoders(
        model, open_clip.get_tokenizer(tiny_open_clip)
    )
    assert size == 32
    text = encode_texts(["a red circle", "a blue square"])
    assert text.shape == (2, 8) and torch.allclose(text.norm(dim=-1), torch.ones(2))
    gan = TamingVQGAN(SMALL).eval().requires_grad_(False)
    config = SteerConfig(steps=20, lr=0.2, cutouts=4, record_every=10)
    history = steer(gan, encode_images, text, config, clip_size=size)
    assert history["final"].shape == (2, 3, 16, 16)  # the VQGAN's side, not CLIP's
    assert sum(history["loss"][-3:]) < sum(history["loss"][:3])
