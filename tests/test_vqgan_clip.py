"""VQGAN-CLIP's pieces (chapter 8): the straight-through path to z, the
clamp whose gradient pushes back inward, the spherical distance, the
cutouts, and the clamp of z to the codebook's range."""

import math
from dataclasses import replace
from statistics import mean

import pytest
import torch
import torch.nn.functional as F

from conftest import steering_setup

from t2i.models.vqgan_clip import (
    clamp_to_codebook,
    clamp_with_grad,
    cutout_boxes,
    cutouts,
    quantize_straight_through,
    spherical_distance,
)


def test_gradients_reach_z_through_the_straight_through_quantiser():
    torch.manual_seed(0)
    codebook = torch.randn(16, 4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    quantised = quantize_straight_through(z, codebook)
    # forward: every vector is a codebook row, the nearest one
    rows = quantised.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = torch.cdist(flat, codebook).argmin(1)
    assert torch.allclose(rows, codebook[nearest])
    # backward: the gradient reaches z unchanged
    weights = torch.randn_like(quantised)
    (quantised * weights).sum().backward()
    assert torch.allclose(z.grad, weights)
    with pytest.raises(ValueError, match="4-dimensional codes"):
        quantize_straight_through(torch.randn(1, 3, 2, 2), codebook)


def test_clamp_with_grad_passes_inside_and_only_inward_outside():
    x = torch.tensor([-0.5, 0.2, 0.7, 1.5, -0.3, 1.2], requires_grad=True)
    y = clamp_with_grad(x, 0.0, 1.0)
    assert torch.equal(y, x.detach().clamp(0, 1))
    # a descent step moves x by -grad: below the range a negative gradient
    # pushes inward, above it a positive one does
    grad = torch.tensor([-1.0, 2.0, -3.0, 4.0, 5.0, -6.0])
    y.backward(grad)
    assert x.grad.tolist() == [-1.0, 2.0, -3.0, 4.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="low < high"):
        clamp_with_grad(x, 1.0, 1.0)


def test_a_plain_clamp_would_have_stopped_the_gradient():
    x = torch.tensor([1.5], requires_grad=True)
    x.clamp(0, 1).backward(torch.tensor([1.0]))
    assert x.grad.item() == 0.0  # why VQGAN-CLIP needs its own clamp


def test_spherical_distance_is_its_formula_and_half_the_squared_angle():
    torch.manual_seed(0)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    d = spherical_distance(a, b)
    ua, ub = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    formula = 2 * torch.arcsin((ua - ub).norm(dim=-1) / 2) ** 2
    assert torch.allclose(d, formula)
    angle = torch.arccos((ua * ub).sum(-1))
    assert torch.allclose(d, angle**2 / 2, atol=1e-5)
    assert torch.allclose(spherical_distance(a, 3 * a), torch.zeros(5), atol=1e-6)
    opposite = spherical_distance(a, -a)  # arcsin is steep at 1: a looser tolerance
    assert torch.allclose(opposite, torch.full((5,), math.pi**2 / 2), atol=1e-2)


def test_cutout_boxes_fit_the_picture_and_cut_pow_favours_small_crops():
    generator = torch.Generator().manual_seed(0)
    boxes = cutout_boxes(32, 500, 12, cut_pow=1.0, generator=generator)
    top, left, size = boxes.T
    assert boxes.shape == (500, 3)
    assert size.min() >= 12 and size.max() <= 32
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + size <= 32).all() and (left + size <= 32).all()
    small = cutout_boxes(32, 500, 12, cut_pow=4.0, generator=generator)[:, 2]
    assert small.float().mean() < size.float().mean() - 3
    with pytest.raises(ValueError, match="min_size"):
        cutout_boxes(32, 4, 40)


def test_cutouts_count_size_and_content():
    # pixel value = its column, so a crop's mean tells where it was cut
    columns = torch.arange(32.0).expand(32, 32)
    images = torch.stack([columns, columns + 100])[:, None].expand(2, 3, 32, 32)
    boxes = torch.tensor([[0, 0, 32], [4, 8, 16], [10, 20, 8]])
    out = cutouts(images, boxes, size=16)
    assert out.shape == (3 * 2, 3, 16, 16)  # box-major: box k is rows 2k, 2k + 1
    assert out[0].mean().item() == pytest.approx(15.5)  # the whole picture
    assert out[2].mean().item() == pytest.approx(8 + 7.5)  # columns 8 ... 23
    assert out[3].mean().item() == pytest.approx(100 + 8 + 7.5)
    assert out[4].mean().item() == pytest.approx(
        20 + 3.5, abs=0.01
    )  # upsampled 8 -> 16


def test_z_stays_within_the_codebook_range_after_a_step():
    torch.manual_seed(0)
    codebook = torch.rand(32, 4) * torch.tensor([1.0, 2.0, 0.5, 4.0])
    z = (torch.randn(2, 4, 3, 3) * 5).requires_grad_()
    optimiser = torch.optim.Adam([z], lr=1.0)
    quantize_straight_through(z, codebook).pow(2).sum().backward()
    optimiser.step()
    clamp_to_codebook(z, codebook)
    low, high = codebook.amin(0), codebook.amax(0)
    per_channel = z.detach().transpose(0, 1).reshape(4, -1)
    assert (per_channel >= low[:, None]).all() and (per_channel <= high[:, None]).all()
    assert (per_channel == high[:, None]).any()  # something was clamped


def test_steering_lowers_the_loss_keeps_z_on_the_codebook_and_records_steps():
    from t2i.models.vqgan_clip import SteerConfig, steer

    gan, encode_images, target = steering_setup()
    config = SteerConfig(steps=30, lr=0.05, cutouts=4, record_every=10)
    history = steer(gan, encode_images, target, config)
    assert history["step"] == [0, 10, 20, 30]
    assert history["outside"] == [0.0] * 4  # random codes, then clamped each step
    assert len(history["loss"]) == 30
    assert mean(history["loss"][-5:]) < mean(history["loss"][:5])
    final = history["final"]
    assert final.shape == (2, 3, 16, 16)
    assert final.min() >= 0 and final.max() <= 1  # clamped pictures
    free = steer(gan, encode_images, target, replace(config, clamp_z=False, lr=0.5))
    assert free["outside"][-1] > 0  # without the clamp z leaves the codebook's box
    # the same seed gives the same run
    again = steer(gan, encode_images, target, config)
    assert torch.equal(again["final"], final)


def test_steering_from_a_start_picture_begins_at_its_codes():
    from t2i.models.vqgan_clip import SteerConfig, steer

    gan, encode_images, target = steering_setup()
    start = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    config = SteerConfig(steps=2, cutouts=2, record_every=1, start_weight=1.0)
    history = steer(gan, encode_images, target, config, start=start)
    with torch.no_grad():
        rebuilt = gan(start).clamp(0, 1)
    assert torch.allclose(history["pictures"][0], rebuilt, atol=1e-6)
