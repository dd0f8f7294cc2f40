import pytest
import torch

from t2i.sample import filter_logits, sample_logits


def test_top_k_never_samples_outside_the_k_most_likely():
    torch.manual_seed(0)
    logits = torch.randn(64, 50)
    allowed = logits.topk(5, dim=-1).indices
    for _ in range(20):
        drawn = sample_logits(logits, temperature=2.0, top_k=5)
        assert (allowed == drawn[:, None]).any(1).all()


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False]]  # 0.8 reaches p exactly
    kept = torch.isfinite(filter_logits(logits, top_p=0.81))
    assert kept.tolist() == [[True, True, True, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.1))
    assert kept.tolist() == [[True, False, False, False]]  # the top code always stays


def test_top_p_never_samples_outside_the_nucleus_in_shuffled_order():
    torch.manual_seed(1)
    logits = torch.randn(32, 40) * 3
    probabilities = logits.softmax(-1)
    for _ in range(20):
        drawn = sample_logits(logits, top_p=0.5)
        p_drawn = probabilities.gather(1, drawn[:, None])
        # everything strictly more likely than the drawn code sums to less than p
        above = (probabilities * (probabilities > p_drawn)).sum(1)
        assert (above < 0.5).all()


def test_temperature_zero_is_argmax_and_low_temperature_concentrates():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    assert sample_logits(logits, temperature=0).item() == 1
    g = torch.Generator().manual_seed(0)
    cold = sample_logits(logits.expand(2000, 3), temperature=0.1, generator=g)
    hot = sample_logits(logits.expand(2000, 3), temperature=5.0, generator=g)
    assert (cold == 1).float().mean() > 0.99
    assert 0.25 < (hot == 1).float().mean() < 0.5


def test_sampling_follows_the_distribution():
    probabilities = torch.tensor([0.7, 0.2, 0.1])
    g = torch.Generator().manual_seed(0)
    drawn = sample_logits(probabilities.log().expand(20_000, 3), generator=g)
    frequencies = torch.bincount(drawn, minlength=3).float() / 20_000
    assert torch.allclose(frequencies, probabilities, atol=0.015)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_settings_say_what_is_allowed(settings, message):
    with pytest.raises(ValueError, match=message):
        sample_logits(torch.zeros(2, 3), **settings)


def test_tiny_temperatures_are_argmax_not_nan():
    logits = torch.tensor([[0.1, 2.0, 1.9], [3.0, -1.0, 2.999]])
    for temperature in (1e-45, 1e-30, 1e-7):
        assert sample_logits(logits, temperature=temperature).tolist() == [1, 0]


def test_a_row_with_no_possible_code_gets_a_clear_error():
    logits = torch.tensor([[0.0, 1.0], [float("-inf"), float("-inf")]])
    with pytest.raises(ValueError, match="row 1 .* no code a chance"):
        sample_logits(logits)
    with pytest.raises(ValueError, match="NaN"):
        sample_logits(torch.tensor([[0.0, float("nan")]]))
