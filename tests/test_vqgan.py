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


# ---------------------------------------------------------------- the model

from torch import nn  # noqa: E402

from t2i.models.vqgan import VQGAN, VQGANConfig  # noqa: E402
from t2i.quantize import VQConfig  # noqa: E402
from t2i.train import TrainConfig, fit, optimizer_groups  # noqa: E402


def small_vqgan(disc_start: int = 0, **fields) -> VQGAN:
    torch.manual_seed(0)
    config = VQGANConfig(
        image_size=16,
        channels=(8, 16),
        residual_blocks=0,
        vq=VQConfig(num_codes=8, code_dim=4, ema=True, restart_dead=True),
        discriminator=DiscriminatorConfig(channels=4, layers=2),
        perceptual_weight=0.0,
        disc_start=disc_start,
        **fields,
    )
    return VQGAN(config)


def pictures(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_codes_decode_at_any_grid_size():
    model = small_vqgan().eval()
    q = model.encode(pictures(2))
    assert q.indices.shape == (2, 8, 8) and model.config.factor == 2
    assert model.decode_indices(torch.zeros(1, 16, 16, dtype=torch.long)).shape == (
        1,
        3,
        32,
        32,
    )  # a grid twice the training grid decodes to a picture twice the size


def test_the_reconstruction_gradient_reaches_the_encoder_through_the_codes():
    model = small_vqgan(disc_start=10**6).train()
    model.loss((pictures(),))["loss"].backward()
    first = model.encoder.net[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_the_players_own_disjoint_parameters_and_the_judge_none():
    model = small_vqgan()
    groups = optimizer_groups(model)
    generator = {id(p) for p in groups["loss"]["params"]}
    discriminator = {id(p) for p in groups["discriminator_loss"]["params"]}
    assert not generator & discriminator
    assert discriminator == {id(p) for p in model.discriminator.parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert generator | discriminator == trainable
    assert groups["loss"]["betas"] == (0.5, 0.9)


def state(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("disc_start", [0, 10**6])
def test_the_discriminator_learns_only_once_switched_on(disc_start):
    model = small_vqgan(disc_start=disc_start)
    disc, gen = state(model.discriminator), state(model.decoder)
    config = TrainConfig(steps=3, batch_size=4, log_every=1, checkpoint_every=1)
    history = fit(model, (pictures(),), config)
    assert changed(gen, model.decoder)
    assert changed(disc, model.discriminator) == (disc_start == 0)
    assert history["disc_on"] == [float(disc_start == 0)] * 3
    assert int(model.step) == 3


class TwoPlayers(nn.Module):
    """``"loss"`` reads player b's weight but must only train player a."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.ones(1)), nn.Parameter(torch.ones(1))

    def optimizer_groups(self):
        return {"loss": {"params": [self.a]}, "b_loss": {"params": [self.b]}}

    def loss(self, batch):
        return {"loss": (self.a * self.b).sum(), "b_loss": (self.b * 0).sum()}


def test_one_players_loss_never_moves_the_other_player():
    model = TwoPlayers()
    fit(
        model,
        (torch.zeros(4, 1),),
        TrainConfig(steps=5, batch_size=2, log_every=1, checkpoint_every=5),
    )
    assert model.a.item() < 1 and model.b.item() == 1


def test_a_killed_gan_run_resumes_to_the_same_weights(tmp_path):
    config = TrainConfig(steps=6, batch_size=4, log_every=1, checkpoint_every=2)
    x = (pictures(),)
    whole = small_vqgan(disc_start=3)
    fit(whole, x, config)

    crashing = small_vqgan(disc_start=3)
    calls = {"n": 0}
    original = crashing.loss

    def crash_at_step_five(batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return original(batch)

    crashing.loss = crash_at_step_five
    with pytest.raises(KeyboardInterrupt):
        fit(crashing, x, config, checkpoint=tmp_path / "gan.pt")
    torch.manual_seed(999)  # the new process starts from other random states
    resumed = small_vqgan(disc_start=3)
    history = fit(resumed, x, config, checkpoint=tmp_path / "gan.pt")
    assert history["disc_on"] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_missing_perceptual_network_names_the_fix():
    with pytest.raises(ValueError, match="perceptual_weight=0"):
        VQGAN(VQGANConfig(perceptual_weight=1.0))
