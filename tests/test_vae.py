import math

import pytest
import torch

from t2i import configs, data
from t2i.models.vae import VAE, VAEConfig, kl_to_standard_normal, reparameterize


@pytest.fixture(params=["conv", "mlp"])
def model(request):
    torch.manual_seed(0)
    return VAE(VAEConfig(body=request.param, channels=(8, 16), hidden=32, latent_dim=3))


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mean = torch.tensor([[0.7, -1.2, 0.0]])
    logvar = torch.tensor([[-0.5, 0.8, 0.0]])
    z = reparameterize(mean.expand(400_000, 3), logvar.expand(400_000, 3))
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(1).mean()
    closed = kl_to_standard_normal(mean, logvar)
    assert closed.shape == (1,)
    assert abs(closed.item() - monte_carlo.item()) < 0.01
    assert kl_to_standard_normal(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() == 0


def test_reparameterised_sample_has_gradients_for_mean_and_logvar():
    torch.manual_seed(0)
    mean = torch.zeros(5, requires_grad=True)
    logvar = torch.zeros(5, requires_grad=True)
    z = reparameterize(mean, logvar)
    z.pow(2).sum().backward()
    assert torch.allclose(mean.grad, 2 * z.detach())
    # dz/dlogvar = 0.5 * sigma * eps = 0.5 * (z - mean) here
    assert torch.allclose(logvar.grad, 2 * z.detach() * 0.5 * z.detach())
    assert logvar.grad.abs().sum() > 0


def test_gradient_reaches_the_encoder_through_the_sample(model):
    out = model.loss((torch.rand(4, 1, 28, 28).round(),))
    out[
        "reconstruction"
    ].backward()  # the reconstruction alone depends on z, i.e. on the sample
    for name, parameter in model.encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert (
        model.mean.weight.grad.abs().sum() > 0
        and model.logvar.weight.grad.abs().sum() > 0
    )


def test_loss_terms_and_beta(model):
    torch.manual_seed(1)
    x = torch.rand(6, 1, 28, 28).round()
    out = model.loss((x,))
    assert set(out) == {"loss", "reconstruction", "kl"}
    assert out["kl"] >= 0 and out["reconstruction"] > 0
    torch.manual_seed(1)
    heavy = VAE(VAEConfig(**{**model.config.__dict__, "beta": 4.0}))
    heavy.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    out4 = heavy.loss((x,))
    assert torch.isclose(out4["loss"], out4["reconstruction"] + 4 * out4["kl"])


def test_shapes_sampling_and_bad_input(model):
    x = torch.rand(3, 1, 28, 28)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (3, 3)
    assert model(x).shape == x.shape and 0 <= model(x).min() and model(x).max() <= 1
    assert model.sample(5).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="expected images of shape"):
        model.encode(torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        model.decode(torch.rand(3, 2))
    with pytest.raises(ValueError, match="'conv' or 'mlp'"):
        VAE(VAEConfig(body="transformer"))


def test_elbo_is_below_the_importance_sampled_log_likelihood():
    torch.manual_seed(0)
    x, _ = data.load(configs.vae("tiny").data, "test")
    x = x[:64]
    model = VAE(VAEConfig(body="mlp", hidden=64, latent_dim=4))
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = torch.stack([-model.loss((x,))["loss"] for _ in range(20)]).mean()
        torch.manual_seed(0)
        log_px = model.log_likelihood(x, k=256).mean()
    assert elbo <= log_px
    with torch.no_grad():
        torch.manual_seed(0)
        single = model.log_likelihood(x, k=1).mean()  # k = 1 is an ELBO estimate
    assert abs(single - elbo) < 0.05 * abs(elbo)


def test_binarised_mnist_is_a_fixed_bernoulli_draw():
    experiment = configs.vae("tiny")
    a, _ = data.load(experiment.data, "test")
    b, _ = data.load(experiment.data, "test")
    grey, _ = data.load_mnist("test", source="sample")
    assert torch.equal(a, b) and set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean() - grey.mean()) < 0.01  # Bernoulli(intensity), not a threshold


def test_moon_generator_is_deterministic_and_gives_the_phases_asked_for():
    a, phases_a = data.moon_dataset(300, ((0.0, 0.35), (0.65, 0.9)), seed=3)
    b, phases_b = data.moon_dataset(300, ((0.0, 0.35), (0.65, 0.9)), seed=3)
    assert torch.equal(a, b) and torch.equal(phases_a, phases_b)
    units = phases_a / math.pi
    assert ((units <= 0.35) | ((units >= 0.65) & (units <= 0.9))).all()
    assert (units < 0.35).any() and (units > 0.65).any()
    assert not torch.equal(
        a, data.moon_dataset(300, ((0.0, 0.35), (0.65, 0.9)), seed=4)[0]
    )


def test_rendered_phases_light_the_right_fraction_of_the_disk():
    full, half, crescent, new = data.render_moons(
        torch.tensor([0.0, 0.5, 0.8, 1.0]) * math.pi
    )
    assert abs(half.sum() / full.sum() - 0.5) < 0.02
    assert crescent.sum() < 0.25 * full.sum() and new.sum() == 0
    right, left = half[0, :, 14:].sum(), half[0, :, :14].sum()
    assert right > 10 * left  # lit on the right
