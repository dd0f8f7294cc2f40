import math

import pytest
import torch

from t2i.models.pixelcnn import GatedPixelCNN, PixelCNNConfig
from t2i.models.vqvae2 import VQVAE2, VQVAE2Config, bits_per_level
from t2i.quantize import VQConfig

VQ = VQConfig(num_codes=16, code_dim=8)


def vqvae2(seed=0, **changes):
    torch.manual_seed(seed)
    config = VQVAE2Config(**{"image_size": 32, "channels": 16, "vq": VQ, **changes})
    return VQVAE2(config)


def test_two_levels_give_a_quarter_and_an_eighth_resolution_grid():
    model = vqvae2().eval()
    x = torch.rand(3, 3, 32, 32)
    bottom, top = model.encode(x)
    assert bottom.indices.shape == (3, 8, 8) and top.indices.shape == (3, 4, 4)
    assert model.config.grid_sizes == (8, 4)
    assert model(x).shape == x.shape
    images = model.decode_indices([bottom.indices, top.indices])
    assert torch.allclose(images, model(x), atol=1e-5)
    assert bits_per_level(model.config) == {"bottom": 64 * 4.0, "top": 16 * 4.0}


def test_three_levels_follow_the_papers_1024_layout():
    """1024 / 8 = 128, then 64 and 32: bottom_halvings=3 with three levels."""
    config = VQVAE2Config(image_size=1024, levels=3, bottom_halvings=3)
    assert config.grid_sizes == (128, 64, 32)
    assert config.level_names == ("bottom", "middle", "top")
    model = vqvae2(image_size=32, levels=3, bottom_halvings=1).eval()
    codes = model.codes(torch.rand(2, 3, 32, 32))
    assert [tuple(c.shape) for c in codes] == [(2, 16, 16), (2, 8, 8), (2, 4, 4)]
    assert model.decode_indices(codes).shape == (2, 3, 32, 32)


def test_top_codes_shape_the_bottom_codes():
    """The bottom is quantised after the top is decoded into its features:
    changing only the top quantiser's codebook changes the bottom codes' input."""
    model = vqvae2().eval()
    x = torch.rand(4, 3, 32, 32)
    before = model.encode(x)[0]
    with torch.no_grad():
        model.quantizers[1].codebook.add_(
            torch.randn_like(model.quantizers[1].codebook)
        )
    after = model.encode(x)[0]
    assert not torch.equal(before.vectors, after.vectors)


def test_reconstruction_gradient_reaches_both_encoders():
    model = vqvae2().train()
    out = model.loss((torch.rand(4, 3, 32, 32),))
    out["reconstruction"].backward()
    for name, encoder in (("bottom", model.encoders[0]), ("top", model.encoders[1])):
        grads = [p.grad for p in encoder.parameters()]
        assert all(g is not None for g in grads), f"no gradient in the {name} encoder"
        assert sum(g.abs().sum() for g in grads) > 0, f"zero gradient, {name} encoder"
    assert {"perplexity_top", "codes_used_bottom"} <= out.keys()


