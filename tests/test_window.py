import pytest
import torch
from einops import rearrange

from t2i.models.transformer import Transformer, TransformerConfig
from t2i.models.window import (
    image_logits,
    sampling_flops,
    sliding_window_sample,
    window_start,
)
from t2i.sample import sample_logits

IMAGE_CODES, CONDITION_CODES = 16, 8
CONFIG = TransformerConfig(
    vocab_size=IMAGE_CODES + CONDITION_CODES,
    block_size=2 * 16,
    n_layer=2,
    n_head=2,
    n_embd=32,
)


def model(seed=0) -> Transformer:
    """An untrained model with weights large enough for logits that differ."""
    torch.manual_seed(seed)
    net = Transformer(CONFIG).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(20)
    return net


def codes(shape, low, high, seed):
    return torch.randint(
        low, high, shape, generator=torch.Generator().manual_seed(seed)
    )


def condition(batch=2, h=5, w=6, seed=1):
    """Offset condition tokens: ids IMAGE_CODES ... vocab_size - 1."""
    return codes((batch, h, w), IMAGE_CODES, CONFIG.vocab_size, seed)


def taming_start(position, size, window):
    """scripts/sample_conditional.py's rule, with 16 and 8 replaced by k, k // 2."""
    if position <= window // 2:
        local = position
    elif size - position < window // 2:
        local = window - (size - position)
    else:
        local = window // 2
    return position - local


