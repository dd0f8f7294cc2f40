import pytest
import torch
import torch.nn.functional as F

from t2i.models.transformer import Transformer, TransformerConfig

SMALL = TransformerConfig(vocab_size=17, block_size=24, n_layer=2, n_head=2, n_embd=16)


def model(seed=0, **changes) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(**{**SMALL.__dict__, **changes})).eval()


def tokens(n=2, length=12, seed=1, vocab=17):
    return torch.randint(
        0, vocab, (n, length), generator=torch.Generator().manual_seed(seed)
    )


def test_changing_a_token_changes_no_earlier_logit():
    net, x = model(), tokens()
    base = net(x)
    for t in range(x.shape[1]):
        changed = x.clone()
        changed[:, t] = (changed[:, t] + 3) % 17
        delta = (net(changed) - base).abs().amax(dim=(0, 2))
        assert delta[:t].max() == 0 if t else True, f"token {t} leaks backwards"
        assert delta[t] > 0, f"position {t} does not read its own token"


@pytest.mark.parametrize("chunks", [[12], [1] * 12, [5, 1, 6]])
def test_the_kv_cache_gives_the_full_recompute_logits(chunks):
    net, x = model(), tokens()
    full = net(x)
    cache, start, pieces = net.new_cache(), 0, []
    for size in chunks:
        pieces.append(net(x[:, start : start + size], cache=cache))
        start += size
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)


def test_sampling_with_and_without_the_cache_agrees():
    net = model()
    prefix = tokens(length=3)
    fast = net.generate(prefix, 9, temperature=1e-9)
    slow = net.generate(prefix, 9, temperature=1e-9, use_cache=False)
    assert torch.equal(fast, slow) and fast.shape == (2, 12)
    assert torch.equal(fast[:, :3], prefix)
    # greedy: every new token is the argmax of the teacher-forced logits before it
    assert torch.equal(net(fast[:, :-1])[:, 2:].argmax(-1), fast[:, 3:])


def test_an_extra_mask_narrows_attention_and_survives_the_cache():
    net, x = model(), tokens()
    length = x.shape[1]
    # every position may read only itself and the one before it, so through
    # n_layer layers token 0 reaches positions 0 .. n_layer and no further
    window = torch.ones(length, length, dtype=torch.bool).tril().triu(-1)
    masked = net(x, mask=window)
    changed = x.clone()
    changed[:, 0] = (x[:, 0] + 1) % 17
    delta = (net(changed, mask=window) - masked).abs().amax(dim=(0, 2))
    reach = SMALL.n_layer + 1
    assert delta[:reach].min() > 0 and delta[reach:].max() == 0
    cache = net.new_cache()
    stepwise = torch.cat(
        [net(x[:, i : i + 1], mask=window, cache=cache) for i in range(length)], 1
    )
    assert torch.allclose(stepwise, masked, atol=1e-5)


def test_cross_attention_reads_the_context_and_respects_its_mask():
    net, x = model(context_dim=8), tokens()
    context = torch.randn(2, 5, 8)
    base = net(x, context=context)
    assert not torch.allclose(net(x, context=context + 1), base)
    keep = torch.tensor([[True] * 3 + [False] * 2] * 2)
    hidden = context.clone()
    hidden[:, 3:] = torch.randn(2, 2, 8)  # only the masked-out entries change
    assert torch.allclose(
        net(x, context=context, context_mask=keep),
        net(x, context=hidden, context_mask=keep),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="context="):
        net(x)


def test_loss_counts_only_the_tokens_after_the_prefix():
    """n condition + n image tokens: fed 2n - 1, logits n - 1 ... 2n - 2 predict
    image tokens 0 ... n - 1 (the article's 512 / 511 / [255, 510] at n = 256)."""
    n = 6
    net, x = model(prefix_length=n), tokens(length=2 * n)
    logits = net(x[:, :-1])
    assert logits.shape[1] == 2 * n - 1
    by_hand = F.cross_entropy(logits[:, n - 1 :].reshape(-1, 17), x[:, n:].reshape(-1))
    assert torch.allclose(net.loss((x,))["loss"], by_hand)
    off_by_one = F.cross_entropy(
        logits[:, n:].reshape(-1, 17), x[:, n + 1 :].reshape(-1)
    )
    assert not torch.allclose(off_by_one, by_hand)


def test_bad_inputs_name_the_fix():
    net = model()
    with pytest.raises(ValueError, match="block_size 24"):
        net(tokens(length=25))
    with pytest.raises(ValueError, match=r"\[0, 17\)"):
        net(torch.full((1, 3), 17))
    with pytest.raises(ValueError, match="boolean"):
        net(tokens(), mask=torch.ones(12, 12))
    with pytest.raises(ValueError, match="prefix of at least one token"):
        net.generate(torch.zeros(2, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(n_embd=10, n_head=4)


def test_a_short_training_run_learns_a_repeating_sequence():
    torch.manual_seed(0)
    net = model().train()
    x = torch.arange(24).remainder(4)[None].repeat(16, 1)  # 0 1 2 3 0 1 2 3 ...
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(150):
        loss = net.loss((x,))["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert net.eval().loss((x,))["bits_per_token"] < 0.2
    assert torch.equal(net.generate(x[:1, :2], 6, temperature=1e-9)[0], x[0, :8])


def test_generate_can_keep_to_the_image_codes():
    torch.manual_seed(0)
    model = Transformer(
        TransformerConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=16)
    ).eval()
    with torch.no_grad():  # make the condition tokens the likeliest choice
        model.head.weight[8:] += 5.0
    prefix = torch.full((4, 1), 10)
    free = model.generate(prefix, 10, generator=torch.Generator().manual_seed(0))
    kept = model.generate(
        prefix, 10, generator=torch.Generator().manual_seed(0), num_choices=8
    )
    assert (free[:, 1:] >= 8).any() and (kept[:, 1:] < 8).all()
    with pytest.raises(ValueError, match="num_choices"):
        model.generate(prefix, 2, num_choices=13)


def test_grid_positions_share_rows_and_columns_between_grids():
    config = TransformerConfig(
        vocab_size=10, block_size=2 * 9, n_layer=1, n_head=2, n_embd=8, grid_size=3
    )
    embed = Transformer(config).position_embedding
    positions = torch.arange(18)
    vectors = embed(positions)
    # the same cell of the map grid and the picture grid differ only by the
    # grid embedding
    difference = vectors[9:] - vectors[:9]
    assert torch.allclose(
        difference, (embed.grid.weight[1] - embed.grid.weight[0]).expand(9, -1)
    )
    assert not torch.allclose(vectors[1], vectors[3])  # another row, another vector