def test_decoding_swapped_top_codes_is_decoding_each_pair():
    """The decoder is a function of the two grids only: swapping the top grids of
    a batch gives exactly the images of each (bottom i, top j) pair."""
    model = vqvae2().eval()
    generator = torch.Generator().manual_seed(1)
    bottom = torch.randint(0, 16, (2, 8, 8), generator=generator)
    top = torch.randint(0, 16, (2, 4, 4), generator=generator)
    swapped = model.decode_indices([bottom, top.flip(0)])
    by_hand = torch.stack(
        [
            model.decode_indices([bottom[i : i + 1], top[1 - i : 2 - i]])[0]
            for i in range(2)
        ]
    )
    assert torch.allclose(swapped, by_hand, atol=1e-5)
    assert not torch.allclose(swapped, model.decode_indices([bottom, top]))


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="multiple of 8"):
        VQVAE2Config(image_size=36)
    with pytest.raises(ValueError, match="levels"):
        VQVAE2Config(levels=4)
    model = vqvae2().eval()
    with pytest.raises(ValueError, match=r"\(batch, 3, 32, 32\)"):
        model.encode(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="2 code grids"):
        model.decode_indices([torch.zeros(1, 8, 8, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"top codes of shape \(batch, 4, 4\)"):
        model.decode_indices(
            [
                torch.zeros(1, 8, 8, dtype=torch.long),
                torch.zeros(1, 8, 8, dtype=torch.long),
            ]
        )


# ---- the bottom prior: a PixelCNN conditioned on the whole top grid ----

BOTTOM = PixelCNNConfig(
    num_codes=12,
    grid_size=6,
    channels=16,
    layers=3,
    kernel_size=3,
    num_classes=0,
    condition_codes=10,
    condition_grid=3,
)


def bottom_prior(seed=0, **changes):
    torch.manual_seed(seed)
    return GatedPixelCNN(PixelCNNConfig(**{**BOTTOM.__dict__, **changes})).eval()


@pytest.mark.parametrize("attention_blocks", [0, 1])
def test_bottom_logits_ignore_later_bottom_codes_but_follow_the_top_grid(
    attention_blocks,
):
    net = bottom_prior(attention_blocks=attention_blocks)
    g = BOTTOM.grid_size
    codes = torch.randint(0, BOTTOM.num_codes, (2, g, g))
    top = torch.randint(0, BOTTOM.condition_codes, (2, 3, 3))
    base = net.logits(codes, condition=top)
    for t in range(g * g):
        i, j = divmod(t, g)
        changed = codes.clone()
        changed[:, i, j] = (changed[:, i, j] + 5) % BOTTOM.num_codes
        delta = (net.logits(changed, condition=top) - base).abs().amax(dim=(0, 1))
        assert delta.flatten()[: t + 1].max() == 0, f"bottom code {t} leaks backwards"
    # every position, the very first included, reads the top grid
    other_top = (top + 1) % BOTTOM.condition_codes
    moved = (net.logits(codes, condition=other_top) - base).abs().amax(dim=(0, 1))
    assert (moved > 0).all()


def test_attention_top_prior_is_causal_and_reads_far_back():
    """With self-attention, the last position sees the first in one step."""
    net = bottom_prior(
        condition_codes=0, condition_grid=0, attention_blocks=1, layers=1
    )
    codes = torch.randint(0, 12, (1, 6, 6))
    changed = codes.clone()
    changed[0, 0, 0] = (codes[0, 0, 0] + 1) % 12
    delta = (net.logits(changed) - net.logits(codes)).abs().amax(dim=1)[0]
    assert delta[0, 0] == 0
    assert delta[5, 5] > 0  # one 3x3 gated layer alone would not reach this far


def test_sampling_with_a_grid_condition_matches_teacher_forcing():
    net = bottom_prior()
    top = torch.randint(0, 10, (3, 3, 3))
    grids = net.sample(3, temperature=1e-9, condition=top)
    greedy = net.logits(grids, condition=top).argmax(1)
    assert torch.equal(grids, greedy)


def test_condition_errors_say_what_to_pass():
    net = bottom_prior()
    codes = torch.zeros(2, 6, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="pass condition="):
        net.logits(codes)
    with pytest.raises(ValueError, match=r"\(2, 3, 3\)"):
        net.logits(codes, condition=torch.zeros(2, 6, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="no grid condition"):
        bottom_prior(condition_codes=0, condition_grid=0).logits(
            codes, condition=torch.zeros(2, 3, 3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="multiple of"):
        PixelCNNConfig(grid_size=8, condition_codes=4, condition_grid=3)


def test_bottom_prior_learns_a_top_dependent_pattern():
    """Bottom code = top code at the parent cell: learnable only through the condition."""
    torch.manual_seed(0)
    top = torch.randint(0, 4, (256, 3, 3))
    bottom = top.repeat_interleave(2, 1).repeat_interleave(2, 2)
    net = bottom_prior(condition_codes=4, num_codes=4, layers=2).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(60):
        loss = net.loss((bottom[:64], top[:64]))["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    bits = net.loss((bottom[64:], top[64:]))["bits_per_code"].item()
    assert bits < 0.2 * math.log2(4), f"{bits:.2f} bits: the top grid is not read"


def test_output_offset_shifts_every_decoded_pixel_by_the_same_grey_level():
    x = torch.rand(2, 3, 32, 32)
    plain = vqvae2(seed=3).eval()
    offset = vqvae2(seed=3, output_offset=0.85).eval()
    with torch.no_grad():
        assert torch.allclose(offset(x) - plain(x), torch.full_like(x, 0.85), atol=1e-6)


def test_scales_and_the_comparison_model_share_grid_codebook_and_budget():
    from t2i import configs

    grids = {s: configs.vqvae2(s).model.grid_sizes for s in configs.SCALES}
    assert grids == {"tiny": (8, 4), "small": (16, 8), "full": (24, 12, 6)}
    for scale in configs.SCALES:
        two, one = configs.vqvae2(scale), configs.vqvae_one_level(scale)
        assert one.model.grid_size == two.model.grid_sizes[0]
        assert one.model.vq == two.model.vq and one.train == two.train
        assert one.data == two.data


def test_priors_read_the_level_above_and_follow_the_weights():
    from t2i import configs

    exp = configs.vqvae2("tiny")
    model = VQVAE2(exp.model)
    top = configs.vqvae2_prior("tiny", "top", exp, model)
    bottom = configs.vqvae2_prior("tiny", "bottom", exp, model)
    assert top.model.condition_codes == 0 and top.model.attention_blocks == 1
    assert bottom.model.condition_grid == 4 and bottom.model.grid_size == 8
    with torch.no_grad():
        model.decoder.net[0].bias.add_(1.0)
    assert configs.vqvae2_prior("tiny", "bottom", exp, model).source != bottom.source
    with pytest.raises(ValueError, match="bottom, top"):
        configs.vqvae2_prior("tiny", "middle", exp, model)
