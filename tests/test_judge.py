import pytest
import torch
import torch.nn.functional as F

from t2i import configs, shapes
from t2i.models.judge import CLASSES, EMPTY, AttributeJudge, JudgeConfig
from t2i.train import TrainConfig, fit


@pytest.fixture(scope="module")
def scenes():
    return shapes.make_scenes(64, size=32, split="held_out")


def one_hot_truth(attributes: torch.Tensor) -> dict[str, torch.Tensor]:
    """The logits of a perfect judge: large where the truth is."""
    occupied = attributes[..., 0] >= 0
    logits = {}
    for i, (name, k) in enumerate(CLASSES.items()):
        target = attributes[..., i].where(occupied, EMPTY if i == 0 else 0)
        logits[name] = 20 * F.one_hot(target, k).float()
    return logits


def perfect_judge(monkeypatch, attributes):
    judge = AttributeJudge(JudgeConfig(channels=(8, 16), hidden=16))
    monkeypatch.setattr(judge, "forward", lambda images: one_hot_truth(attributes))
    return judge


def test_outputs_have_one_row_per_cell(scenes):
    judge = AttributeJudge(JudgeConfig(channels=(8, 16), hidden=16))
    logits = judge(scenes.images[:4])
    assert {k: tuple(v.shape) for k, v in logits.items()} == {
        "shape": (4, 9, len(shapes.SHAPES) + 1),
        "colour": (4, 9, 6),
        "size": (4, 9, 2),
        "texture": (4, 9, 3),
    }
    metrics = judge.loss((scenes.images[:4], scenes.attributes[:4]))
    assert torch.isfinite(metrics["loss"]) and "texture_accuracy" in metrics
    reading = judge.read(scenes.images[:4])
    assert reading.shape == (4, 9, 4)
    assert ((reading == -1).all(-1) | (reading >= 0).all(-1)).all()
    confidence = judge.confidence(scenes.images[:4])
    assert (
        confidence.shape == (4,) and (0 <= confidence).all() and (confidence <= 1).all()
    )


def test_a_perfect_reading_agrees_with_the_truth(monkeypatch, scenes):
    judge = perfect_judge(monkeypatch, scenes.attributes)
    assert torch.equal(judge.read(scenes.images), scenes.attributes)
    assert torch.allclose(
        judge.agreement(scenes.images, scenes.attributes), torch.ones(64)
    )
    assert all(
        v == 1.0 for v in judge.accuracy(scenes.images, scenes.attributes).values()
    )
    assert (judge.confidence(scenes.images) > 0.99).all()


def test_agreement_counts_claims(monkeypatch):
    truth = torch.full((1, 9, 4), -1)
    truth[0, 4] = torch.tensor([0, 1, 1, 2])  # a large orange dotted circle, centre
    judge = perfect_judge(monkeypatch, truth)
    images = torch.zeros(1, 3, 32, 32)
    # 5 claims for the object, 1 per empty cell: 13 in all
    wrong_colour = truth.clone()
    wrong_colour[0, 4, 1] = 0
    assert judge.agreement(images, wrong_colour).item() == pytest.approx(12 / 13)
    moved = torch.full((1, 9, 4), -1)
    moved[0, 0] = truth[0, 4]  # asked for at the top left, drawn in the centre
    # the object's 5 claims fail, and so does the centre's "empty": 7 of 13
    assert judge.agreement(images, moved).item() == pytest.approx(7 / 13)
    accuracy = judge.accuracy(images, wrong_colour)
    assert accuracy["colour"] == 0 and accuracy["shape"] == 1
    assert accuracy["object"] == 0 and accuracy["presence"] == 1
    assert accuracy["scene"] == 0


def test_wrong_image_sizes_name_the_judges_size():
    judge = AttributeJudge(JudgeConfig(image_size=32, channels=(8, 16), hidden=16))
    with pytest.raises(ValueError, match=r"\(batch, 3, 32, 32\)"):
        judge.read(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="image_size must be >= 16"):
        JudgeConfig(image_size=8)
    with pytest.raises(ValueError, match="attribute tables of shape"):
        judge.agreement(torch.rand(2, 3, 32, 32), torch.zeros(2, 4, 9))


def test_a_short_training_run_learns_to_read():
    data = shapes.make_scenes(1000, size=32)
    test = shapes.make_scenes(300, size=32, split="test")
    torch.manual_seed(0)
    judge = AttributeJudge(JudgeConfig(channels=(8, 16, 32), hidden=32))
    before = judge.accuracy(test.images, test.attributes)
    train = TrainConfig(steps=120, batch_size=32, lr=5e-3, log_every=20)
    fit(judge, (data.images, data.attributes), train, desc="judge")
    after = judge.accuracy(test.images, test.attributes)
    assert after["presence"] > 0.95 and after["size"] > 0.9 and after["colour"] > 0.9
    assert after["shape"] > before["shape"] + 0.3


def test_the_experiment_reads_shapes_world_at_its_size():
    for scale, size in (("tiny", 32), ("small", 64)):
        experiment = configs.attribute_judge(scale)
        assert experiment.data.name == "shapes" and experiment.data.size == size
        assert experiment.model.image_size == size
