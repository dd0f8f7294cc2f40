import pytest
import torch

from t2i.quantize import VectorQuantizer, VQConfig, nearest_codes


def make(**overrides):
    torch.manual_seed(0)
    settings = dict(num_codes=16, code_dim=4)
    settings.update(overrides)
    vq = VectorQuantizer(VQConfig(**settings))
    vq.codebook.data.normal_()
    if vq.config.ema:
        vq.ema_sum.copy_(vq.codebook.data)
    return vq


def test_returns_exactly_the_nearest_code_against_brute_force():
    vq = make()
    z = torch.randn(3, 4, 5, 6)
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    brute = torch.tensor(
        [
            min(range(16), key=lambda k: ((v - vq.codebook[k]) ** 2).sum().item())
            for v in flat
        ]
    )
    assert torch.equal(out.indices.reshape(-1), brute)
    assert torch.equal(nearest_codes(flat, vq.codebook.detach()), brute)


def test_nearest_codes_in_chunks_of_rows_matches_all_at_once(monkeypatch):
    import t2i.quantize

    torch.manual_seed(1)
    flat, codebook = torch.randn(103, 8), torch.randn(16, 8)
    whole = torch.cdist(flat, codebook).argmin(1)
    monkeypatch.setattr(t2i.quantize, "DISTANCE_CHUNK", 16 * 10)  # 10 rows a chunk
    assert torch.equal(nearest_codes(flat, codebook), whole)


def test_eval_output_equals_lookup_of_its_indices():
    vq = make().eval()
    out = vq(torch.randn(2, 4, 3, 3))
    assert torch.allclose(out.vectors, vq.lookup(out.indices))


def test_straight_through_reaches_the_encoder_but_not_the_codebook():
    vq = make()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    (
        out.vectors * torch.randn_like(out.vectors)
    ).sum().backward()  # a "decoder" loss only
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert vq.codebook.grad is None or vq.codebook.grad.abs().sum() == 0
    # the gradient is copied unchanged: d(output)/dz is the identity
    z2 = z.detach().clone().requires_grad_(True)
    vq(z2).vectors.sum().backward()
    assert torch.allclose(z2.grad, torch.ones_like(z2))


def test_codebook_loss_moves_codes_and_commitment_moves_the_encoder():
    vq = make(beta=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    vq(z).loss.backward()
    used = vq(z.detach()).indices.unique()
    assert vq.codebook.grad[used].abs().sum() > 0
    unused = torch.tensor([k for k in range(16) if k not in used.tolist()])
    assert vq.codebook.grad[unused].abs().sum() == 0
    assert z.grad.abs().sum() > 0


def test_ema_update_matches_its_formula():
    vq = make(ema=True, decay=0.9)
    before_count, before_sum = vq.ema_count.clone(), vq.ema_sum.clone()
    z = torch.randn(1, 4, 2, 5)
    out = vq.train()(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    one_hot = torch.nn.functional.one_hot(out.indices.reshape(-1), 16).float()
    count = 0.9 * before_count + 0.1 * one_hot.sum(0)
    total_sum = 0.9 * before_sum + 0.1 * one_hot.T @ flat
    n = count.sum()
    smoothed = (count + 1e-5) / (n + 16 * 1e-5) * n
    assert torch.allclose(vq.ema_count, count)
    assert torch.allclose(vq.codebook, total_sum / smoothed[:, None], atol=1e-5)
    assert not vq.codebook.requires_grad


def test_dead_codes_are_restarted_onto_data():
    vq = make(restart_dead=True, dead_usage=0.5, decay=0.5)
    vq.codebook.data[8:] += 100.0  # codes 8..15 are far from all data: never chosen
    z = torch.randn(4, 4, 4, 4)
    for _ in range(3):
        vq.train()(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    for k in range(8, 16):
        assert (vq.codebook[k] - flat).abs().sum(1).min() < 1e-6, (
            f"code {k} was not restarted"
        )
    # and the restarted codes now win data: each sits on a vector it is nearest to
    used = set(vq.eval()(z).indices.flatten().tolist())
    assert set(range(8, 16)) <= used


def test_collapse_shows_in_perplexity():
    vq = make()
    vq.codebook.data[1:] += 100.0  # only code 0 is reachable
    assert vq(torch.randn(2, 4, 3, 3)).perplexity.item() == pytest.approx(1.0)
    vq = make()
    spread = (
        vq.codebook.detach()[:, :, None, None].permute(1, 0, 2, 3).reshape(1, 4, 16, 1)
    )
    assert vq.eval()(spread).perplexity.item() == pytest.approx(16.0, rel=1e-3)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(batch, 4, height, width\)"):
        make()(torch.randn(2, 3, 4, 4))


def test_restarts_seed_the_whole_codebook_from_the_first_batch():
    vq = make(restart_dead=True)
    z = torch.randn(2, 4, 4, 4) * 5
    vq.train()(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    distance = (vq.codebook.detach()[:, None] - flat[None]).abs().sum(-1).min(1).values
    assert (distance < 1e-5).all()


def test_ema_leaves_a_code_that_is_never_chosen_where_it_is_at_first():
    """With a zero starting count the smoothed division would fling it far away."""
    vq = make(ema=True)
    vq.codebook.data[15] += 50.0  # far from all data: never chosen
    vq.ema_sum[15] = vq.codebook.data[15]
    before = vq.codebook[15].clone()
    for _ in range(30):
        out = vq.train()(torch.randn(2, 4, 4, 4))
        assert (out.indices != 15).all()
    assert torch.allclose(vq.codebook[15], before, rtol=1e-3)


def test_an_unused_ema_code_shrinks_towards_zero_once_its_count_is_tiny():
    """Its count and sum decay together, so it holds still until the count
    reaches the smoothing constant, after log(eps) / log(decay) steps; then
    it shrinks towards 0, where it may win data again."""
    import math

    from t2i.quantize import EMA_SMOOTHING

    vq = make(ema=True, num_codes=4, code_dim=2)
    start = vq.codebook[3].norm().item()
    counts = torch.tensor([10.0, 10.0, 10.0, 0.0])
    sums = vq.ema_sum.clone() * 0  # assigned vectors sit at the origin, irrelevant here
    sums[:3] = vq.codebook.data[:3] * 10
    halving = math.log(EMA_SMOOTHING) / math.log(vq.config.decay)
    norms = {}
    for step in range(1, 1601):
        vq._ema_update(counts, sums)
        norms[step] = vq.codebook[3].norm().item() / start
    assert norms[500] > 0.99  # still where it was
    assert 0.4 < norms[round(halving)] < 0.6  # half its size after ~1,146 steps
    assert norms[1600] < 0.02  # next to the origin


def test_quantiser_runs_in_float32_under_bf16_autocast():
    """Near-tie vectors must still get their nearest code (bf16 distances would not)."""
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(num_codes=64, code_dim=32)).eval()
    vq.codebook.data.normal_()
    # each vector sits almost halfway between two codes
    a, b = torch.randint(64, (2, 400))
    flat = 0.5 * (vq.codebook[a] + vq.codebook[b]) + 1e-3 * torch.randn(400, 32)
    flat = flat.detach()
    z = flat.T.reshape(1, 32, 20, 20)
    expected = torch.cdist(flat.double(), vq.codebook.double()).argmin(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(z)
    assert torch.equal(out.indices.flatten(), expected)
    assert out.vectors.dtype == torch.float32
