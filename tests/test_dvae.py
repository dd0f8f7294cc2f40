"""DALL·E's dVAE: the Gumbel-softmax relaxation, its schedules, and the codes."""

import math

import pytest
import torch
import torch.nn.functional as F

from t2i.models.dvae import (
    DVAE,
    DVAEConfig,
    cosine,
    entropy,
    gumbel_softmax,
    kl_to_uniform,
    map_pixels,
    unmap_pixels,
)
from t2i.train import TrainConfig, fit

TINY = DVAEConfig(image_size=16, channels=(8, 8), residual_blocks=0, num_codes=8)


def test_relaxed_assignments_sum_to_one():
    logits = torch.randn(4, 8, 3, 3)
    for tau in (4.0, 1.0, 1 / 16):
        soft = F.gumbel_softmax(logits, tau=tau, dim=1)
        assert torch.allclose(soft.sum(1), torch.ones(4, 3, 3), atol=1e-5)
        assert (soft >= 0).all()


def test_library_gumbel_softmax_matches_the_written_formula_in_distribution():
    """torch's gumbel_softmax and softmax((logits + g) / tau) agree in their
    mean and in how often each code wins, and the winner follows softmax(logits)
    (the Gumbel-max trick)."""
    torch.manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    n, tau = 40_000, 0.5
    batch = logits[None, :, None, None].expand(n, 4, 1, 1)
    ours = gumbel_softmax(batch, tau, noise=None)[:, :, 0, 0]
    torchs = F.gumbel_softmax(batch, tau=tau, dim=1)[:, :, 0, 0]
    assert torch.allclose(ours.mean(0), torchs.mean(0), atol=0.01)
    wins_ours = torch.bincount(ours.argmax(1), minlength=4) / n
    wins_torch = torch.bincount(torchs.argmax(1), minlength=4) / n
    expected = logits.softmax(0)
    assert torch.allclose(wins_ours, expected, atol=0.01)
    assert torch.allclose(wins_torch, expected, atol=0.01)


def test_low_temperature_approaches_the_hard_sample():
    torch.manual_seed(0)
    logits = torch.randn(2, 16, 4, 4)
    u = torch.rand_like(logits)
    noise = -torch.log(-torch.log(u))
    hard = F.one_hot((logits + noise).argmax(1), 16).permute(0, 3, 1, 2).float()
    gaps = [
        (gumbel_softmax(logits, tau, noise) - hard).abs().max().item()
        for tau in (1.0, 0.1, 0.01)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-3


def test_high_temperature_spreads_the_assignment():
    logits = torch.randn(1, 32, 2, 2)
    noise = torch.zeros_like(logits)
    assert (
        entropy(gumbel_softmax(logits, 100.0, noise)).min()
        > entropy(gumbel_softmax(logits, 0.1, noise)).max()
    )
    assert entropy(gumbel_softmax(logits, 1e4, noise)).min() > math.log(32) - 1e-3


def test_straight_through_option_gives_one_hot_forward_values_and_gradients():
    logits = torch.randn(3, 8, 2, 2, requires_grad=True)
    hard = F.gumbel_softmax(logits, tau=1.0, hard=True, dim=1)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hard.sum(1), torch.ones(3, 2, 2))
    (hard * torch.randn_like(hard)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_kl_to_uniform_is_zero_for_uniform_and_log_k_for_one_hot():
    assert kl_to_uniform(torch.zeros(1, 8, 1, 1)).abs().max() < 1e-6
    peaked = torch.full((1, 8, 1, 1), -1e4)
    peaked[0, 3] = 0
    assert torch.allclose(kl_to_uniform(peaked), torch.tensor(math.log(8)), atol=1e-4)


def test_schedules_follow_the_paper_from_start_to_end():
    model = DVAE(replace_steps(TINY, 100))
    assert model.tau(0) == pytest.approx(1.0)
    assert model.tau(100) == pytest.approx(1 / 16)
    assert model.tau(1000) == pytest.approx(1 / 16)
    assert model.kl_weight(0) == pytest.approx(0.0)
    assert model.kl_weight(100) == pytest.approx(6.6)
    assert model.tau(50) == pytest.approx((1 + 1 / 16) / 2)  # cosine: half at half
    taus = [model.tau(s) for s in range(101)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    assert cosine(0, 1, 25, 100) < 0.25  # slow start, unlike a straight line


def replace_steps(config: DVAEConfig, steps: int) -> DVAEConfig:
    from dataclasses import replace

    return replace(config, tau_steps=steps, kl_steps=steps)


def test_training_steps_advance_the_schedule_and_resume_with_it(tmp_path):
    torch.manual_seed(0)
    images = torch.rand(32, 3, 16, 16)
    model = DVAE(replace_steps(TINY, 10))
    config = TrainConfig(steps=6, batch_size=8, log_every=2, checkpoint_every=2)
    history = fit(model, (images,), config, checkpoint=tmp_path / "run.pt")
    assert int(model.step) == 6
    assert history["tau"][0] > history["tau"][-1]
    assert history["kl_weight"][0] < history["kl_weight"][-1]
    # a second model resumed from the checkpoint continues at step 6
    resumed = DVAE(replace_steps(TINY, 10))
    fit(resumed, (images,), config, checkpoint=tmp_path / "run.pt")
    assert int(resumed.step) == 6


def test_the_annealed_loss_compiles_once_not_once_per_step(monkeypatch):
    """tau and beta change every step; read out as floats they would be new
    constants to torch.compile each step (a recompile, then eager after 8)."""
    import torch._dynamo

    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    torch.manual_seed(0)
    model = DVAE(replace_steps(TINY, 10))
    loss = torch.compile(model.loss, backend="eager")
    images = torch.rand(4, 3, 16, 16)
    taus = [loss((images,))["tau"].item() for _ in range(4)]  # raises on a recompile
    assert taus == pytest.approx([model.tau(s) for s in range(4)])
    torch._dynamo.reset()


def test_gradient_reaches_the_encoder_through_the_relaxed_sample():
    model = DVAE(TINY)
    model.loss((torch.rand(4, 3, 16, 16),))["loss"].backward()
    first = model.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert model.codebook.grad.abs().sum() > 0


def test_encoding_is_the_argmax_and_decodes_like_a_one_hot_soft_assignment():
    torch.manual_seed(0)
    model = DVAE(TINY).eval()
    x = torch.rand(2, 3, 16, 16)
    codes = model.encode(x)
    assert codes.shape == (2, 4, 4)
    assert torch.equal(codes, model.logits(x).argmax(1))
    one_hot = F.one_hot(codes, 8).permute(0, 3, 1, 2).float()
    assert torch.allclose(model.decode_indices(codes), model.decode_soft(one_hot))
    assert torch.allclose(model(x), model.decode_indices(codes))
    assert torch.equal(model.codes(x, batch_size=1), codes)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="tau_end"):
        DVAEConfig(tau_end=2.0)
    with pytest.raises(ValueError, match="divisible"):
        DVAEConfig(image_size=30)
    model = DVAE(TINY)
    with pytest.raises(ValueError):
        model.decode_indices(torch.full((1, 4, 4), 8))


def test_logit_laplace_pixel_map_round_trips():
    x = torch.rand(100)
    mapped = map_pixels(x)
    assert mapped.min() >= 0.1 and mapped.max() <= 0.9
    assert torch.allclose(unmap_pixels(mapped), x, atol=1e-6)
