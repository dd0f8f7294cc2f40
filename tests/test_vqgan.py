import pytest
import torch

from t2i.models.vqgan import (
    ADAPTIVE_DELTA,
    ADAPTIVE_MAX,
    DiscriminatorConfig,
    PatchDiscriminator,
    adaptive_weight,
    hinge_d_loss,
    hinge_g_loss,
    receptive_field,
)


@pytest.mark.parametrize(("layers", "field"), [(1, 16), (2, 34), (3, 70)])
def test_receptive_field_is_the_classic_patch_size(layers, field):
    net = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=layers))
    assert receptive_field(net) == field


def test_the_computed_field_is_what_one_output_actually_sees():
    torch.manual_seed(0)
    net = PatchDiscriminator(DiscriminatorConfig(channels=4, layers=2)).eval()
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    out = net(x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    out[0, 0, i, j].backward()
    rows, cols = (x.grad.abs().sum((0, 1)) > 0).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == receptive_field(net)
    assert cols.max() - cols.min() + 1 == receptive_field(net)


def test_the_discriminator_returns_a_map_of_patch_logits():
    net = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=3))
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)


def test_hinge_losses_on_known_logits():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - x): 0, 0.5, 2
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1 + x): 0, 1, 2
    assert torch.isclose(
        hinge_d_loss(real, fake), torch.tensor(0.5 * (2.5 / 3 + 3 / 3))
    )
    assert torch.isclose(hinge_g_loss(fake), torch.tensor(1 / 3))


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    out = layer(x)
    rec, gan = (out**2).mean(), -out[:, 0].mean()
    g_rec = torch.autograd.grad(rec, layer.weight, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, layer.weight, retain_graph=True)[0]
    expected = g_rec.norm() / (g_gan.norm() + ADAPTIVE_DELTA) * 0.8
    weight = adaptive_weight(rec, gan, layer.weight, discriminator_weight=0.8)
    assert torch.isclose(weight, expected) and not weight.requires_grad
    # a GAN loss that does not reach the layer: lambda = ||g_rec|| / delta, capped
    flat = out.sum() * 0
    uncapped = adaptive_weight(rec, flat, layer.weight)
    assert torch.isclose(uncapped, g_rec.norm() / ADAPTIVE_DELTA)
    assert adaptive_weight(100 * rec, flat, layer.weight) == ADAPTIVE_MAX


def test_a_bad_discriminator_config_names_the_field():
    with pytest.raises(ValueError, match="DiscriminatorConfig.layers"):
        DiscriminatorConfig(layers=0)
