import pytest
import torch

from t2i.models.pixelcnn import (
    GatedPixelCNN,
    PixelCNNConfig,
    causal_mask,
    plain_pixelcnn,
    receptive_field,
)

SMALL = PixelCNNConfig(num_codes=12, grid_size=6, channels=16, layers=4, kernel_size=3)


def model(seed=0, **changes):
    torch.manual_seed(seed)
    config = PixelCNNConfig(**{**SMALL.__dict__, **changes})
    return GatedPixelCNN(config).eval()


def test_masks_hide_the_centre_only_in_mask_a():
    a, b = causal_mask(3, "full", False), causal_mask(3, "full", True)
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert causal_mask(5, "horizontal", False).tolist() == [[1, 1, 0, 0, 0]]
    assert causal_mask(3, "vertical", False).tolist() == [
        [1, 1, 1],
        [0, 0, 0],
        [0, 0, 0],
    ]
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, "full", True)


@pytest.mark.parametrize("labels", [None, torch.tensor([3, 7])])
def test_changing_a_code_changes_no_earlier_or_current_logit(labels):
    """Perturb position t: the logits of positions <= t must not move at all."""
    net = model()
    g = SMALL.grid_size
    codes = torch.randint(0, SMALL.num_codes, (2, g, g))
    base = net.logits(codes, labels)
    for t in range(g * g):
        i, j = divmod(t, g)
        changed = codes.clone()
        changed[:, i, j] = (changed[:, i, j] + 5) % SMALL.num_codes
        delta = (net.logits(changed, labels) - base).abs().amax(dim=(0, 1)).flatten()
        assert delta[: t + 1].max() == 0, f"position {t} leaks into earlier logits"
        if j + 1 < g:  # the right neighbour does see it (the horizontal stack)
            assert delta[t + 1] > 0, f"position {t + 1} cannot see position {t}"


def test_gated_stacks_have_no_blind_spot_the_plain_stack_has_one():
    size, position = 9, (6, 4)
    plain = receptive_field(plain_pixelcnn(8, 4, 3), 8, size, position)
    net = model(channels=8, grid_size=size)
    gated = receptive_field(net.from_embedded, 8, size, position)
    for field in (plain, gated):  # neither sees the current or a later position
        assert field[6, 4:].sum() == 0 and field[7:].sum() == 0
    blind = (5, 7)  # one row up, three to the right
    assert plain[blind] == 0 and gated[blind] > 0
    assert (gated[:6] > 0).sum() > (plain[:6] > 0).sum()


def test_greedy_sampling_is_consistent_with_the_teacher_forced_logits():
    """An off-by-one in the sampling loop would break this: each sampled code
    must be the argmax of the logits the model gives that position."""
    net = model(seed=3)
    labels = torch.tensor([1, 4, 9])
    grid = net.sample(3, labels=labels, temperature=0)
    assert torch.equal(net.logits(grid, labels).argmax(1), grid)


def test_first_code_is_kept_and_sampling_is_reproducible():
    net = model()
    one = net.sample(4, first_code=7, generator=torch.Generator().manual_seed(0))
    two = net.sample(4, first_code=7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one, two) and (one[:, 0, 0] == 7).all()
    assert one.shape == (4, SMALL.grid_size, SMALL.grid_size)


def test_class_label_changes_the_prediction_and_bad_labels_are_refused():
    net = model()
    with torch.no_grad():
        for layer in net.layers:
            layer.condition.weight.normal_()
    codes = torch.randint(0, SMALL.num_codes, (2, 6, 6))
    a = net.logits(codes, torch.tensor([0, 0]))
    b = net.logits(codes, torch.tensor([5, 5]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="labels"):
        net.logits(codes, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="code grids"):
        net.logits(codes[:, :5])


def test_loss_is_bits_per_code_and_learns_a_fixed_pattern():
    net = model(class_dropout=0.0).train()
    g = SMALL.grid_size
    pattern = (torch.arange(g * g).reshape(g, g) % SMALL.num_codes).expand(32, g, g)
    labels = torch.zeros(32, dtype=torch.long)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = net.loss((pattern, labels))
    assert torch.isclose(
        first["bits_per_code"], first["loss"] / torch.log(torch.tensor(2.0))
    )
    for _ in range(150):
        optimizer.zero_grad()
        net.loss((pattern, labels))["loss"].backward()
        optimizer.step()
    assert net.loss((pattern, labels))["bits_per_code"] < 0.2 * first["bits_per_code"]


def test_bits_per_code_counts_only_the_examples_that_kept_their_class():
    """Training curve and test points must measure the same (conditional) thing."""
    net = model(class_dropout=0.5).train()
    g = SMALL.grid_size
    codes = torch.randint(SMALL.num_codes, (64, g, g))
    labels = torch.randint(SMALL.num_classes, (64,))
    torch.manual_seed(3)
    metrics = net.loss((codes, labels))
    torch.manual_seed(3)  # the same draw of dropped examples
    dropped = torch.rand(64) < 0.5
    with torch.no_grad():
        kept_labels = labels.masked_fill(dropped, net.no_class)
        per_grid = torch.nn.functional.cross_entropy(
            net.logits(codes, kept_labels), codes, reduction="none"
        ).mean((1, 2))
    assert torch.isclose(metrics["loss"], per_grid.mean())
    expected_bits = per_grid[~dropped].mean() / torch.log(torch.tensor(2.0))
    assert torch.isclose(metrics["bits_per_code"], expected_bits)


def test_a_batch_without_labels_is_scored_as_no_class():
    net = model(num_classes=10)
    codes = torch.randint(0, SMALL.num_codes, (4, SMALL.grid_size, SMALL.grid_size))
    no_class = torch.full((4,), net.no_class)
    assert torch.allclose(
        net.loss((codes,))["loss"], net.loss((codes, no_class))["loss"]
    )