@pytest.mark.parametrize(
    "size, window, expected",
    [
        (6, 4, [0, 0, 0, 1, 2, 2]),
        (7, 3, [0, 0, 1, 2, 3, 4, 4]),
        (5, 5, [0, 0, 0, 0, 0]),
        (4, 1, [0, 1, 2, 3]),
        (8, 2, [0, 0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_window_start_at_corners_edges_and_centre(size, window, expected):
    assert [window_start(p, size, window) for p in range(size)] == expected


def test_the_window_stays_inside_and_holds_its_cell():
    for size in range(1, 20):
        for window in range(1, size + 1):
            for p in range(size):
                first = window_start(p, size, window)
                assert 0 <= first and first + window <= size
                assert first <= p < first + window  # the cell's local index: p - first
                if window % 2 == 0:
                    assert first == taming_start(p, size, window)


def test_taming_literal_rule_leaves_the_grid_for_odd_windows():
    # why window_start clamps instead of transcribing taming: at size - p == k // 2
    size, window, last = 7, 3, 6
    assert taming_start(last, size, window) + window == size + 1  # one row too far
    assert window_start(last, size, window) + window == size


def test_window_start_rejects_windows_larger_than_the_grid_and_outside_cells():
    with pytest.raises(ValueError, match="window between 1 and 4"):
        window_start(0, 4, 5)
    with pytest.raises(ValueError, match="outside"):
        window_start(4, 4, 2)


def window_pair(n=9, batch=2, seed=3):
    return (
        codes((batch, n), IMAGE_CODES, CONFIG.vocab_size, seed),
        codes((batch, n), 0, IMAGE_CODES, seed + 1),
    )


def test_the_correct_reading_is_the_teacher_forced_prediction_of_each_image_token():
    net, (c, x) = model(), window_pair()
    n = c.shape[1]
    sequence = torch.cat([c, x], 1)
    correct = image_logits(net, c, x)
    assert correct.shape == (2, n, CONFIG.vocab_size)
    assert torch.allclose(correct, net(sequence[:, :-1])[:, n - 1 :])


def test_the_off_by_one_reading_is_the_correct_one_shifted_by_one_position():
    net, (c, x) = model(), window_pair()
    correct = image_logits(net, c, x, "correct")
    off = image_logits(net, c, x, "off_by_one")
    assert torch.allclose(off[:, :-1], correct[:, 1:], atol=1e-5)
    assert not torch.allclose(off, correct, atol=1e-3)


def test_only_the_off_by_one_reading_looks_at_the_token_it_predicts():
    net, (c, x) = model(), window_pair()
    for m in range(x.shape[1]):
        changed = x.clone()
        changed[:, m] = (x[:, m] + 1) % IMAGE_CODES
        for reading, reads_itself in [("correct", False), ("off_by_one", True)]:
            before = image_logits(net, c, x, reading)[:, m]
            delta = image_logits(net, c, changed, reading)[:, m] - before
            assert (delta.abs().max() > 0) == reads_itself, (reading, m)


@pytest.mark.parametrize("use_cache", [False, True])
def test_on_a_window_sized_grid_the_sampler_is_plain_autoregressive_sampling(
    use_cache,
):
    net, k = model(), 3
    cond = codes((2, k, k), 0, CONFIG.vocab_size, 5)  # generate samples from all ids
    sampled = sliding_window_sample(
        net,
        cond,
        k,
        CONFIG.vocab_size,
        start=torch.zeros_like(cond),
        generator=torch.Generator().manual_seed(7),
    )
    prefix = rearrange(cond, "b h w -> b (h w)")
    plain = net.generate(
        prefix, k * k, generator=torch.Generator().manual_seed(7), use_cache=use_cache
    )[:, k * k :]
    assert torch.equal(sampled, rearrange(plain, "b (h w) -> b h w", h=k))


def test_on_a_window_sized_grid_the_restricted_sampler_is_a_hand_written_loop():
    net, k = model(), 4
    cond = condition(h=k, w=k)
    sampled = sliding_window_sample(
        net,
        cond,
        k,
        IMAGE_CODES,
        temperature=0.8,
        top_k=5,
        start=torch.zeros_like(cond),
        generator=torch.Generator().manual_seed(2),
    )
    generator = torch.Generator().manual_seed(2)
    tokens = rearrange(cond, "b h w -> b (h w)")
    with torch.no_grad():
        for _ in range(k * k):
            logits = net(tokens)[:, -1, :IMAGE_CODES]
            new = sample_logits(logits, 0.8, 5, None, generator)
            tokens = torch.cat([tokens, new[:, None]], 1)
    assert torch.equal(sampled, rearrange(tokens[:, k * k :], "b (h w) -> b h w", h=k))


def sample(reading, start, seed=4, **kwargs):
    return sliding_window_sample(
        model(),
        condition(),
        3,
        IMAGE_CODES,
        start=start,
        reading=reading,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def test_the_correct_reading_never_reads_cells_not_yet_sampled():
    first, other = (
        codes((2, 5, 6), 0, IMAGE_CODES, 8),
        codes((2, 5, 6), 0, IMAGE_CODES, 9),
    )
    assert torch.equal(sample("correct", first), sample("correct", other))


def test_the_off_by_one_reading_depends_on_the_initial_codes():
    first, other = (
        codes((2, 5, 6), 0, IMAGE_CODES, 8),
        codes((2, 5, 6), 0, IMAGE_CODES, 9),
    )
    assert not torch.equal(sample("off_by_one", first), sample("off_by_one", other))


def test_every_sampled_code_is_the_greedy_choice_of_its_window_on_the_final_grid():
    # the cells before a cell are final when it is drawn, the ones after are masked,
    # so the finished grid reproduces each choice from its own window
    net, cond, k = model(), condition(), 3
    grid = sliding_window_sample(net, cond, k, IMAGE_CODES, temperature=0)
    (_, h, w), flat = cond.shape, "b h w -> b (h w)"
    for i in range(h):
        for j in range(w):
            top, left = window_start(i, h, k), window_start(j, w, k)
            rows, cols = slice(top, top + k), slice(left, left + k)
            logits = image_logits(
                net,
                rearrange(cond[:, rows, cols], flat),
                rearrange(grid[:, rows, cols], flat),
            )[:, (i - top) * k + j - left, :IMAGE_CODES]
            assert torch.equal(logits.argmax(-1), grid[:, i, j])


@pytest.mark.parametrize("reading", ["correct", "off_by_one"])
def test_sampled_codes_are_image_codes(reading):
    grid = sample(reading, None, temperature=2.0)
    assert grid.shape == (2, 5, 6) and grid.dtype == torch.long
    assert grid.min() >= 0 and grid.max() < IMAGE_CODES


def test_bad_inputs_raise_errors_that_name_the_fix():
    net, cond = model(), condition()
    with pytest.raises(ValueError, match="pick window <= 5"):
        sliding_window_sample(net, cond, 6, IMAGE_CODES)
    with pytest.raises(ValueError, match=r"condition\[None\]"):
        sliding_window_sample(net, cond[0], 3, IMAGE_CODES)
    with pytest.raises(ValueError, match="one initial image code per condition cell"):
        sliding_window_sample(net, cond, 3, IMAGE_CODES, start=cond[:, :4])
    with pytest.raises(ValueError, match="unknown reading"):
        sliding_window_sample(net, cond, 3, IMAGE_CODES, reading="shifted")
    with pytest.raises(ValueError, match="num_image_codes must lie in 1 ... vocab"):
        sliding_window_sample(net, cond, 3, CONFIG.vocab_size + 1)
    c, x = window_pair()
    with pytest.raises(ValueError, match="same shape"):
        image_logits(net, c, x[:, :-1])
    with pytest.raises(ValueError, match="unknown reading"):
        image_logits(net, c, x, "off-by-one")


def test_sampling_flops_window_grows_linearly_and_full_attention_faster():
    big = TransformerConfig(vocab_size=1024, block_size=512, n_layer=24, n_embd=1024)
    window = [sampling_flops(big, g, 16) for g in (16, 32, 64)]
    full = [sampling_flops(big, g, None) for g in (16, 32, 64)]
    assert window[1] == 4 * window[0] and window[2] == 4 * window[1]  # area
    assert full[1] > 4 * full[0] and full[2] > 4 * full[1]
    # at grid == window each of the k^2 steps redoes all the work the cache does once
    assert window[0] == 16 * 16 * full[0]
    n = 16 * 16
    per_token = 24 * 1024**2 + 2 * 1024 * 2 * n  # mean context of 2n - 1 tokens: n
    assert full[0] == 24 * (2 * n - 1) * per_token
    with pytest.raises(ValueError, match="window between 1 and 8"):
        sampling_flops(big, 8, 16)
