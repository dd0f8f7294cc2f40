import math

import pytest
import torch

from t2i import metrics


def test_nearest_labels_follow_the_clusters():
    codes = torch.cat(
        [
            torch.randn(50, 2) * 0.1 + torch.tensor([5.0, 0.0]),
            torch.randn(50, 2) * 0.1 - torch.tensor([5.0, 0.0]),
        ]
    )
    labels = torch.cat([torch.full((50,), 3), torch.full((50,), 7)])
    query = torch.tensor([[4.0, 0.3], [-6.0, 0.0], [30.0, 1.0]])
    assert metrics.nearest_labels(query, codes, labels, k=5).tolist() == [3, 7, 3]


def test_a_tied_vote_goes_to_the_nearest_neighbour_not_the_smallest_label():
    codes = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    labels = torch.tensor([0, 0, 9, 9])
    # nearest first: 9 (2.0), 9 (3.0), 0 (1.0), 0 (0.0): two votes each
    assert metrics.nearest_labels(
        torch.tensor([[2.4]]), codes, labels, k=4
    ).tolist() == [9]
    assert metrics.nearest_labels(
        torch.tensor([[0.6]]), codes, labels, k=4
    ).tolist() == [0]
    # a clear majority still wins over a nearer single vote
    labels = torch.tensor([5, 1, 1, 2])
    assert metrics.nearest_labels(
        torch.tensor([[0.0]]), codes, labels, k=4
    ).tolist() == [1]


def test_class_mix_and_total_variation():
    mix = metrics.class_mix(torch.tensor([0, 0, 1, 3]), num_classes=4)
    assert mix.tolist() == [0.5, 0.25, 0.0, 0.25]
    uniform = torch.full((4,), 0.25)
    assert metrics.total_variation(uniform, uniform) == 0
    assert math.isclose(
        metrics.total_variation(
            torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])
        ),
        1,
    )
    assert math.isclose(metrics.total_variation(mix, uniform), 0.25)


def test_psnr():
    assert math.isclose(metrics.psnr(0.01), 20.0)


def test_pixel_judge_reads_the_class_of_images_near_its_training_set():
    train = torch.cat([torch.zeros(5, 1, 2, 2), torch.ones(5, 1, 2, 2)])
    labels = torch.tensor([4] * 5 + [7] * 5)
    judge = metrics.pixel_judge(train, labels, k=3)
    assert judge(
        torch.tensor([[[[0.1, 0.0], [0.2, 0.0]]], [[[0.9, 1.0], [1.0, 0.8]]]])
    ).tolist() == [4, 7]


def test_sample_diversity_is_zero_for_repeats_and_the_rms_difference_otherwise():
    from t2i.metrics import sample_diversity

    same = torch.rand(3, 1, 2, 4, 4).expand(3, 5, 2, 4, 4)
    assert sample_diversity(same) == pytest.approx(0.0, abs=1e-6)
    pair = torch.stack([torch.zeros(2, 8), torch.full((2, 8), 0.5)], 1)  # (2, 2, 8)
    assert sample_diversity(pair) == pytest.approx(0.5)
    # three samples at 0, 0 and 1: pairs differ by 0, 1, 1 -> rms sqrt(2/3)
    three = torch.tensor([[[0.0], [0.0], [1.0]]])
    assert sample_diversity(three) == pytest.approx((2 / 3) ** 0.5)
    # captions never mix: two captions with constant but different pictures
    apart = torch.stack([torch.zeros(4, 6), torch.ones(4, 6)])
    assert sample_diversity(apart) == 0.0
    with pytest.raises(ValueError, match="samples >= 2"):
        sample_diversity(torch.rand(4, 1, 3))
